"""A search's trials as grid runs: each trial is asked from its study when a worker is free, planned as runs
(one per repetition) written to grid.yaml before it starts, and told to its study when its runs end: the mean
of their best monitored validation values, pruned when a run was pruned, failed with the reason otherwise.

Resuming a grid keeps every finished trial; a trial left running goes on with the same values (its runs from
their last.ckpt where they left one; runs it never got to are planned from the values the study stored), so
no trial is lost or asked twice and the number of trials is never exceeded.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from pyrosys.atomic import write_text_atomic
from pyrosys.execution.grid_plan import GridPlan, GridRun, trial_run
from pyrosys.execution.search_plan import SearchSpec
from pyrosys.execution.study import (distributions, drawn_values, open_study, optuna_module, tell, trial_id,
                                     trial_params)
from pyrosys.folders.experiment import Experiment
from pyrosys.folders.grid import Grid, GridStatus
from pyrosys.tracking.tables import best_validation


class Search:
    """The studies of a search (one per base run) and the trials under way."""

    def __init__(self, grid: Grid, plan: GridPlan, status: GridStatus, make_job: Callable[[GridRun], dict],
                 directions: dict[str, str]) -> None:
        self.grid, self.plan, self.status, self.make_job = grid, plan, status, make_job
        self.spec = SearchSpec(**plan.search)
        self.bases = {base.name: base for base in plan.bases}
        self.studies = {name: open_study(grid.study_url, name, self.spec, directions[name], plan.source)
                        for name in self.bases}
        self.ready: deque[dict] = deque()
        self.open: dict[tuple[str, int], dict[str, Any]] = {}     # (study, trial) -> trial id, results by run
        self.resume()

    def resume(self) -> None:
        """Trials left running (a grid that died) go on with their values; trials that ended are kept."""
        state = optuna_module().trial.TrialState
        for name, study in self.studies.items():
            for trial in study.get_trials(deepcopy=False, states=(state.RUNNING, state.WAITING)):
                runs = [run for run in self.plan.runs if run.study == name and run.trial == trial.number] \
                    or self.planned(name, trial)
                results = {}
                for run in runs:
                    row = self.status.rows[run.name]
                    if row["status"] in ("completed", "pruned"):
                        results[run.name] = {"status": row["status"], "folder": row.get("folder")}
                    else:
                        results[run.name] = None
                        self.ready.append(self.job(run, trial_id(trial)))
                self.open[(name, trial.number)] = {"id": trial_id(trial), "results": results}
                self.tell_if_done(name, trial.number)

    def planned(self, name: str, trial: Any) -> list[GridRun]:
        """The runs of a trial (one per repetition) added to grid.yaml and grid_status.csv before any starts."""
        values = trial_params(drawn_values(self.studies[name], trial, self.spec), self.spec)
        runs = [trial_run(self.bases[name], values, trial.number, repetition, self.spec.repetitions)
                for repetition in range(self.spec.repetitions)]
        self.annotate(name, trial_id(trial), "runs", [run.name for run in runs])
        self.plan.runs += runs
        write_text_atomic(self.grid.plan_file, self.plan.to_yaml())
        for run in runs:
            self.status.add(run)
        self.status.save()
        return runs

    def annotate(self, name: str, trial_id: int, key: str, value: Any) -> None:
        """Keep a note on a trial in its study (its runs' names; why it failed), while it is running."""
        optuna_module().trial.Trial(self.studies[name], trial_id).set_user_attr(key, value)

    def job(self, run: GridRun, trial_id: int) -> dict:
        """A trial run's job: the grid's job for the run; the first repetition's also carries what its pruning
        callback needs (the pruner watches a trial's first repetition, whose steps line up with the other
        trials'; further repetitions run to their end)."""
        job = self.make_job(run)
        job["trial"] = {"study": run.study, "number": run.trial}
        if run.repetition == 0:
            job["trial"].update(storage=self.grid.study_url, trial_id=trial_id, pruner=self.spec.pruner)
        return job

    def next_job(self) -> dict | None:
        """The next run to start: a run left waiting, else the first run of a new trial of the study with the
        fewest trials; None once every study has its trials."""
        if self.ready:
            return self.ready.popleft()
        counts = {name: len(study.get_trials(deepcopy=False)) for name, study in self.studies.items()}
        wanting = [name for name in self.studies if counts[name] < self.spec.budget()]
        if not wanting:
            return None
        name = min(wanting, key=counts.__getitem__)
        trial = self.studies[name].ask(distributions(self.spec))
        runs = self.planned(name, trial)
        self.open[(name, trial.number)] = {"id": trial_id(trial), "results": {run.name: None for run in runs}}
        self.ready.extend(self.job(run, trial_id(trial)) for run in runs)
        return self.ready.popleft()

    def finished(self, job: dict, result: dict) -> None:
        """A trial's run ended (completed, pruned or failed): tell its study once all its runs have."""
        trial = job.get("trial")
        if trial is None or (trial["study"], trial["number"]) not in self.open:
            return
        self.open[(trial["study"], trial["number"])]["results"][job["name"]] = result
        self.tell_if_done(trial["study"], trial["number"])

    def tell_if_done(self, name: str, number: int) -> None:
        """Tell the study how a trial went once every run of it ended."""
        entry = self.open[(name, number)]
        results = list(entry["results"].values())
        if any(result is None for result in results):
            return
        state = optuna_module().trial.TrialState
        study = self.studies[name]
        if any(result["status"] == "pruned" for result in results):
            tell(study, number, state=state.PRUNED)
        elif any(result["status"] != "completed" for result in results):
            reason = next(r.get("reason", "") for r in results if r["status"] != "completed")
            self.annotate(name, entry["id"], "failed", reason or "failed")
            tell(study, number, state=state.FAIL)
        else:
            values = [best_validation(Experiment(result["folder"])) if result.get("folder") else None
                      for result in results]
            if any(value is None for value in values):
                tell(study, number, state=state.FAIL)
            else:
                tell(study, number, sum(values) / len(values))
        del self.open[(name, number)]
