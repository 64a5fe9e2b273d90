"""The progress bar of a run on a terminal: Lightning's TQDM bar, its epochs counted from 1 and its postfix
holding the numbers a researcher watches (the running training loss and the last validation values).

Lightning's bar shows only what a model logs with `prog_bar=True`; PyroSys models log their whole-set
values for checkpoints and early stopping, so the bar reads them from the trainer instead.
"""
from __future__ import annotations

import time
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import TQDMProgressBar

REFRESH_SECONDS = 0.25      # the running loss is read back from the device at most this often


class TrainingBar(TQDMProgressBar):
    """TQDM bar: "epoch 3/20", the epoch's running training loss and the last validation statistics."""

    def __init__(self) -> None:
        super().__init__()
        self._loss_sum: torch.Tensor | None = None     # on the device: no host synchronisation per step
        self._batches = 0
        self._shown: dict[str, str] = {}
        self._shown_at = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        """Lightning's bar, described as the 1-based epoch out of the epoch limit (when there is one)."""
        super().on_train_epoch_start(trainer, *args)
        self._loss_sum, self._batches, self._shown_at = None, 0, 0.0
        self.train_progress_bar.set_description(epoch_description(trainer.current_epoch, trainer.max_epochs))

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        """Add the batch's loss to the epoch's running sum (kept on the device), then let the bar refresh."""
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):
            loss = loss.detach()
            self._loss_sum = loss if self._loss_sum is None else self._loss_sum + loss
            self._batches += 1
        super().on_train_batch_end(trainer, module, outputs, batch, batch_idx)

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        """Show the validation just ended at once, however recently the bar was refreshed."""
        self._shown_at = 0.0
        super().on_validation_end(trainer, module)

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        """Show the whole epoch's loss at its end, however recently the bar was refreshed."""
        self._shown_at = 0.0
        super().on_train_epoch_end(trainer, module)

    def get_metrics(self, trainer: pl.Trainer, module: pl.LightningModule) -> dict[str, int | str | float | dict]:
        """The bar's postfix: what the model logs for the bar, the running loss and the last validation."""
        now = time.monotonic()
        if now - self._shown_at >= REFRESH_SECONDS or not self._shown:
            shown = {key: value for key, value in super().get_metrics(trainer, module).items() if key != "v_num"}
            if self._loss_sum is not None and self._batches:
                shown["loss"] = float(self._loss_sum) / self._batches
            shown.update(validation_values(trainer.callback_metrics))
            self._shown, self._shown_at = {key: number(value) for key, value in shown.items()}, now
        return dict(self._shown)


def epoch_description(epoch: int, max_epochs: int | None) -> str:
    """ "epoch 3/20" for Lightning's 0-based epoch 2 of 20; "epoch 3" without an epoch limit."""
    return f"epoch {epoch + 1}/{max_epochs}" if max_epochs and max_epochs > 0 else f"epoch {epoch + 1}"


def validation_values(metrics: dict[str, Any]) -> dict[str, float]:
    """The last validation's whole-set values among the trainer's logged metrics, val_loss first."""
    values = {key: float(value) for key, value in metrics.items() if key.startswith("val_")}
    return dict(sorted(values.items(), key=lambda item: item[0] != "val_loss"))


def number(value: Any) -> Any:
    """A figure as the bar shows it: four significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else value
