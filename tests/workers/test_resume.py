"""Resume: a trainer killed mid-epoch and resumed ends exactly where an uninterrupted run ends."""
from __future__ import annotations

import csv
import json
import os
import signal
import textwrap
import time
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from pyrosys.callbacks.checkpoint import read_checkpoint
from pyrosys.workers import trainer

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
BIN = Path(os.sys.executable).parent
SETTINGS = ["training.terminal_conditions.epoch_limit=4", "training.trainer.enable_progress_bar=false",
            "logging.interval=5", "training.callbacks=[{_target_: slowdown.Slow, seconds: 0.02}]"]


def episodes(path: Path) -> list[int]:
    with open(path, newline="") as stream:
        return [int(row["episode"]) for row in csv.DictReader(stream)]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_gives_the_uninterrupted_weights_csvs_and_mlflow_run(tmp_path,
                                                                                          started_trainer):
    (tmp_path / "slowdown.py").write_text(textwrap.dedent('''
        import time
        import pytorch_lightning as pl

        class Slow(pl.Callback):
            """Slows each training step so that a test can kill the run in the middle of an epoch."""
            def __init__(self, seconds: float) -> None:
                self.seconds = seconds
            def on_train_batch_end(self, *args) -> None:
                time.sleep(self.seconds)
        '''))
    config = ["--c", str(CONFIGS / "digits/mlp.yaml"), "--set", *SETTINGS]
    straight = started_trainer(tmp_path, *config, "--outdir", "straight")
    assert straight.wait(timeout=300) == 0, straight.errors.read_text()[-3000:]

    killed = started_trainer(tmp_path, *config, "--outdir", "killed")
    deadline = time.monotonic() + 120
    while True:
        runs = list((tmp_path / "killed").glob("Digits/MLP/*"))
        statistics = runs[0] / "training_statistics.csv" if runs else None
        if statistics and statistics.is_file() and (runs[0] / "models" / "last.ckpt").is_file() \
                and max(episodes(statistics)) > 100:        # inside the third epoch (40 episodes an epoch)
            break
        assert time.monotonic() < deadline and killed.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    (run,) = runs
    assert json.loads((run / "status.json").read_text())["status"] == "running"
    assert read_checkpoint(run / "models" / "last.ckpt")["global_step"] in (80, 120)

    resumed = started_trainer(tmp_path, "--resume", str(run))
    assert resumed.wait(timeout=300) == 0, resumed.errors.read_text()[-3000:]
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "completed" and status["resumed"][0]["episode"] in (80, 120)

    (reference,) = (tmp_path / "straight").glob("Digits/MLP/*")
    final = read_checkpoint(run / "models" / "last.ckpt")["state_dict"]
    expected = read_checkpoint(reference / "models" / "last.ckpt")["state_dict"]
    assert final.keys() == expected.keys() and all(torch.equal(final[k], expected[k]) for k in final)
    for name in ("training_statistics.csv", "validation_statistics.csv", "training_set_agg_statistics.csv"):
        assert episodes(run / name) == episodes(reference / name)          # no gap, no repeat
    tracked = json.loads((run / "mlflow_run.json").read_text())
    client = MlflowClient(tracking_uri=tracked["tracking_uri"])
    steps = [m.step for m in client.get_metric_history(tracked["run_id"], "training/loss")]
    assert steps == episodes(reference / "training_statistics.csv")
    assert client.get_run(tracked["run_id"]).info.status == "FINISHED"


def test_resume_refuses_changes_other_than_terminal_conditions_and_folders_that_cannot_resume(tmp_path, capsys):
    argv = ["--c", str(CONFIGS / "digits/mlp.yaml"), "--outdir", str(tmp_path), "--set",
            "training.terminal_conditions.epoch_limit=1", "training.trainer.enable_progress_bar=false",
            "logging.mlflow=null"]
    assert trainer.main(argv) == 0
    (run,) = tmp_path.glob("Digits/MLP/*")
    assert trainer.main(["--resume", str(run), "--set", "model.dropout=0.3", "training.optimizer.lr=0.1"]) == 2
    error = capsys.readouterr().err
    assert "model.dropout: 0.0 -> 0.3" in error and "training.optimizer.lr: 0.001 -> 0.1" in error
    assert trainer.main(["--resume", str(tmp_path)]) == 2
    assert "has no training_configuration.yaml" in capsys.readouterr().err
    assert trainer.main(["--resume", str(run), "--set", "training.terminal_conditions.epoch_limit=2"]) == 0
    assert episodes(run / "validation_statistics.csv") == [40, 80]


def test_m_starts_a_new_experiment_from_the_weights(tmp_path):
    argv = ["--c", str(CONFIGS / "digits/mlp.yaml"), "--outdir", str(tmp_path / "a"), "--set",
            "training.terminal_conditions.epoch_limit=1", "training.trainer.enable_progress_bar=false",
            "logging.mlflow=null"]
    assert trainer.main(argv) == 0
    (run,) = (tmp_path / "a").glob("Digits/MLP/*")
    second = [*argv[:3], str(tmp_path / "b"), *argv[4:], "--m", str(run / "models" / "best.ckpt")]
    assert trainer.main(second) == 0
    (new,) = (tmp_path / "b").glob("Digits/MLP/*")
    status = json.loads((new / "status.json").read_text())
    assert status["weights_loaded"]["summary"].startswith("adapter: 6 tensors copied")
