"""Terminal conditions: when training stops, and the reason recorded for it."""
from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch


class LossStop(pl.Callback):
    """Stop once the training loss, averaged over the last `interval` episodes, is at or below `threshold`."""

    def __init__(self, threshold: float, interval: int) -> None:
        self.threshold = float(threshold)
        self.interval = max(1, int(interval))
        self.losses: list[torch.Tensor] = []
        self.stopped_at: int | None = None

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        self.losses.append(outputs["loss"].detach())
        if len(self.losses) < self.interval:
            return
        mean = float(torch.stack(self.losses).mean())
        self.losses.clear()
        if mean <= self.threshold:
            self.stopped_at = trainer.global_step
            trainer.should_stop = True


def stop_reason(trainer: pl.Trainer, epoch_limit: int | None, episode_limit: int | None) -> str:
    """Why fit() returned: pruned (a search's pruner), loss_stop, early_stopping, episode_limit or epoch_limit."""
    for callback in trainer.callbacks:
        pruned = getattr(callback, "reason", None)       # a search's TrialPruning
        if callable(pruned) and pruned():
            return pruned()
        if isinstance(callback, LossStop) and callback.stopped_at is not None:
            return f"loss_stop (mean training loss <= {callback.threshold} at episode {callback.stopped_at})"
        # stopped_epoch is Lightning's 0-based epoch (0 also before any stop): the message says if it stopped
        if isinstance(callback, pl.callbacks.EarlyStopping) and (callback.stopped_epoch
                                                                 or callback.stopping_reason_message):
            return (f"early_stopping ({callback.monitor} did not improve for {callback.patience} "
                    f"validations; stopped at epoch {callback.stopped_epoch + 1})")
    if episode_limit and trainer.global_step >= episode_limit:
        return f"episode_limit ({episode_limit} episodes)"
    if epoch_limit and trainer.current_epoch >= epoch_limit:
        return f"epoch_limit ({epoch_limit} epochs)"
    return "interrupted" if trainer.interrupted else "stopped"
