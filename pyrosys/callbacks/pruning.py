"""TrialPruning: a search trial's run reports its monitored value to its Optuna study at every validation, and
stops when the study's pruner says so (the run then ends with status `pruned`, keeping its best checkpoint)."""
from __future__ import annotations

import json
import os
from typing import Any

import pytorch_lightning as pl

from pyrosys.folders.experiment import TRIAL_ENV


class TrialPruning(pl.Callback):
    """Report `monitor` at each validation (step: the validation's index, 0 first) to the trial; prune."""

    def __init__(self, trial: dict, monitor: str) -> None:
        self.trial_spec, self.monitor = trial, monitor
        self.validations = 0
        self.pruned: dict | None = None      # the validation, value and episode that pruned the run
        self._trial: Any = None

    @classmethod
    def from_environment(cls, monitor: str) -> list[TrialPruning]:
        """The callback of a run the grid started for a search trial (TRIAL_ENV set), else none."""
        spec = os.environ.get(TRIAL_ENV)
        return [cls(json.loads(spec), monitor)] if spec else []

    def trial(self) -> Any:
        """The Optuna trial, opened in the grid's storage with the search's pruner."""
        if self._trial is None:
            from pyrosys.execution.study import optuna_module, pruner, storage
            optuna = optuna_module()
            study = optuna.load_study(study_name=self.trial_spec["study"], storage=storage(self.trial_spec["storage"]),
                                      pruner=pruner(self.trial_spec["pruner"]))
            self._trial = optuna.trial.Trial(study, self.trial_spec["trial_id"])
        return self._trial

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or self.monitor not in trainer.callback_metrics:
            return
        value, step = float(trainer.callback_metrics[self.monitor]), self.validations
        self.validations += 1
        trial = self.trial()
        trial.report(value, step)
        last = trainer.max_epochs not in (None, -1) and trainer.current_epoch + 1 >= trainer.max_epochs
        if not last and trial.should_prune():             # the run's last validation: nothing left to save
            self.pruned = {"validation": self.validations, "value": value, "episode": trainer.global_step}
            trainer.should_stop = True

    def reason(self) -> str | None:
        """Why the run stopped, if the pruner stopped it."""
        if self.pruned is None:
            return None
        return (f"pruned ({self.monitor} {self.pruned['value']:.6g} at validation {self.pruned['validation']}, "
                f"episode {self.pruned['episode']})")

    def state_dict(self) -> dict:
        return {"validations": self.validations}

    def load_state_dict(self, state_dict: dict) -> None:
        self.validations = int(state_dict.get("validations", 0))
