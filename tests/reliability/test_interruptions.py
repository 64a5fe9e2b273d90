"""Interruptions: SIGTERM and Ctrl-C (SIGINT) end a run as `interrupted`, with its episode, exit status
143 / 130 and one line, no traceback; last.ckpt is written at the end of the batch under way, and
--resume from it ends with the uninterrupted run's weights and statistics; a grid resumes its
interrupted runs instead of starting them again."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from pyrosys.callbacks.checkpoint import read_checkpoint
from pyrosys.errors import Interrupted
from pyrosys.execution.grid_plan import GridRun
from pyrosys.folders.grid import Grid
from pyrosys.interruptions import Interruptions
from pyrosys.workers.grid_trainer import next_attempt

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
BIN = Path(os.sys.executable).parent
SLOW = '''
    import time
    import pytorch_lightning as pl

    class Slow(pl.Callback):
        """Slows each training step so that a test can signal the run in the middle of an epoch."""
        def on_train_batch_end(self, *args) -> None:
            time.sleep(0.02)
    '''
SETTINGS = ["training.terminal_conditions.epoch_limit=2", "training.trainer.enable_progress_bar=false",
            "logging.interval=5", "logging.tensorboard=null", "training.callbacks=[{_target_: slowdown.Slow}]"]


def signal_mid_training(tmp_path: Path, signum: int, start: Callable) -> tuple[subprocess.Popen, Path]:
    """A run started, signalled once it passed its first validation (40 episodes an epoch), ended."""
    (tmp_path / "slowdown.py").write_text(textwrap.dedent(SLOW))
    run = start(tmp_path, "--c", str(CONFIGS / "digits/mlp.yaml"), "--outdir", "out", "--set", *SETTINGS)
    deadline = time.monotonic() + 120
    while True:
        folders = list((tmp_path / "out").glob("Digits/MLP/*"))
        if folders and (folders[0] / "models" / "last.ckpt").is_file():
            break
        assert time.monotonic() < deadline and run.poll() is None, "the run ended before it could be signalled"
        time.sleep(0.05)
    time.sleep(0.3)                                  # into the second epoch
    run.send_signal(signum)
    run.wait(timeout=60)
    return run, folders[0]


@pytest.mark.reliability     # two runs and a resume (make reliability); a killed run's resume is in make test
def test_sigterm_mid_epoch_writes_last_ckpt_exits_143_and_resume_gives_the_uninterrupted_run(tmp_path,
                                                                                             started_trainer):
    run, folder = signal_mid_training(tmp_path, signal.SIGTERM, started_trainer)
    error = run.errors.read_text()
    assert run.returncode == 143, error[-3000:]
    assert "Traceback" not in error and "interrupted by SIGTERM at episode" in error
    status = json.loads((folder / "status.json").read_text())
    assert status["status"] == "interrupted" and status["reason"] == "interrupted by SIGTERM"
    assert status["episode"] > 40 and status["episode"] % 40                  # inside the second epoch
    assert read_checkpoint(folder / "models" / "last.ckpt")["global_step"] == status["episode"]
    resumed = started_trainer(tmp_path, "--resume", str(folder))
    assert resumed.wait(timeout=300) == 0, resumed.errors.read_text()[-3000:]
    assert json.loads((folder / "status.json").read_text())["status"] == "completed"

    straight = started_trainer(tmp_path, "--c", str(CONFIGS / "digits/mlp.yaml"), "--outdir", "straight",
                               "--set", *SETTINGS)
    assert straight.wait(timeout=300) == 0, straight.errors.read_text()[-3000:]
    (reference,) = (tmp_path / "straight").glob("Digits/MLP/*")
    final = read_checkpoint(folder / "models" / "last.ckpt")["state_dict"]
    expected = read_checkpoint(reference / "models" / "last.ckpt")["state_dict"]
    assert final.keys() == expected.keys() and all(torch.equal(final[k], expected[k]) for k in final)
    for name in ("training_statistics.csv", "training_set_agg_statistics.csv", "validation_statistics.csv"):
        assert losses(folder / name) == losses(reference / name)


def losses(path: Path) -> list[tuple[str, str]]:
    """(episode, loss) of every row of a statistics table."""
    with open(path, newline="") as stream:
        return [(row["episode"], row["loss"]) for row in csv.DictReader(stream)]


@pytest.mark.reliability
def test_ctrl_c_ends_the_run_as_interrupted_with_130_and_no_traceback(tmp_path, started_trainer):
    run, folder = signal_mid_training(tmp_path, signal.SIGINT, started_trainer)
    error = run.errors.read_text()
    assert run.returncode == 130 and "Traceback" not in error and "interrupted by SIGINT" in error, error[-3000:]
    assert json.loads((folder / "status.json").read_text())["status"] == "interrupted"


def test_a_signal_outside_a_fit_stops_at_once_and_inside_one_waits_for_the_batch_end():
    interruptions = Interruptions()
    with pytest.raises(Interrupted) as caught:
        interruptions.handle(signal.SIGTERM, None)
    assert caught.value.exit_code == 143 and caught.value.signal_name == "SIGTERM"
    interruptions.deferring = True
    interruptions.handle(signal.SIGINT, None)                  # recorded, not raised
    assert interruptions.requested == signal.SIGINT
    with pytest.raises(Interrupted) as caught:                 # a second one does not wait
        interruptions.handle(signal.SIGINT, None)
    assert caught.value.exit_code == 130


def test_a_grid_resumes_an_interrupted_run_from_its_last_checkpoint(tmp_path):
    folder = tmp_path / "000_run"
    (folder / "models").mkdir(parents=True)
    (folder / "models" / "last.ckpt").write_bytes(b"checkpoint")
    (folder / "status.json").write_text(json.dumps({"status": "interrupted"}))
    target, arguments = next_attempt(GridRun("000_run", ["a.yaml"]), {"folder": str(folder)}, Grid(tmp_path))
    assert target == str(folder) and arguments == ["--resume", str(folder)]
    (folder / "status.json").write_text(json.dumps({"status": "failed"}))
    target, arguments = next_attempt(GridRun("000_run", ["a.yaml"]), {"folder": str(folder)}, Grid(tmp_path))
    assert "--resume" not in arguments and target == str(tmp_path / "000_run_1")


def test_a_grid_follows_a_run_folder_from_its_status_file_only_inside_the_grid(tmp_path):
    outside = tmp_path / "elsewhere"
    (outside / "models").mkdir(parents=True)
    (outside / "models" / "last.ckpt").write_bytes(b"checkpoint")
    (outside / "status.json").write_text(json.dumps({"status": "interrupted"}))
    grid = Grid(tmp_path / "grid")
    grid.folder.mkdir()
    target, arguments = next_attempt(GridRun("000_run", ["a.yaml"]), {"folder": str(outside)}, grid)
    assert "--resume" not in arguments and target == str(grid.folder / "000_run")
