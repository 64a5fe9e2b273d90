"""The architecture DESIGN promises, read from the source with `ast` (imports inside functions count):
layer 2 (pyrosys/) never imports nor names layer 3 (models, problems, workers); the components never
import the workers; no command imports another command, and the run pipeline imports none; no function
is longer than a screen; the experiment and grid folders' file names are spelt in pyrosys/folders only."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# source folder -> the package it installs as (setup.cfg's package_dir)
PACKAGES = {"pyrosys": "pyrosys", "models": "pyrosys.models", "problems": "pyrosys.problems",
            "workers": "pyrosys.workers"}
LAYER3 = ("pyrosys.models", "pyrosys.problems", "pyrosys.workers")
COMMAND_SUPPORT = ("pyrosys.workers", "pyrosys.workers.worker")    # the Worker base and the kinds, not commands
MAX_FUNCTION_LINES = 60


def modules() -> dict[str, Path]:
    """Every module of the distribution by its installed dotted name."""
    found = {}
    for folder, package in PACKAGES.items():
        for path in (REPO / folder).rglob("*.py"):
            parts = list(path.relative_to(REPO / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def imported(path: Path) -> set[str]:
    """The modules a file imports, at module level and inside functions alike."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == package or name.startswith(package + ".") for package in packages)


MODULES = modules()
# the console commands' modules: workers/<command>.py
COMMANDS = {name for name, path in MODULES.items()
            if path.parent == REPO / "workers" and path.name != "__init__.py" and name not in COMMAND_SUPPORT}


def is_command(name: str) -> bool:
    return name in COMMANDS


def test_the_checks_see_every_layer():
    assert {"pyrosys.factory", "pyrosys.folders.experiment", "pyrosys.models.model", "pyrosys.problems.problem",
            "pyrosys.workers.trainer", "pyrosys.workers.pipeline.resolve"} <= set(MODULES)
    assert is_command("pyrosys.workers.trainer") and not is_command("pyrosys.workers.pipeline.fit")


@pytest.mark.parametrize("name", sorted(n for n in MODULES if not within(n, LAYER3)))
def test_layer_2_neither_imports_nor_names_layer_3(name):
    path = MODULES[name]
    upward = sorted(n for n in imported(path) if within(n, LAYER3))
    assert not upward, f"{path.relative_to(REPO)} (layer 2) imports layer 3: {upward}"
    named = [node.value for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Constant)
             and isinstance(node.value, str) and any(package in node.value for package in LAYER3)]
    assert not named, f"{path.relative_to(REPO)} (layer 2) names layer 3: {named}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if within(n, ("pyrosys.models", "pyrosys.problems"))))
def test_components_never_import_the_workers(name):
    upward = sorted(n for n in imported(MODULES[name]) if within(n, ("pyrosys.workers",)))
    assert not upward, f"{MODULES[name].relative_to(REPO)} imports the workers: {upward}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if within(n, ("pyrosys.workers",))))
def test_no_command_imports_another_and_the_pipeline_imports_none(name):
    commands = sorted(n for n in imported(MODULES[name]) if is_command(n) and n != name)
    assert not commands, f"{MODULES[name].relative_to(REPO)} imports the command(s) {commands}"


def test_the_import_checks_fail_on_an_upward_import(tmp_path):
    upward = tmp_path / "upward.py"
    upward.write_text("def late():\n    from pyrosys.workers import trainer\n")
    assert any(within(n, LAYER3) for n in imported(upward))
    assert any(is_command(n) for n in imported(upward))


def functions() -> list[tuple[str, int]]:
    """(place, length in lines) of every function and method of the project, tests and benchmarks too."""
    found = []
    for folder in (*PACKAGES, "tests", "benchmarks"):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    found.append((f"{path.relative_to(REPO)}:{node.lineno} {node.name}",
                                  node.end_lineno - node.lineno + 1))
    return found


def test_no_function_is_longer_than_a_screen():
    long = [f"{place} ({lines} lines)" for place, lines in functions() if lines > MAX_FUNCTION_LINES]
    assert not long, "functions over 60 lines: " + "; ".join(long)


def test_the_trainer_command_stays_a_short_table_of_contents():
    assert len((REPO / "workers" / "trainer.py").read_text().splitlines()) < 250


def test_folder_file_names_are_spelt_only_by_the_folders_package():
    from pyrosys.folders.experiment import CSV_FILES, Experiment, TestingFolder
    from pyrosys.folders.grid import Grid

    names = {Experiment.CONFIGURATION, Experiment.STATUS, Experiment.LOG, Experiment.DESCRIPTION,
             Experiment.MLFLOW_RUN, Experiment.CURVES, Experiment.BEST, Experiment.LAST, Grid.PLAN, Grid.STATUS,
             Grid.LOCK, Grid.TESTING, *Grid.ANALYSIS, *CSV_FILES.values(), TestingFolder.SUMMARY,
             TestingFolder.REPEATS, TestingFolder.CONFIGURATION, TestingFolder.CONFUSION_CSV}
    spelt = []
    for name, path in MODULES.items():
        # pyrosys-init writes a new project's own files (its grid.yaml is the project's grid file)
        if within(name, ("pyrosys.folders", "pyrosys.workers.init")):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                spelt.append(f"{path.relative_to(REPO)}:{node.lineno} {node.value!r}")
    assert not spelt, "folder file names spelt outside pyrosys/folders: " + "; ".join(spelt)
