"""README.md and docs/ show YAML that works: every ```yaml snippet parses, and a snippet whose introducing
paragraph names the file it shows (a paragraph ending in a colon, naming `some/file.yaml`) holds that file's
content, so the two cannot drift apart."""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import yaml

from pyrosys.execution.grid_plan import expand
from pyrosys.workers import init

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def snippets(document: Path) -> Iterator[tuple[str | None, str]]:
    """Each yaml snippet of a document, with the .yaml file its introducing paragraph names (or None)."""
    text = document.read_text(encoding="utf-8")
    for match in re.finditer(r"```yaml\n(.*?)```", text, flags=re.S):
        before = text[:match.start()].rstrip().rsplit("\n\n", 1)[-1]
        named = re.findall(r"`([\w./-]+\.yaml)`", before) if before.endswith(":") else []
        yield (named[-1] if named else None), match.group(1)


def test_every_yaml_snippet_parses_and_shows_the_file_it_names(tmp_path):
    project = init.create("my_lab", tmp_path)              # the tutorial's snippets show a new project's files
    compared = []
    for document in DOCUMENTS:
        for named, snippet in snippets(document):
            shown = yaml.safe_load(snippet)
            if named is None:
                continue
            base = project if document.name == "tutorial.md" else REPO
            assert (base / named).is_file(), f"{document.name} shows {named}, which does not exist"
            assert shown == yaml.safe_load((base / named).read_text()), f"{document.name} disagrees with {named}"
            compared.append(named)
    assert {"configs/digits/grid.yaml", "my_lab/config/train.yaml", "grid.yaml"} <= set(compared)


def test_the_readme_grid_runs_what_the_quick_start_says():
    plan = expand(REPO / "configs" / "digits" / "grid.yaml", seed=0)
    assert all(run.error is None for run in plan.runs)
    assert f"# {len(plan.runs)} runs, two at a time" in (REPO / "README.md").read_text()
    assert plan.max_concurrent_runs == 2
