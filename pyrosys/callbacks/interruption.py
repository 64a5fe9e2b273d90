"""The fit's side of interruptions (`pyrosys.interruptions`): a signal received during a fit stops it at
the end of the training (or validation) batch under way, so that no step, checkpoint or statistics row
is left half-done. No checkpoint is written there: a mid-epoch position of PyroSys's in-memory batches
cannot be restored exactly, so --resume goes on from the last checkpoint of a validation, which gives
the uninterrupted run's numbers."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from pyrosys.interruptions import INTERRUPTIONS, Interruptions, interrupted


class DeferInterruptions(pl.Callback):
    """Inside a fit, turn a signal into `Interrupted` at the end of the batch under way, naming the last
    checkpoint that --resume goes on from (if one was written yet)."""

    def __init__(self, last: Path, interruptions: Interruptions = INTERRUPTIONS) -> None:
        self.last, self.interruptions = Path(last), interruptions

    def on_fit_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.interruptions.deferring = True

    def on_fit_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.interruptions.deferring = False

    def on_exception(self, trainer: pl.Trainer, module: pl.LightningModule, exception: BaseException) -> None:
        self.interruptions.deferring = False

    def stop_if_asked(self, trainer: pl.Trainer) -> None:
        """Raise `Interrupted` when a signal came during the batch that just ended."""
        signum = self.interruptions.requested
        if signum is not None and not trainer.sanity_checking:
            self.interruptions.deferring = False
            raise interrupted(signum, trainer.global_step, str(self.last) if self.last.is_file() else None)

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self.stop_if_asked(trainer)

    def on_validation_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        self.stop_if_asked(trainer)
