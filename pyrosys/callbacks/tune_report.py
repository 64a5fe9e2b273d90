"""TuneReport: a search trial run by Ray Tune reports its monitored value to Tune at every validation, so that
Tune's scheduler (the search's pruner) can stop it; a stop Tune signals inside the report ends the run as
`pruned`, with its validation, value and episode."""
from __future__ import annotations

import pytorch_lightning as pl

from pyrosys.callbacks.pruning import SearchReport
from pyrosys.folders.experiment import TUNE_ENV
from pyrosys.folders.experiment import TUNE_METRIC as METRIC

REPORTS: dict[str, int] = {}      # run folder -> reports made to Tune in this process (read by the trainable)


class TuneReport(SearchReport):
    """A trial's run on Ray Tune: each value reported to Tune (with the run's folder); Tune's scheduler stops it
    by signalling inside the report."""

    ENV = TUNE_ENV
    STOPPER = "Tune's scheduler stopped it: "

    def report(self, trainer: pl.Trainer, value: float) -> bool:
        from ray import tune      # only a Tune trial's run has this callback, inside a Tune worker

        REPORTS[self.spec["folder"]] = REPORTS.get(self.spec["folder"], 0) + 1
        try:
            tune.report({METRIC: value, "validation": self.validations, "episode": trainer.global_step,
                         "folder": self.spec["folder"]})
        except (SystemExit, StopIteration):       # Tune's scheduler stopped the trial inside the report
            return True
        return False
