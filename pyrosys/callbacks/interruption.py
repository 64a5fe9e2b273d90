"""The fit's side of interruptions (`pyrosys.interruptions`): a signal received during a fit stops it at
the end of a training batch inside an epoch, after writing the last checkpoint from that consistent
state (the step done; the loop's position, the epoch's batch order and its batches' statistics kept),
so that --resume goes on from there with the uninterrupted run's batches and statistics. A signal
during a validation, or at an epoch's last batch, waits for the epoch's end to be recorded (its
validation, checkpoint and aggregate row) and stops at the next batch; at the end of the fit, there."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from pyrosys.interruptions import INTERRUPTIONS, Interruptions, interrupted


class DeferInterruptions(pl.Callback):
    """Inside a fit, turn a signal into `Interrupted` at the end of the next training batch inside an
    epoch, naming the checkpoint written there, which --resume goes on from."""

    def __init__(self, last: Path, interruptions: Interruptions = INTERRUPTIONS) -> None:
        self.last, self.interruptions = Path(last), interruptions

    def on_fit_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.interruptions.deferring = True

    def on_exception(self, trainer: pl.Trainer, module: pl.LightningModule, exception: BaseException) -> None:
        self.interruptions.deferring = False

    def on_fit_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.interruptions.deferring = False
        signum = self.interruptions.requested
        if signum is not None:                    # the signal came during the last epoch's end: stop here
            raise interrupted(signum, trainer.global_step, str(self.last) if self.last.is_file() else None)

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        signum = self.interruptions.requested
        if signum is None or trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            return
        self.interruptions.deferring = False
        trainer.save_checkpoint(self.last, weights_only=False)   # the whole training state, to resume from
        raise interrupted(signum, trainer.global_step, str(self.last))
