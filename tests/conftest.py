"""Shared fixtures: fresh singletons per test, YAML files in a temporary folder, console commands."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pyrosys.app_state import AppState
from pyrosys.configuration.param_registry import ParamRegistry

if os.environ.get("PYTEST_XDIST_WORKER"):
    # make test runs two test processes on two cores: the trainers they start get one OpenMP thread
    # each instead of one per core, so that four threads do not fight over two cores
    os.environ.setdefault("OMP_NUM_THREADS", "1")

# the longest test files, longest first: make test's two test processes start them first and end together
LONGEST_FIRST = ("test_grid_workers.py", "test_end_to_end.py", "test_tutorial.py", "test_interruptions.py",
                 "test_crash_safety.py",
                 "test_resume.py", "test_builtin_problems.py", "test_mlflow_sink.py", "test_training_depth.py")


def pytest_collection_modifyitems(items: list) -> None:
    """Run the longest test files first (the order within a file is kept)."""
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FAST = ["--set", "training.trainer.enable_progress_bar=false"]


@pytest.fixture(autouse=True)
def fresh_singletons():
    ParamRegistry.reset()
    AppState.reset()
    yield
    ParamRegistry.reset()
    AppState.reset()


@pytest.fixture
def write(tmp_path):
    """write('name.yaml', text) -> path of a dedented file under tmp_path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    return _write


def command(name: str, *args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run an installed console command (pyrosys-trainer, ...) as a user would."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([str(BIN / name), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="session")
def cli():
    """cli(name, *args, cwd=...) runs a console command; cli.FAST turns the progress bar off."""
    command.FAST = FAST
    return command
