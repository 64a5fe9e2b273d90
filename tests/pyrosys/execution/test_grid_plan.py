"""Grid plans: folders of configs, grid files, sweeps, repetitions and seeds; grid_status.csv."""
from __future__ import annotations

import csv

import pytest

from pyrosys.configuration.loading import load_configuration
from pyrosys.errors import ConfigError
from pyrosys.execution.grid_plan import GridPlan, expand
from pyrosys.folders.grid import Grid, GridStatus

EXPERIMENT = """\
problem: {name: Digits, batch_size: 32}
model: {name: MLP, hidden_sizes: [16]}
training: {seed: 7, optimizer: {name: Adam, lr: 1.0e-3}}
"""


def test_a_folder_runs_every_experiment_and_skips_defaults_and_underscore_files(write, tmp_path):
    write("configs/a.yaml", EXPERIMENT)
    write("configs/sub/b.yaml", "default_configs: ../a.yaml\nmodel: {name: LeNet5}\n")
    write("configs/_private.yaml", EXPERIMENT)
    write("configs/defaults.yaml", "training: {seed: 3}\n")
    plan = expand(tmp_path / "configs")
    assert [run.name for run in plan.runs] == ["000_a", "001_b"]
    assert all(run.error is None and run.seed == 7 for run in plan.runs)


def test_a_broken_config_in_a_folder_becomes_a_failed_run_with_its_reason(write, tmp_path):
    write("configs/a.yaml", EXPERIMENT)
    write("configs/broken.yaml", "problem: {name: Digits}\nmodel: {name: MLP\n")
    plan = expand(tmp_path / "configs")
    broken = next(run for run in plan.runs if "broken" in run.name)
    assert "broken.yaml" in broken.error and "invalid YAML" in broken.error


def test_a_grid_file_expands_tasks_times_the_sweep_times_repetitions_with_distinct_seeds(write, tmp_path):
    write("a.yaml", EXPERIMENT)
    write("b.yaml", EXPERIMENT.replace("seed: 7", "seed: -1"))
    grid = write("grid.yaml", """\
        grid_tasks:
          - default_configs: a.yaml
          - {default_configs: b.yaml, overwrite: {model: {hidden_sizes: [8]}}}
        grid_overwrite: {training: {terminal_conditions: {epoch_limit: 2}}}
        grid_search: {training.optimizer.lr: [0.001, 0.01], model.dropout: [0.0, 0.5]}
        grid_settings: {experiment_repetitions: 2, max_concurrent_runs: 3}
        """)
    plan = expand(grid, seed=0)
    assert len(plan.runs) == 2 * 4 * 2 and plan.max_concurrent_runs == 3
    assert plan.swept_keys == ["training.optimizer.lr", "model.dropout"]
    first = [run for run in plan.runs if run.task == 0]
    assert [run.seed for run in first[:2]] == [7, 8]          # the task's seed kept, then +1 per repetition
    drawn = [run.seed for run in plan.runs if run.task == 1]
    assert len(set(drawn)) == len(drawn) and None not in drawn
    assert len({run.name for run in plan.runs}) == len(plan.runs)
    tree = load_configuration(plan.runs[-1].configs, plan.runs[-1].overrides).tree
    assert tree["training"]["terminal_conditions"]["epoch_limit"] == 2
    assert tree["training"]["optimizer"] == {"name": "Adam", "lr": 0.01}
    assert tree["model"] == {"name": "MLP", "hidden_sizes": [8], "dropout": 0.5}


def test_the_sweep_wins_over_grid_overwrite_which_wins_over_a_tasks_overwrite(write, tmp_path):
    write("a.yaml", EXPERIMENT)
    grid = write("grid.yaml", """\
        grid_tasks: [{default_configs: a.yaml, overwrite: {training: {optimizer: {lr: 0.5}, seed: 1}}}]
        grid_overwrite: {training: {optimizer: {lr: 0.25}}}
        grid_search: {training.seed: [5]}
        """)
    (run,) = expand(grid).runs
    tree = load_configuration(run.configs, run.overrides).tree
    assert tree["training"]["optimizer"]["lr"] == 0.25 and run.seed == 5


def test_the_plan_reads_back_from_grid_yaml(write, tmp_path):
    write("a.yaml", EXPERIMENT)
    grid = write("grid.yaml", "grid_tasks: [{default_configs: a.yaml}]\ngrid_search: {model.dropout: [0.1, 0.2]}\n")
    plan = expand(grid)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "grid.yaml").write_text(plan.to_yaml())
    again = GridPlan.read(Grid(tmp_path / "out"))
    assert again.runs == plan.runs and again.swept_keys == plan.swept_keys


@pytest.mark.parametrize("text, key", [
    ("grid_task: []\n", "grid_task"),
    ("grid_tasks: []\n", "grid_tasks"),
    ("grid_tasks: [{configs: a.yaml}]\n", "grid_tasks[0]"),
    ("grid_tasks: [{default_configs: missing.yaml}]\n", "grid_tasks[0].default_configs"),
    ("grid_tasks: [{default_configs: a.yaml}]\ngrid_search: {model.dropout: 0.5}\n", "grid_search.model.dropout"),
    ("grid_tasks: [{default_configs: a.yaml}]\ngrid_settings: {experiment_repetitions: 0}\n",
     "grid_settings.experiment_repetitions"),
    ("grid_tasks: [{default_configs: a.yaml}]\ngrid_settings: {repetitions: 2}\n", "grid_settings.repetitions"),
    ("grid_tasks: [{default_configs: a.yaml}]\ngrid_settings: {trainer: mip-trainer}\n", "grid_settings.trainer"),
])
def test_a_malformed_grid_file_is_refused_naming_the_key(write, tmp_path, text, key):
    write("a.yaml", EXPERIMENT)
    grid = write("grid.yaml", text)
    with pytest.raises(ConfigError) as caught:
        expand(grid)
    assert caught.value.key == key and caught.value.file.endswith("grid.yaml")


def test_grid_status_is_rewritten_whole_and_read_back_on_resume(write, tmp_path):
    write("a.yaml", EXPERIMENT)
    plan = expand(write("grid.yaml", "grid_tasks: [{default_configs: a.yaml}]\n"
                                     "grid_settings: {experiment_repetitions: 2}\n"))
    status = GridStatus(Grid(tmp_path), plan.runs)
    status.update(plan.runs[0].name, status="failed", reason="the training loss is nan")
    with open(tmp_path / "grid_status.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [r["status"] for r in rows] == ["failed", "pending"] and rows[0]["seed"] == "7"
    assert not list(tmp_path.glob(".grid_status.csv.*"))          # no temporary file left behind
    again = GridStatus(Grid(tmp_path), plan.runs)
    assert again.rows[plan.runs[0].name]["reason"] == "the training loss is nan"
    assert again.counts() == {"pending": 1, "running": 0, "completed": 0, "pruned": 0, "failed": 1}


def test_an_mi_prometheus_grid_file_names_tasks_from_the_repository_root_and_its_trainer(write, tmp_path,
                                                                                         monkeypatch):
    write("configs/baselines/a.yaml", EXPERIMENT)
    grid = write("configs/baselines/grid.yaml", """\
        grid_tasks: [{default_configs: configs/baselines/a.yaml}]
        grid_settings: {experiment_repetitions: 1, max_concurrent_runs: 1, trainer: mip-online-trainer}
        """)
    monkeypatch.chdir(tmp_path)
    plan = expand(grid.relative_to(tmp_path), seed=0)
    assert plan.runs[0].configs == [str(tmp_path / "configs" / "baselines" / "a.yaml")]
