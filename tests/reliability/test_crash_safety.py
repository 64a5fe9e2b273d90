"""Crash safety: a trainer SIGKILLed during a training step, a validation, a checkpoint write or at a
moment in time leaves a consistent folder, and --resume ends with the uninterrupted run's weights."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pyrosys.callbacks.checkpoint import read_checkpoint

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
# (where, at): MLP on Digits, 40 steps an epoch (about 7 ms each with the fault callback's pause),
# 9 validation batches a validation, 4 epochs; every trial falls after the first checkpoint
TRIALS = [("step", 45), ("step", 57), ("step", 101), ("step", 139), ("validation", 14), ("validation", 23),
          ("validation", 31), ("checkpoint", 2), ("checkpoint", 4), ("checkpoint", 7), ("seconds", 0.5),
          ("seconds", 0.9)]
FAST = {("step", 57), ("checkpoint", 4)}          # in make test; all in make reliability


def trainer(tmp_path: Path, name: str, where: str, at: float, *extra: str) -> subprocess.CompletedProcess:
    callback = json.dumps([{"_target_": "faults.KillAt", "where": where, "at": at,
                            "marker": str(tmp_path / f"{name}.killed")}])
    argv = ["--c", str(CONFIGS / "digits/mlp.yaml"), "--outdir", str(tmp_path), "--run-name", name, "--set",
            "training.terminal_conditions.epoch_limit=4", "training.trainer.enable_progress_bar=false",
            "logging.interval=5", "logging.mlflow=null", f"training.callbacks={callback}", *extra]
    env = {**os.environ, "PYTHONPATH": str(HERE), "PYTHONWARNINGS": "ignore"}
    return subprocess.run([str(BIN / "pyrosys-trainer"), *argv], capture_output=True, text=True, env=env, timeout=300)


def resume(tmp_path: Path, folder: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(HERE), "PYTHONWARNINGS": "ignore"}
    return subprocess.run([str(BIN / "pyrosys-trainer"), "--resume", str(folder)], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference: the same configuration, never killed (its marker exists before it starts)."""
    root = tmp_path_factory.mktemp("reference")
    (root / "reference.killed").write_text("never\n")
    done = trainer(root, "reference", "step", 1)
    assert done.returncode == 0, done.stderr[-3000:]
    return read_checkpoint(root / "reference" / "models" / "last.ckpt")["state_dict"]


def trial_marks(where: str, at: float) -> list:
    return [] if (where, at) in FAST else [pytest.mark.reliability]


@pytest.mark.parametrize("where, at", [pytest.param(w, a, marks=trial_marks(w, a), id=f"{w}-{a}") for w, a in TRIALS])
def test_a_run_killed_then_resumed_ends_with_the_uninterrupted_weights(tmp_path, uninterrupted, where, at):
    killed = trainer(tmp_path, "run", where, at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    folder = tmp_path / "run"
    assert json.loads((folder / "status.json").read_text())["status"] == "running"
    checkpoints = [p for p in (folder / "models").glob("*.ckpt")]
    assert checkpoints and all(read_checkpoint(p)["state_dict"] for p in checkpoints)   # whole, loadable
    done = resume(tmp_path, folder)
    assert done.returncode == 0, done.stderr[-3000:]
    status = json.loads((folder / "status.json").read_text())
    assert status["status"] == "completed" and len(status["resumed"]) == 1
    final = read_checkpoint(folder / "models" / "last.ckpt")["state_dict"]
    assert final.keys() == uninterrupted.keys()
    assert all(torch.equal(final[k], uninterrupted[k]) for k in final)
    assert not list((folder / "models").glob(".*.tmp"))          # a killed write's temporary file is cleared


def test_a_run_killed_while_writing_its_first_checkpoint_has_nothing_half_written_and_resume_says_so(tmp_path):
    killed = trainer(tmp_path, "run", "checkpoint", 1)
    assert killed.returncode == -signal.SIGKILL
    models = tmp_path / "run" / "models"
    assert not list(models.glob("*.ckpt"))                        # the temporary file was never renamed
    done = resume(tmp_path, tmp_path / "run")
    assert done.returncode == 2 and "no checkpoint to go on from" in done.stderr and "Traceback" not in done.stderr
