"""Names given for folders stay one path component inside --outdir; one writer per experiment folder; a
resumed experiment is checked against the configuration its checkpoint carries, not the editable file."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyrosys.folders.experiment import Experiment
from pyrosys.workers import grid_trainer, trainer

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
QUICK = ["training.trainer.enable_progress_bar=false", "logging.tensorboard=null", "logging.mlflow=null",
         "training.terminal_conditions.epoch_limit=1"]


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> Path:
    """A finished one-epoch Digits MLP experiment (resumable: it has its last checkpoint)."""
    outdir = tmp_path_factory.mktemp("writers")
    assert trainer.main(["--c", str(CONFIGS / "digits/mlp.yaml"), "--outdir", str(outdir), "--run-name", "done",
                         "--set", *QUICK]) == 0
    return outdir / "done"


@pytest.mark.parametrize("flags", [["--run-name", "../../escaped"], ["--run-name", "/tmp/absolute_run"],
                                   ["--run-name", "a/b"], ["--run-name", ".."], ["--savetag", "x/y"],
                                   ["--savetag", "../up"]])
def test_folder_names_that_leave_outdir_are_refused_before_anything_is_written(tmp_path, flags, capsys):
    outdir = tmp_path / "deep" / "out"
    argv = ["--c", str(CONFIGS / "digits/mlp.yaml"), "--outdir", str(outdir), *flags, "--set", *QUICK]
    assert trainer.main(argv) == 2
    error = capsys.readouterr().err
    assert flags[0] in error and "one plain name" in error and "Traceback" not in error
    assert not outdir.exists() and not (tmp_path / "escaped").exists() and not Path("/tmp/absolute_run").exists()


def test_a_grid_s_savetag_is_one_plain_name_too(tmp_path, capsys):
    argv = ["--c", str(CONFIGS / "digits/mlp.yaml"), "--outdir", str(tmp_path / "out"), "--savetag", "x/y"]
    assert grid_trainer.main(argv) == 2
    assert "--savetag" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_a_second_writer_of_an_experiment_is_refused_naming_the_holder(experiment, capsys):
    holder = Experiment(experiment)
    holder.hold()
    try:
        assert trainer.main(["--resume", str(experiment), "--set", "training.terminal_conditions.epoch_limit=2"]) == 2
    finally:
        holder.release()
    error = capsys.readouterr().err
    assert "another process is writing this experiment" in error and "process" in error and "Traceback" not in error


def test_an_edited_saved_configuration_is_caught_against_the_checkpoint_s_own(experiment, capsys):
    saved = experiment / "training_configuration.yaml"
    original = saved.read_text()
    status = (experiment / "status.json").read_text()
    try:
        saved.write_text(original.replace("lr: 0.001", "lr: 0.5"))
        assert "lr: 0.5" in saved.read_text()
        assert trainer.main(["--resume", str(experiment), "--set", "training.terminal_conditions.epoch_limit=2"]) == 2
    finally:
        saved.write_text(original)
    error = capsys.readouterr().err
    assert "training.optimizer.lr: 0.001 -> 0.5" in error and "Traceback" not in error
    assert (experiment / "status.json").read_text() == status          # nothing was written
    assert json.loads(status)["status"] == "completed"


def test_resume_drops_a_row_a_kill_cut_short_and_refuses_a_damaged_one(tmp_path):
    from pyrosys.errors import ConfigError
    from pyrosys.folders.resume import truncate_statistics

    experiment = Experiment(tmp_path)
    table = experiment.csv("training")
    table.write_text("episode,epoch,loss\n5,0,0.9\n10,0,0.8\n15,0,0.7\n1")      # the kill cut "15x,..." short
    truncate_statistics(experiment, 10)
    assert table.read_text() == "episode,epoch,loss\n5,0,0.9\n10,0,0.8\n"
    table.write_text("episode,epoch,loss\n5,0,0.9\ngarbage\n10,0,0.8\n")
    with pytest.raises(ConfigError, match="line 3"):
        truncate_statistics(experiment, 10)


def test_resume_of_a_grid_folder_points_to_the_grid_trainer(tmp_path, capsys):
    (tmp_path / "grid.yaml").write_text("source: x\nruns: []\n")
    assert trainer.main(["--resume", str(tmp_path)]) == 2
    assert "pyrosys-grid-trainer --resume" in capsys.readouterr().err


def test_resume_with_an_unreadable_status_file_is_refused(experiment, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(experiment, copy)
    (copy / "status.json").write_text('{"status": "runn')
    assert trainer.main(["--resume", str(copy), "--set", "training.terminal_conditions.epoch_limit=2"]) == 2
    error = capsys.readouterr().err
    assert "status.json" in error and "Traceback" not in error
