"""pyrosys-tester: its overrides go through the trainer's own merging rules (load_configuration)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pyrosys.workers import tester, trainer

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
QUICK = ["training.trainer.enable_progress_bar=false", "logging.tensorboard=null", "logging.mlflow=null",
         "training.terminal_conditions.epoch_limit=1"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A Digits MLP trained for one epoch."""
    outdir = tmp_path_factory.mktemp("tester")
    assert trainer.main(["--c", str(CONFIGS / "digits/mlp.yaml"), "--outdir", str(outdir), "--set", *QUICK]) == 0
    (run,) = [path.parent for path in outdir.glob("*/*/*/status.json")]
    return run / "models" / "best.ckpt"


def test_a_problem_named_on_the_command_line_replaces_the_checkpoint_s_problem_whole(checkpoint, capsys):
    target = "pyrosys.problems.scikit_learn.Digits"
    assert tester.main(["--m", str(checkpoint), "--set", f"problem={{_target_: {target}}}", "--print-config"]) == 0
    problem = yaml.safe_load(capsys.readouterr().out)["problem"]
    assert problem["_target_"] == target and "name" not in problem     # not merged into {name: Digits, ...}


def test_a_value_set_on_the_checkpoint_s_problem_keeps_the_rest_of_it(checkpoint, capsys):
    assert tester.main(["--m", str(checkpoint), "--set", "problem.batch_size=7", "--print-config"]) == 0
    problem = yaml.safe_load(capsys.readouterr().out)["problem"]
    assert problem["name"] == "Digits" and problem["batch_size"] == 7


def test_a_problem_given_in_a_file_replaces_the_checkpoint_s_problem_whole(checkpoint, tmp_path, capsys):
    config = tmp_path / "test.yaml"
    config.write_text("problem: {_target_: pyrosys.problems.scikit_learn.Digits, batch_size: 16}\n")
    assert tester.main(["--m", str(checkpoint), "--c", str(config)]) == 0
    said = capsys.readouterr()
    assert said.out.startswith(f"[pyrosys] loading {checkpoint} ") and "test accuracy" in said.out
    assert f"testing {checkpoint} on the test split (270 samples)" in said.err
