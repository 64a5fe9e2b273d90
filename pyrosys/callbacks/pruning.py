"""Reporting a search trial's run to its searcher: after each validation the monitored value goes to the searcher,
which may stop the run (it then ends with status `pruned`, keeping its best checkpoint). `SearchReport` is that
loop; TrialPruning reports to an Optuna study on the grid's pool, TuneReport (tune_report.py) to Ray Tune."""
from __future__ import annotations

import json
import os
from typing import Any, ClassVar

import pytorch_lightning as pl

from pyrosys.folders.experiment import TRIAL_ENV


class SearchReport(pl.Callback):
    """Report `monitor` after each validation (counted from 1, kept in checkpoints); stop when told to."""

    ENV: ClassVar[str]                 # the environment variable that switches it on, holding its JSON spec
    STOPPER: ClassVar[str] = ""        # who stopped the run, as its reason says

    def __init__(self, spec: dict, monitor: str) -> None:
        self.spec, self.monitor = spec, monitor
        self.validations = 0
        self.pruned: dict | None = None      # the validation, value and episode at which the run was stopped

    @classmethod
    def from_environment(cls, monitor: str) -> list[SearchReport]:
        """The callback of a run started for a search trial (its ENV set), else none."""
        spec = os.environ.get(cls.ENV)
        return [cls(json.loads(spec), monitor)] if spec else []

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        self.validations += 1
        if self.report(trainer, value):
            self.pruned = {"validation": self.validations, "value": value, "episode": trainer.global_step}
            trainer.should_stop = True

    def report(self, trainer: pl.Trainer, value: float) -> bool:
        """Hand the searcher this validation's value; whether it stops the run."""
        raise NotImplementedError

    def reason(self) -> str | None:
        """Why the run stopped, if the searcher stopped it."""
        if self.pruned is None:
            return None
        return (f"pruned ({self.STOPPER}{self.monitor} {self.pruned['value']:.6g} at validation "
                f"{self.pruned['validation']}, episode {self.pruned['episode']})")

    def state_dict(self) -> dict:
        return {"validations": self.validations}

    def load_state_dict(self, state_dict: dict) -> None:
        self.validations = int(state_dict.get("validations", 0))


class TrialPruning(SearchReport):
    """A trial's run on the grid's pool: each value reported to its Optuna trial (step: the validation's index,
    0 first), stopped when the study's pruner says so."""

    ENV = TRIAL_ENV

    def __init__(self, spec: dict, monitor: str) -> None:
        super().__init__(spec, monitor)
        self._trial: Any = None

    def trial(self) -> Any:
        """The Optuna trial, opened in the grid's storage with the search's pruner."""
        if self._trial is None:
            from pyrosys.execution.study import optuna_module, pruner, storage
            optuna = optuna_module()
            study = optuna.load_study(study_name=self.spec["study"], storage=storage(self.spec["storage"]),
                                      pruner=pruner(self.spec["pruner"]))
            self._trial = optuna.trial.Trial(study, self.spec["trial_id"])
        return self._trial

    def report(self, trainer: pl.Trainer, value: float) -> bool:
        trial = self.trial()
        trial.report(value, self.validations - 1)
        last = trainer.max_epochs not in (None, -1) and trainer.current_epoch + 1 >= trainer.max_epochs
        return not last and trial.should_prune()           # the run's last validation: nothing left to save
