"""Training in depth: terminal conditions and their reasons, validation schedule, callbacks from YAML,
self-description, plots, progress lines."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from pyrosys.callbacks.checkpoint import read_checkpoint
from pyrosys.workers import trainer

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
QUIET = ["training.trainer.enable_progress_bar=false", "logging.tensorboard=null"]


def train(tmp_path: Path, *overrides: str, config: str = "digits/mlp.yaml") -> Path:
    status = trainer.main(["--c", str(CONFIGS / config), "--outdir", str(tmp_path), "--set", *QUIET, *overrides])
    assert status == 0
    (run,) = [status.parent for status in tmp_path.glob("*/*/*/status.json")]
    return run


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def status(run: Path) -> dict:
    return json.loads((run / "status.json").read_text())


def callback_states(checkpoint: Path, field: str) -> list[dict]:
    """The states of a checkpoint's Lightning callbacks that hold `field`."""
    return [state for state in read_checkpoint(checkpoint)["callbacks"].values() if field in state]


def test_episode_limit_ends_the_run_and_is_the_recorded_reason(tmp_path):
    run = train(tmp_path, "training.terminal_conditions.episode_limit=25")
    assert status(run)["reason"] == "episode_limit (25 episodes)" and status(run)["episode"] == 25
    assert "training ended: episode_limit" in (run / "pyrosys.log").read_text()
    # stopped before the first validation: one is run at the end, so that best.ckpt exists
    assert [r["episode"] for r in rows(run / "validation_statistics.csv")] == ["25"]
    assert (run / "models" / "best.ckpt").is_file() and (run / "models" / "last.ckpt").is_file()


def test_loss_stop_ends_the_run_when_the_interval_mean_is_low_enough(tmp_path):
    run = train(tmp_path, "training.terminal_conditions.loss_stop=1.5", "logging.interval=10")
    assert status(run)["reason"].startswith("loss_stop") and status(run)["epoch"] < 30


def test_early_stopping_follows_the_monitor_and_patience(tmp_path):
    # two validations an epoch: patience 1 stops in the first epoch (Lightning's epoch 0), which is epoch 1
    run = train(tmp_path, "training.terminal_conditions.early_stopping={patience: 1, min_delta: 10.0}",
                "validation.interval=0.5")
    assert status(run)["reason"].startswith("early_stopping (val_loss")
    assert status(run)["reason"].endswith("stopped at epoch 1)")
    validations = rows(run / "validation_statistics.csv")
    assert [row["epoch"] for row in validations] == ["1", "1"]
    # last.ckpt is written as the second validation ends, after early stopping judged the first one
    (stopping,) = callback_states(run / "models" / "last.ckpt", "best_score")
    assert abs(float(stopping["best_score"]) - float(validations[0]["loss"])) < 1e-5


def test_gradient_clipping_bounds_the_update(tmp_path):
    run = train(tmp_path, "training.gradient_clipping=1.0e-6", "training.optimizer={name: SGD, lr: 1.0}",
                "training.terminal_conditions.epoch_limit=1")
    losses = [float(r["loss_mean"]) for r in rows(run / "training_set_agg_statistics.csv")]
    assert abs(losses[0] - 2.3) < 0.1          # clipped steps barely move the weights


def test_partial_validation_every_fraction_of_an_epoch_and_monitor_choice(tmp_path):
    run = train(tmp_path, "validation.interval=0.25", "validation.monitor=val_accuracy", "validation.mode=max",
                "training.terminal_conditions.epoch_limit=2")
    validations = {int(row["episode"]): float(row["accuracy"]) for row in rows(run / "validation_statistics.csv")}
    assert len(validations) == 8
    assert (run / "models" / "best.ckpt").is_file() and (run / "models" / "last.ckpt").is_file()
    # the checkpoint monitor saw each validation's own value, not the one before it (callbacks run before
    # the model's on_validation_epoch_end, where it logs them: monitors read them once validation ends)
    best = max(validations, key=validations.get)
    assert read_checkpoint(run / "models" / "best.ckpt")["global_step"] == best
    (monitor,) = callback_states(run / "models" / "last.ckpt", "best_model_score")
    assert abs(float(monitor["best_model_score"]) - validations[best]) < 1e-5


def test_validation_every_whole_number_of_episodes(tmp_path):
    run = train(tmp_path, "validation.interval=30", "training.terminal_conditions.epoch_limit=2")
    assert [int(r["episode"]) for r in rows(run / "validation_statistics.csv")] == [30, 60]


def test_callbacks_from_yaml_are_built_and_refused_when_not_callbacks(tmp_path, capsys):
    run = train(tmp_path / "ok", "training.callbacks=[{_target_: pytorch_lightning.callbacks.EarlyStopping, "
                                 "monitor: val_loss, patience: 0, min_delta: 10.0}]")
    assert len(rows(run / "validation_statistics.csv")) == 2 and status(run)["reason"].startswith("early_stopping")
    bad = trainer.main(["--c", str(CONFIGS / "digits/mlp.yaml"), "--outdir", str(tmp_path / "bad"), "--set",
                        "training.callbacks=[{_target_: subprocess.Popen, args: [ls]}]"])
    assert bad == 2 and "is a class that is not a callback" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_description_plots_and_plain_progress_lines(tmp_path, capsys):
    run = train(tmp_path, "training.terminal_conditions.epoch_limit=2", "logging.interval=20")
    described = json.loads((run / "description.json").read_text())
    assert described["versions"]["torch"] and described["seeds"]["seed_torch"] == 42
    assert described["git"] is None or len(described["git"]["commit"]) == 40
    assert described["started"] <= described["finished"]
    assert (run / "curves.png").stat().st_size > 10_000
    (testing,) = run.glob("testing_*")
    assert (testing / "confusion_matrix.png").is_file()
    matrix = (testing / "confusion_matrix.csv").read_text().splitlines()
    assert len(matrix) == 11 and sum(int(v) for line in matrix[1:] for v in line.split(",")[1:]) == 270
    err = capsys.readouterr().err
    assert "training: episode 20  epoch 1  loss" in err and "validation: episode" in err


def test_problems_add_their_own_statistics_to_the_training_rows(tmp_path):
    run = train(tmp_path, "problem.episodes=4", "model.hidden_size=8", "validation.problem.episodes=1",
                "testing.problem.episodes=1", "logging.interval=1", "training.terminal_conditions.epoch_limit=1",
                "training.curriculum_learning=null", config="recall/serial_recall.yaml")
    assert "sequence_length" in rows(run / "training_statistics.csv")[0]


@pytest.mark.parametrize("value", ["3", "true", "-1"])
def test_tensorboard_level_outside_0_1_2_is_refused(value, tmp_path, capsys):
    status_code = trainer.main(["--c", str(CONFIGS / "digits/mlp.yaml"), "--set", f"logging.tensorboard={value}"])
    assert status_code == 2 and "logging.tensorboard" in capsys.readouterr().err


def test_tester_repeats_draw_new_samples_for_generated_problems(tmp_path):
    import yaml

    from pyrosys.workers import tester

    run = train(tmp_path / "runs", "problem.episodes=4", "model.hidden_size=8", "validation.problem.episodes=1",
                "testing.problem.episodes=2", "training.terminal_conditions.epoch_limit=1",
                "training.curriculum_learning=null", config="recall/serial_recall.yaml")
    assert tester.main(["--m", str(run / "models" / "best.ckpt"), "--n", "2", "--outdir", str(tmp_path)]) == 0
    (parent,) = tmp_path.glob("testing_*")
    values = yaml.safe_load((parent / "testing_repeats.yaml").read_text())["loss"]["values"]
    assert values[0] != values[1]


def test_a_diverging_loss_ends_the_run_as_failed_with_exit_1_and_no_traceback(tmp_path, capsys):
    argv = ["--c", str(CONFIGS / "digits/mlp.yaml"), "--outdir", str(tmp_path), "--run-name", "diverges", "--set",
            *QUIET, "training.optimizer={name: SGD, lr: 1.0e12}", "logging.interval=5"]
    assert trainer.main(argv) == 1
    err = capsys.readouterr().err
    assert "the run failed: the training loss is nan" in err and "Traceback" not in err
    assert err.count("the training loss is nan") == 1                   # said once on the console
    assert "training failed: the training loss is nan" in (tmp_path / "diverges" / "pyrosys.log").read_text()
    record = status(tmp_path / "diverges")            # --run-name: the folder is <outdir>/<name>
    assert record["status"] == "failed" and "TrainingDiverged" in record["reason"] and record["episode"] <= 10


def test_status_records_where_the_fit_time_went(tmp_path):
    record = status(train(tmp_path, "training.terminal_conditions.epoch_limit=2"))
    assert 0 < record["training_seconds"] < record["fit_seconds"]
    assert 0 < record["validation_seconds"] < record["fit_seconds"]
    assert record["first_step_at"] > 1.7e9                 # a wall-clock time stamp

