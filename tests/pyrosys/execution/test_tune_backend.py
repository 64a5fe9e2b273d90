"""The Ray Tune backend of a search (`--backend ray`): a small Digits search on a local Ray instance, its
restore after the driver is killed, its refusals, and the pruner -> scheduler mapping."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pyrosys.errors import ConfigError
from pyrosys.execution.tune_backend import check_backend, check_ray, scheduler
from pyrosys.folders.grid import Grid

BIN = Path(sys.executable).parent
MLP = """\
problem: {name: Digits, batch_size: 64}
model: {name: MLP, hidden_sizes: [32]}
training:
  seed: 11
  optimizer: {name: Adam, lr: 0.01}
  terminal_conditions: {epoch_limit: 2}
  trainer: {enable_progress_bar: false}
logging: {interval: 5, mlflow: null, tensorboard: null}
"""
SEARCH = """\
grid_tasks: [{default_configs: mlp.yaml}]
search:
  sampler: random
  trials: 4
  seed: 0
  space:
    training.optimizer.lr: {low: 1.0e-4, high: 1.0e-1, log: true}
    model.hidden_sizes: {choices: [[16], [64, 32]]}
  pruner: {name: median, warmup_validations: 0, startup_trials: 1}
"""
RAY_PROCESSES = ("raylet", "gcs_server", "ray::")


def search_file(root: Path) -> Path:
    (root / "mlp.yaml").write_text(MLP)
    (root / "search.yaml").write_text(SEARCH)
    return root / "search.yaml"


def status_rows(grid: Path) -> dict[str, dict[str, str]]:
    with open(grid / Grid.STATUS, newline="") as stream:
        return {row["run"]: row for row in csv.DictReader(stream)}


def ray_processes_of(session: int) -> list[int]:
    """The Ray processes (raylet, gcs_server, ray::...) left in a session (a killed driver's)."""
    listing = subprocess.run(["ps", "-eo", "pid=,sid=,args="], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in listing.splitlines()
            if int(line.split()[1]) == session and any(name in line for name in RAY_PROCESSES)]


def trainer(*arguments: object, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run([BIN / "pyrosys-grid-trainer", *map(str, arguments)], capture_output=True, text=True,
                          timeout=timeout)


def check_the_study(grid: Path) -> list:
    """The study has exactly 4 ended trials, each parameter set once, each run in grid.yaml and grid_status.csv."""
    import optuna

    from pyrosys.execution.grid_plan import GridPlan

    (study,) = optuna.get_all_study_names(f"sqlite:///{grid / Grid.STUDY}")
    trials = optuna.load_study(study_name=study, storage=f"sqlite:///{grid / Grid.STUDY}").get_trials()
    assert len(trials) == 4 and all(trial.state.is_finished() for trial in trials)
    assert len({tuple(sorted(trial.params.items())) for trial in trials}) == 4
    plan = GridPlan.read(Grid(grid))
    assert sorted(run.trial for run in plan.runs) == [0, 1, 2, 3]
    rows = status_rows(grid)
    assert {row["status"] for row in rows.values()} <= {"completed", "pruned"} and len(rows) == 4
    return trials


@pytest.mark.integration     # a local Ray instance: make integration
def test_a_search_on_tune_gives_the_grid_layout_and_the_analyzer_table(tmp_path):
    pytest.importorskip("ray")
    done = trainer("--c", search_file(tmp_path), "--outdir", tmp_path / "out", "--backend", "ray",
                   "--max-concurrent", 2)
    assert done.returncode == 0, done.stdout + done.stderr
    (grid,) = (tmp_path / "out").glob("grid_*")
    trials = check_the_study(grid)
    assert all((grid / f"000_mlp_t{number:03d}").is_dir() and Grid(grid).log_of(f"000_mlp_t{number:03d}").is_file()
               for number in range(4))
    assert (grid / Grid.TUNE / "000_mlp").is_dir()
    rows = status_rows(grid)
    for trial in trials:                  # optuna.db and grid_status.csv agree on what was pruned
        row = rows[f"000_mlp_t{trial.number:03d}"]
        assert (trial.state.name == "PRUNED") == (row["status"] == "pruned")
        assert row["status"] != "pruned" or row["reason"].startswith("pruned (Tune's MedianStoppingRule")
    analyzed = subprocess.run([BIN / "pyrosys-grid-analyzer", "--expdir", grid], capture_output=True, text=True,
                              timeout=120)
    assert analyzed.returncode == 0, analyzed.stdout + analyzed.stderr
    with open(grid / Grid.ANALYSIS[0], newline="") as stream:
        table = list(csv.DictReader(stream))
    assert sorted(int(row["trial"]) for row in table) == [0, 1, 2, 3]
    assert all(row["state"] in ("complete", "pruned") and row["objective"] and row["training.optimizer.lr"]
               for row in table)
    assert all(row["state"] == ("pruned" if row["status"] == "pruned" else "complete") for row in table)


@pytest.mark.integration
def test_a_search_on_tune_restores_after_its_driver_is_killed(tmp_path):
    pytest.importorskip("ray")
    driver = subprocess.Popen([BIN / "pyrosys-grid-trainer", "--c", search_file(tmp_path), "--outdir",
                               tmp_path / "out", "--backend", "ray", "--max-concurrent", "2"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:              # until a first trial ended
            time.sleep(0.3)
            grids = list((tmp_path / "out").glob("grid_*"))
            if grids and (grids[0] / Grid.STATUS).is_file() and any(
                    row["status"] in ("completed", "pruned") for row in status_rows(grids[0]).values()):
                break
        assert driver.poll() is None, "the search ended before it could be killed"
    finally:
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        time.sleep(1)
        for pid in ray_processes_of(driver.pid):       # what the killed driver's Ray instance left
            os.kill(pid, signal.SIGKILL)
    (grid,) = (tmp_path / "out").glob("grid_*")
    refused = trainer("--resume", grid, timeout=60)    # the grid remembers it ran on Tune
    assert refused.returncode == 2 and "--backend ray" in refused.stdout + refused.stderr
    resumed = trainer("--resume", grid, "--backend", "ray")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    check_the_study(grid)
    assert not ray_processes_of(driver.pid)


@pytest.mark.integration
def test_a_trial_whose_sampled_value_is_wrong_fails_with_its_reason_and_the_search_goes_on(tmp_path):
    pytest.importorskip("ray")
    search_file(tmp_path)
    (tmp_path / "search.yaml").write_text(SEARCH.replace("trials: 4", "trials: 3").replace("sampler: random",
                                                                                          "sampler: grid")
                                          .replace("    training.optimizer.lr: {low: 1.0e-4, high: 1.0e-1, log: true}\n"
                                                   "    model.hidden_sizes: {choices: [[16], [64, 32]]}",
                                                   "    model.dropout: {choices: [0.1, 1.5, 0.2]}"))
    done = trainer("--c", tmp_path / "search.yaml", "--outdir", tmp_path / "out", "--backend", "ray",
                   "--max-concurrent", 2, "--set", "training.terminal_conditions.epoch_limit=1")
    assert done.returncode == 1, done.stdout + done.stderr       # the search went on; the grid exits 1 at the end
    (grid,) = (tmp_path / "out").glob("grid_*")
    rows = status_rows(grid)
    statuses = sorted(row["status"] for row in rows.values())
    assert len(statuses) == 3 and statuses.count("failed") == 1 and set(statuses) <= {"completed", "pruned", "failed"}
    (failed,) = (row for row in rows.values() if row["status"] == "failed")
    assert "MLP's dropout must be a number in [0, 1), not 1.5" in failed["reason"]


@pytest.mark.integration
def test_an_unreachable_address_is_refused_at_once_and_nothing_is_written(tmp_path):
    pytest.importorskip("ray")
    started = time.monotonic()
    done = trainer("--c", search_file(tmp_path), "--outdir", tmp_path / "out", "--backend", "ray",
                   "--address", "127.0.0.1:9", timeout=60)
    assert done.returncode == 2 and "no Ray cluster answers at 127.0.0.1:9" in done.stdout + done.stderr
    assert time.monotonic() - started < 30 and not (tmp_path / "out").exists()


def test_a_search_resumes_only_on_the_backend_it_ran_on(tmp_path):
    grid = Grid(tmp_path)
    check_backend(grid, "local")                     # a grid that never ran: either backend
    check_backend(grid, "ray")
    grid.study_file.write_text("")
    with pytest.raises(ConfigError, match="ran on the local backend"):
        check_backend(grid, "ray")
    grid.tune_folder.mkdir()
    check_backend(grid, "ray")
    with pytest.raises(ConfigError, match="ran on the ray backend"):
        check_backend(grid, "local")


def test_the_pruners_map_to_tune_schedulers():
    pytest.importorskip("ray")
    from ray.tune import schedulers

    median = scheduler({"name": "median", "warmup_validations": 2, "startup_trials": 3}, "max")
    assert isinstance(median, schedulers.MedianStoppingRule)
    assert (median._time_attr, median._grace_period, median._min_samples_required) == ("training_iteration", 3, 3)
    hyperband = scheduler({"name": "hyperband", "min_validations": 2, "max_validations": 9, "reduction_factor": 3},
                          "min")
    assert isinstance(hyperband, schedulers.ASHAScheduler) and hyperband._time_attr == "training_iteration"
    assert isinstance(scheduler({"name": "none"}, "min"), schedulers.FIFOScheduler)
    with pytest.raises(ConfigError, match="percentile pruner has no Ray Tune scheduler"):
        scheduler({"name": "percentile", "percentile": 25.0}, "min")


def test_without_ray_the_backend_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigError) as refused:
        check_ray(None)
    assert 'pip install "pyrosys[ray]"' in refused.value.hint
