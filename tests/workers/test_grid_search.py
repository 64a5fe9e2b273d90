"""Searches through pyrosys-grid-trainer with real runs on the local pool: Optuna trials with median pruning
(in a seeded order that makes the pruned trial known), a grid killed mid-study and resumed (exactly `trials`
trials, each value set once, none lost), a trial whose sampled value is wrong failed with its reason while the
study goes on, the analyzer's trial table and Optuna's pictures, and bad searches refused before any trial."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
import yaml

BIN = Path(sys.executable).parent
MLP = """\
problem: {name: Digits, batch_size: 64}
model: {name: MLP, hidden_sizes: [32]}
training:
  seed: 11
  optimizer: {name: Adam, lr: 0.01}
  terminal_conditions: {epoch_limit: 3}
  trainer: {enable_progress_bar: false}
logging: {mlflow: null, tensorboard: null}
"""
SEARCH = """\
grid_tasks: [{default_configs: mlp.yaml}]
search:
  sampler: tpe
  trials: 5
  seed: 0
  space:
    training.optimizer.lr: {low: 1.0e-5, high: 1.0e-1, log: true}
    model.hidden_sizes: {choices: [[16], [64, 32]]}
  pruner: {name: median, warmup_validations: 1, startup_trials: 2}
grid_settings: {max_concurrent_runs: 2}
"""


def grid_trainer(*args: object, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([BIN / "pyrosys-grid-trainer", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def status_rows(grid: Path) -> dict[str, dict[str, str]]:
    with open(grid / "grid_status.csv", newline="") as stream:
        return {row["run"]: row for row in csv.DictReader(stream)}


def trials(grid: Path, study: str = "000_mlp") -> list:
    return optuna.load_study(study_name=study, storage=f"sqlite:///{grid / 'optuna.db'}").get_trials()


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A 5-trial TPE search with median pruning, killed (SIGKILL) once its first trial ended, then resumed (which
    values the trials after the kill draw, and so which are pruned, depends on when the kill came)."""
    root = tmp_path_factory.mktemp("search")
    (root / "mlp.yaml").write_text(MLP)
    (root / "search.yaml").write_text(SEARCH)
    started = subprocess.Popen([BIN / "pyrosys-grid-trainer", "--c", root / "search.yaml", "--outdir", root / "out"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline, grid = time.monotonic() + 120, None
    while time.monotonic() < deadline and started.poll() is None:
        grids = list((root / "out").glob("grid_*"))
        if grids and (grids[0] / "grid_status.csv").is_file() and \
                any(r["status"] in ("completed", "pruned") for r in status_rows(grids[0]).values()):
            grid = grids[0]
            break
        time.sleep(0.2)
    os.killpg(started.pid, signal.SIGKILL)           # the grid and its pool workers, mid-study
    started.wait()
    assert grid is not None, "no trial ended within 120 s"
    before = {t.number: t.state.name for t in trials(grid)}
    resumed = grid_trainer("--resume", grid)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    return grid, before, resumed.stdout


def test_a_killed_search_resumes_to_exactly_its_trials_each_value_set_once(searched):
    grid, before, _ = searched
    assert "RUNNING" in before.values() and len(before) < 5
    after = trials(grid)
    assert len(after) == 5 and {t.state.name for t in after} <= {"COMPLETE", "PRUNED"}
    assert len({tuple(sorted(t.params.items())) for t in after}) == 5
    plan = yaml.safe_load((grid / "grid.yaml").read_text())
    assert sorted(run["trial"] for run in plan["runs"]) == [0, 1, 2, 3, 4]
    rows = status_rows(grid)
    assert sorted(rows) == [f"000_mlp_t{n:03d}" for n in range(5)]
    assert all(rows[f"000_mlp_t{t.number:03d}"]["status"] == {"COMPLETE": "completed", "PRUNED": "pruned"}
               [t.state.name] for t in after)
    for trial in after:          # each run's sampled values are its trial's (in its last attempt's folder)
        folder = Path(rows[f"000_mlp_t{trial.number:03d}"]["folder"])
        config = yaml.safe_load((folder / "training_configuration.yaml").read_text())
        assert config["training"]["optimizer"]["lr"] == pytest.approx(trial.params["training.optimizer.lr"])
        assert str(config["model"]["hidden_sizes"]).replace(" ", "") == trial.params["model.hidden_sizes"].replace(
            " ", "")


def test_resuming_with_another_search_lists_what_differs_and_changes_nothing(searched):
    grid, _, _ = searched
    changed = grid.parent.parent / "changed_search.yaml"           # beside the grid's own, naming the same mlp.yaml
    changed.write_text(SEARCH.replace("trials: 5", "trials: 7").replace("sampler: tpe", "sampler: random"))
    kept = {name: (grid / name).read_bytes() for name in ("grid.yaml", "grid_status.csv")}
    refused = grid_trainer("--resume", grid, "--c", changed)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    assert "search.sampler: 'tpe' -> 'random'" in refused.stderr and "search.trials: 5 -> 7" in refused.stderr
    assert "its tasks or grid_search differ" not in refused.stderr
    assert {name: (grid / name).read_bytes() for name in kept} == kept and len(trials(grid)) == 5


def test_pruned_trials_stop_early_with_the_value_that_pruned_them(tmp_path):
    """Three trials one after another, in the grid sampler's seeded order 0.003, 0.01, then 1e-6: the median
    pruner, started after two trials, stops the last one (its loss stays far above theirs)."""
    (tmp_path / "mlp.yaml").write_text(MLP)
    (tmp_path / "search.yaml").write_text(textwrap.dedent("""\
        grid_tasks: [{default_configs: mlp.yaml}]
        search:
          sampler: grid
          trials: 3
          seed: 3
          space: {training.optimizer.lr: {choices: [0.01, 0.003, 1.0e-6]}}
          pruner: {name: median, warmup_validations: 1, startup_trials: 2}
        grid_settings: {max_concurrent_runs: 1}
        """))
    done = grid_trainer("--c", tmp_path / "search.yaml", "--outdir", tmp_path / "out")
    assert done.returncode == 0, done.stdout + done.stderr
    (grid,) = (tmp_path / "out").glob("grid_*")
    by_lr = {t.params["training.optimizer.lr"]: t for t in trials(grid)}
    assert [t.params["training.optimizer.lr"] for t in sorted(by_lr.values(), key=lambda t: t.number)] == \
        [0.003, 0.01, 1.0e-6]
    assert by_lr[0.003].state.name == by_lr[0.01].state.name == "COMPLETE" and by_lr[1.0e-6].state.name == "PRUNED"
    pruned = by_lr[1.0e-6]
    status = yaml.safe_load((Path(status_rows(grid)[f"000_mlp_t{pruned.number:03d}"]["folder"]) / "status.json")
                            .read_text())
    assert status["status"] == "pruned" and status["epoch"] < 3
    assert status["reason"].startswith("pruned (val_loss ") and "at validation" in status["reason"]
    assert len(pruned.intermediate_values) == status["epoch"]
    assert "done: 2 completed, 1 pruned, 0 failed" in done.stdout


def test_the_analyzer_tables_trials_with_state_values_and_objective_and_draws_optuna_pictures(searched):
    grid, _, _ = searched
    done = subprocess.run([BIN / "pyrosys-grid-analyzer", "--expdir", grid], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    with open(grid / "analysis.csv", newline="") as stream:
        table = list(csv.DictReader(stream))
    assert list(table[0])[:8] == ["rank", "run", "trial", "state", "status", "training.optimizer.lr",
                                  "model.hidden_sizes", "objective"]
    by_trial = {t.number: t for t in trials(grid)}
    for row in table:
        trial = by_trial[int(row["trial"])]
        assert row["state"] == {"COMPLETE": "complete", "PRUNED": "pruned"}[trial.state.name]
        expected = trial.value if trial.value is not None else list(trial.intermediate_values.values())[-1]
        assert float(row["objective"]) == pytest.approx(expected, rel=1e-5)
    assert table[0]["state"] == "complete" and float(table[0]["objective"]) == pytest.approx(min(
        t.value for t in by_trial.values() if t.state.name == "COMPLETE"), rel=1e-5)
    assert {p.name for p in grid.glob("search_*.png")} == {"search_history.png", "search_importances.png",
                                                           "search_parallel.png"}


def test_a_trial_with_a_wrong_value_fails_with_its_reason_and_the_study_goes_on(tmp_path):
    (tmp_path / "mlp.yaml").write_text(MLP.replace("epoch_limit: 3", "epoch_limit: 1"))
    (tmp_path / "search.yaml").write_text(textwrap.dedent("""\
        grid_tasks: [{default_configs: mlp.yaml}]
        search:
          sampler: grid
          trials: 3
          space: {model.dropout: {choices: [0.1, 1.5, 0.2]}}     # the ends are checked before any trial
        """))
    done = grid_trainer("--c", tmp_path / "search.yaml", "--outdir", tmp_path / "out")
    assert done.returncode == 1, done.stdout + done.stderr
    (grid,) = (tmp_path / "out").glob("grid_*")
    states = {t.params["model.dropout"]: t for t in trials(grid)}
    assert states[0.1].state.name == states[0.2].state.name == "COMPLETE" and states[1.5].state.name == "FAIL"
    assert "dropout" in states[1.5].user_attrs["failed"]
    failed = [row for row in status_rows(grid).values() if row["status"] == "failed"]
    assert len(failed) == 1 and "dropout" in failed[0]["reason"]
    assert "done: 2 completed, 0 pruned, 1 failed" in done.stdout and "Traceback" not in done.stderr


@pytest.mark.parametrize("space, key, words", [
    ("{model.hiden_sizes: {choices: [[16]]}}", "search.space.model.hiden_sizes", "hidden_sizes"),
    ("{training.optimizer.lr: {low: 0.1, high: 0.01}}", "search.space.training.optimizer.lr.low", "above high"),
    ("{training.optimizer.lr: {low: 0.0, high: 0.1, log: true}}", "search.space.training.optimizer.lr.low", "low > 0"),
])
def test_a_bad_search_exits_2_before_any_trial_and_writes_nothing(tmp_path, space, key, words):
    (tmp_path / "mlp.yaml").write_text(MLP)
    (tmp_path / "search.yaml").write_text(f"grid_tasks: [{{default_configs: mlp.yaml}}]\n"
                                          f"search: {{trials: 3, space: {space}}}\n")
    done = grid_trainer("--c", tmp_path / "search.yaml", "--outdir", tmp_path / "out", timeout=60)
    assert done.returncode == 2 and f"key '{key}'" in done.stderr and words in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()


def test_what_ray_tune_cannot_run_is_refused_before_the_grid_folder_is_made(tmp_path):
    (tmp_path / "mlp.yaml").write_text(MLP)
    (tmp_path / "search.yaml").write_text(SEARCH.replace("  seed: 0\n", "  seed: 0\n  repetitions: 2\n"))
    done = grid_trainer("--c", tmp_path / "search.yaml", "--outdir", tmp_path / "out", "--backend", "ray", timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr and not (tmp_path / "out").exists()
    assert "one repetition per trial" in done.stderr or "needs Ray" in done.stderr     # Ray installed, or not
