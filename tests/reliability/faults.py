"""Fault injection for the reliability tests: a Lightning callback, named in a configuration's
training.callbacks, that SIGKILLs its own trainer at a chosen moment, once (a marker file says it
happened, so that the resumed run, which carries the same configuration, goes on)."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytorch_lightning as pl
import torch

from pyrosys.atomic import atomic_path


class KillAt(pl.Callback):
    """SIGKILL the process at the `at`-th training step, validation batch or checkpoint write, or `at`
    seconds into training (`where`: step, validation, checkpoint, seconds)."""

    def __init__(self, where: str, at: float, marker: str) -> None:
        self.where, self.at, self.marker = where, at, Path(marker)
        self.count, self.started = 0, None

    def _die(self) -> None:
        try:                                   # created exclusively: of the processes of one run, one dies
            with self.marker.open("x") as marker:
                marker.write(f"{self.where} {self.at}\n")
        except FileExistsError:
            return
        os.kill(os.getpid(), signal.SIGKILL)

    def setup(self, trainer: pl.Trainer, module: pl.LightningModule, stage: str) -> None:
        if self.where != "checkpoint":
            return
        io = trainer.strategy.checkpoint_io
        save = io.save_checkpoint

        def dying_save(checkpoint, path, storage_options=None):
            self.count += 1
            if self.count == self.at and not self.marker.exists():
                with atomic_path(path) as temporary:        # the temporary file is written, never renamed
                    torch.save(checkpoint, temporary)
                    self._die()
            return save(checkpoint, path, storage_options)

        io.save_checkpoint = dying_save

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.started = time.monotonic()

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, *args) -> None:
        time.sleep(0.005)                                 # a few ms a step: room for a kill in seconds
        if self.where == "step" and trainer.global_step == self.at:
            self._die()
        if self.where == "seconds" and time.monotonic() - self.started >= self.at:
            self._die()

    def on_validation_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, *args) -> None:
        if self.where == "validation" and not trainer.sanity_checking:
            self.count += 1
            if self.count == self.at:
                self._die()
