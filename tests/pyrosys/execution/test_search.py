"""The search driver without training: trials asked one run per repetition, told the mean of their runs' best
validation values (by the monitor's mode), pruned when one run was, failed with its reason."""
from __future__ import annotations

import optuna

from pyrosys.execution.grid_plan import GridPlan, GridRun
from pyrosys.execution.search import Search
from pyrosys.execution.search_plan import read_search
from pyrosys.folders.grid import Grid, GridStatus


def finished_run(folder, losses: list[float]) -> str:
    """An experiment folder whose validations gave `losses` (monitor val_loss, mode min)."""
    folder.mkdir(parents=True)
    (folder / "training_configuration.yaml").write_text("validation: {monitor: val_loss, mode: min}\n")
    (folder / "validation_statistics.csv").write_text("episode,epoch,loss\n" + "".join(
        f"{i},{i},{loss}\n" for i, loss in enumerate(losses, start=1)))
    return str(folder)


def search_over(tmp_path, search: dict) -> tuple[Search, GridPlan, Grid]:
    """A search driver of `search` (the grid file's section) over one base run, 000_mlp (seed 7, monitor mode min),
    its grid in `tmp_path`; jobs are named after their runs."""
    spec = read_search(search, "g.yaml")
    plan = GridPlan(source="g.yaml", runs=[], search=spec.to_dict(),
                    bases=[GridRun(name="000_mlp", configs=[str(tmp_path / "mlp.yaml")], seed=7)])
    grid = Grid(tmp_path)
    driver = Search(grid, plan, GridStatus(grid, plan.runs), lambda run: {"name": run.name}, {"000_mlp": "min"})
    return driver, plan, grid


def test_a_trial_is_told_the_mean_of_its_repetitions_best_values_and_pruned_or_failed_as_its_runs(tmp_path):
    search, plan, grid = search_over(tmp_path, {"sampler": "random", "trials": 3, "repetitions": 2, "seed": 0,
                                                "space": {"training.optimizer.lr": {"low": 1.0e-3, "high": 1.0e-1}}})
    jobs = [search.next_job() for _ in range(6)]
    assert [job["name"] for job in jobs] == [f"000_mlp_t00{t}_rep{r}" for t in range(3) for r in range(2)]
    assert search.next_job() is None and [run.seed for run in plan.runs] == [7, 8] * 3
    # the pruner watches each trial's first repetition (its steps line up with the other trials')
    assert ["trial_id" in job["trial"] for job in jobs] == [True, False] * 3
    outcomes = [({"status": "completed", "folder": finished_run(tmp_path / "a", [0.9, 0.4, 0.5])},
                 {"status": "completed", "folder": finished_run(tmp_path / "b", [0.8, 0.6])}),
                ({"status": "pruned"}, {"status": "completed", "folder": finished_run(tmp_path / "c", [0.7])}),
                ({"status": "completed", "folder": finished_run(tmp_path / "d", [0.3])},
                 {"status": "failed", "reason": "diverged"})]
    for index, results in enumerate(outcomes):
        for repetition, result in enumerate(results):
            search.finished({**jobs[2 * index + repetition], "trial": {"study": "000_mlp", "number": index}}, result)
    trials = optuna.load_study(study_name="000_mlp", storage=grid.study_url).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED", "FAIL"]
    assert trials[0].value == (0.4 + 0.6) / 2 and trials[2].user_attrs["failed"] == "diverged"


def test_the_grid_sampler_runs_no_more_trials_than_its_combinations(tmp_path):
    grid_search = {"sampler": "grid", "trials": 5, "space": {"model.dropout": {"choices": [0.1, 0.2]}}}
    assert read_search(grid_search, "g.yaml").budget() == 2
    assert read_search({"trials": 5, "space": {"a.b": {"choices": [1, 2]}}}, "g").budget() == 5
    search, _, _ = search_over(tmp_path, grid_search)
    assert [search.next_job()["name"] for _ in range(2)] == ["000_mlp_t000", "000_mlp_t001"]
    assert search.next_job() is None


def test_a_trial_left_with_some_of_its_values_draws_the_others_when_the_grid_resumes(tmp_path):
    """A grid killed inside the study's ask (which stores a trial's values one by one) left a running trial with
    only its first value: the resumed search draws the rest before planning its run, which gets them all."""
    search = {"sampler": "random", "trials": 2, "seed": 0,
              "space": {"training.optimizer.lr": {"low": 1.0e-3, "high": 1.0e-1},
                        "model.hidden_sizes": {"choices": [[16], [64, 32]]}}}
    first, _, _ = search_over(tmp_path, search)
    half_asked = first.studies["000_mlp"].ask()
    half_asked.suggest_float("training.optimizer.lr", 1.0e-3, 1.0e-1)        # the kill came before the second
    resumed, plan, _ = search_over(tmp_path, search)           # the same grid folder, its study as left
    assert resumed.next_job()["name"] == "000_mlp_t000"
    (stored,) = resumed.studies["000_mlp"].get_trials()
    assert set(stored.params) == {"training.optimizer.lr", "model.hidden_sizes"}
    assert stored.params["training.optimizer.lr"] == half_asked.params["training.optimizer.lr"]
    (run,) = plan.runs
    assert set(run.swept) == {"training.optimizer.lr", "model.hidden_sizes"} and run.swept["model.hidden_sizes"] in (
        [16], [64, 32])
