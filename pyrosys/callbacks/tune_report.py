"""TuneReport: a search trial run by Ray Tune reports its monitored value to Tune at every validation, so that
Tune's scheduler (the search's pruner) can stop it; a stop Tune signals inside the report ends the run as
`pruned`, with its validation, value and episode."""
from __future__ import annotations

import json
import os

import pytorch_lightning as pl

from pyrosys.folders.experiment import TUNE_ENV
from pyrosys.folders.experiment import TUNE_METRIC as METRIC

REPORTS: dict[str, int] = {}      # run folder -> reports made to Tune in this process (read by the trainable)


class TuneReport(pl.Callback):
    """Report `monitor` (and the run's folder) to Ray Tune after each validation."""

    def __init__(self, spec: dict, monitor: str) -> None:
        self.spec, self.monitor = spec, monitor
        self.validations = 0
        self.pruned: dict | None = None      # the validation, value and episode at which Tune stopped the run

    @classmethod
    def from_environment(cls, monitor: str) -> list[TuneReport]:
        """The callback of a run a Ray Tune trainable started (TUNE_ENV set), else none."""
        spec = os.environ.get(TUNE_ENV)
        return [cls(json.loads(spec), monitor)] if spec else []

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or self.monitor not in trainer.callback_metrics:
            return
        from ray import tune      # only a Tune trial's run has this callback, inside a Tune worker

        value = float(trainer.callback_metrics[self.monitor])
        self.validations += 1
        REPORTS[self.spec["folder"]] = REPORTS.get(self.spec["folder"], 0) + 1
        try:
            tune.report({METRIC: value, "validation": self.validations, "episode": trainer.global_step,
                         "folder": self.spec["folder"]})
        except (SystemExit, StopIteration):       # Tune's scheduler stopped the trial inside the report
            self.pruned = {"validation": self.validations, "value": value, "episode": trainer.global_step}
            trainer.should_stop = True

    def reason(self) -> str | None:
        """Why the run stopped, if Tune's scheduler stopped it."""
        if self.pruned is None:
            return None
        return (f"pruned (Tune's scheduler stopped it: {self.monitor} {self.pruned['value']:.6g} at validation "
                f"{self.pruned['validation']}, episode {self.pruned['episode']})")

    def state_dict(self) -> dict:
        return {"validations": self.validations}

    def load_state_dict(self, state_dict: dict) -> None:
        self.validations = int(state_dict.get("validations", 0))
