"""docs/tutorial.md works as written: every command of its bash blocks, in order, in an empty folder,
through the console commands (the project is installed into a virtual environment of the test's own,
layered on this one)."""
from __future__ import annotations

import csv
import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorial.md"
BIN = Path(sys.executable).parent
# the tutorial commits the project: with git's settings of this machine left out (signing, hooks) and an
# identity of its own (CI has none)
GIT_IDENTITY = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_AUTHOR_NAME": "PyroSys tutorial", "GIT_AUTHOR_EMAIL": "tutorial@example.org",
                "GIT_COMMITTER_NAME": "PyroSys tutorial", "GIT_COMMITTER_EMAIL": "tutorial@example.org"}


def commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", TUTORIAL.read_text(), flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_the_tutorial_has_every_step():
    text = " ".join(commands())
    for step in ("pyrosys-init", "pip install", "git commit", "--list", "pyrosys-trainer", "model=mlp data=digits",
                 "pyrosys-tester", "pyrosys-predictor", "pyrosys-grid-trainer", "pyrosys-grid-analyzer", "pytest"):
        assert step in text, step


def layered_environment(root: Path) -> Path:
    """A virtual environment that sees every package of this one and has its own console commands, pip
    included: the tutorial's `pip install -e my_lab` lands there, never in the environment that other
    tests run in at the same moment (make test runs two test processes). Returns its bin folder."""
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    bin_folder = venv / "bin"
    (site,) = (venv / "lib").glob("python*/site-packages")
    base = [path for path in sys.path if path.endswith("site-packages") and Path(path).is_dir()]
    (site / "base_environment.pth").write_text("".join(f"import site; site.addsitedir({path!r})\n" for path in base))
    scripts = {entry.name: entry.value for entry in importlib.metadata.distribution("pyrosys").entry_points
               if entry.group == "console_scripts"}
    for name, target in {**scripts, "pip": "pip._internal.cli.main:main"}.items():
        module, _, function = target.partition(":")
        script = bin_folder / name
        script.write_text(f"#!{bin_folder / 'python'}\nimport sys\nfrom {module} import {function}\n"
                          f"if __name__ == '__main__':\n    sys.exit({function}())\n")    # as pip writes them
        script.chmod(0o755)
    return bin_folder


@pytest.mark.slow
def test_every_tutorial_command_runs_in_order_from_an_empty_folder(tmp_path):
    bin_folder = layered_environment(tmp_path / "environment")
    (tmp_path / "work").mkdir()
    env = {**os.environ, "PATH": f"{bin_folder}{os.pathsep}{BIN}{os.pathsep}{os.environ['PATH']}",
           "PYTHONWARNINGS": "ignore", "PIP_DISABLE_PIP_VERSION_CHECK": "1", **GIT_IDENTITY}
    env.pop("VIRTUAL_ENV", None)
    script = "set -euo pipefail\n" + "\n".join(f"echo '$ {c}'\n{c}" for c in commands())
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path / "work", env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    installed = subprocess.run([str(BIN / "python"), "-c",
                                "import importlib.util; print(importlib.util.find_spec('my_lab'))"],
                               capture_output=True, text=True, check=True).stdout
    assert installed.strip() == "None"                 # this environment never saw the tutorial's package
    project = tmp_path / "work" / "my_lab"
    assert (project / "experiments" / "first" / "models" / "best.ckpt").is_file()
    assert "trainer/callbacks: summary" not in done.stdout                   # the choice became a file, not text
    assert "MyLabNet" in (project / "experiments" / "first" / "training_configuration.yaml").read_text()
    assert "name: MLP" in (project / "experiments" / "digits" / "training_configuration.yaml").read_text()
    assert len((project / "predictions.csv").read_text().splitlines()) == 4
    (grid,) = (project / "experiments").glob("grid_*_groups")
    analysis = (grid / "analysis.csv").read_text().splitlines()
    assert analysis[0].startswith("rank,run,status,model,data,") and len(analysis) == 1 + 4
    assert {tuple(line.split(",")[3:5]) for line in analysis[1:]} == {("example", "example"), ("example", "digits"),
                                                                     ("mlp", "example"), ("mlp", "digits")}
    assert "passed" in done.stdout
    check_the_project_tools(project, done.stdout, done.stderr)


def check_the_project_tools(project: Path, stdout: str, stderr: str) -> None:
    """What the tutorial's runs say and record: the default choice marked, the project's EpochSummary
    callback printing each validation's own loss, the project's commit in description.json, a tree that
    its .gitignore keeps clean, paths printed without '..'."""
    assert "example  (default in my_lab/config/train.yaml)" in stdout.splitlines()
    summaries = {int(episode): float(loss)
                 for episode, loss in re.findall(r"epoch \d+, episode (\d+): val_loss ([0-9.]+)", stderr)}
    with open(project / "experiments" / "digits" / "validation_statistics.csv", newline="") as stream:
        validations = {int(row["episode"]): float(row["loss"]) for row in csv.DictReader(stream)}
    assert len(validations) == 5 and summaries.keys() == validations.keys()
    assert all(abs(summaries[episode] - loss) < 1e-5 for episode, loss in validations.items()), (summaries,
                                                                                                 validations)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True, check=True)
    recorded = json.loads((project / "experiments" / "first" / "description.json").read_text())["git"]
    assert recorded == {"commit": head.stdout.strip(), "dirty": False}
    tracked = subprocess.run(["git", "ls-files"], cwd=project, capture_output=True, text=True, check=True).stdout
    assert "egg-info" not in tracked and "my_lab/config/train.yaml" in tracked.splitlines()
    left = subprocess.run(["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True, check=True)
    assert left.stdout == ""                   # experiments/, predictions.csv, caches: all ignored
    assert "3 predictions written to predictions.csv" in stderr and "/../" not in stdout + stderr
