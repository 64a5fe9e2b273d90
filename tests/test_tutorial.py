"""docs/tutorial.md works as written: every command of its bash blocks, in order, in an empty folder,
through the console commands (the project is installed into this environment and removed after)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorial.md"
BIN = Path(sys.executable).parent


def commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", TUTORIAL.read_text(), flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_the_tutorial_has_every_step():
    text = " ".join(commands())
    for step in ("pyrosys-init", "pip install", "--list", "pyrosys-trainer", "model=mlp data=digits",
                 "pyrosys-tester", "pyrosys-predictor", "pyrosys-grid-trainer", "pyrosys-grid-analyzer", "pytest"):
        assert step in text, step


@pytest.mark.slow
def test_every_tutorial_command_runs_in_order_from_an_empty_folder(tmp_path):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONWARNINGS": "ignore",
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    script = "set -euo pipefail\n" + "\n".join(f"echo '$ {c}'\n{c}" for c in commands())
    try:
        done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=900)
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    finally:
        subprocess.run([str(BIN / "python"), "-m", "pip", "uninstall", "-y", "-q", "my_lab"], capture_output=True)
    project = tmp_path / "my_lab"
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
