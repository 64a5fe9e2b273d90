"""Objectives: losses and metrics by name, kept apart from both models and workers.

The problem names its default objective; `training.loss` overrides the loss. A model never
hard-codes its loss: the worker hands it an `Objective`.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
import torchmetrics

from pyrosys.errors import ConfigError, did_you_mean

LossFn = Callable[[torch.Tensor, Mapping], torch.Tensor]


def cross_entropy(outputs: torch.Tensor, batch: Mapping) -> torch.Tensor:
    """Mean cross-entropy of class logits against integer targets."""
    return F.cross_entropy(outputs, batch["targets"])


def mse(outputs: torch.Tensor, batch: Mapping) -> torch.Tensor:
    """Mean squared error against float targets of the same shape."""
    return F.mse_loss(outputs, batch["targets"].to(outputs.dtype).reshape(outputs.shape))


LOSSES: dict[str, LossFn] = {"cross_entropy": cross_entropy, "mse": mse}


def _accuracy(data_definitions: Mapping) -> torchmetrics.Metric:
    return torchmetrics.classification.MulticlassAccuracy(
        num_classes=int(data_definitions["targets"]["num_classes"]), average="micro")


def _mean_absolute_error(data_definitions: Mapping) -> torchmetrics.Metric:
    return torchmetrics.MeanAbsoluteError()


METRICS: dict[str, Callable[[Mapping], torchmetrics.Metric]] = {
    "accuracy": _accuracy, "mae": _mean_absolute_error,
}


def loss_by_name(name: str, *, file: str | None = None, key: str = "training.loss") -> LossFn:
    """The loss function registered under `name`."""
    if name not in LOSSES:
        raise ConfigError(f"there is no loss named {name!r}", file=file, key=key, hint=did_you_mean(name, LOSSES))
    return LOSSES[name]


@dataclass
class Objective:
    """What a model is trained and judged on: one loss and named metrics."""

    loss_name: str
    metric_names: tuple[str, ...] = ()
    loss: LossFn = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.loss = loss_by_name(self.loss_name)
        for name in self.metric_names:
            if name not in METRICS:
                raise ConfigError(f"there is no metric named {name!r}", key="metrics",
                                  hint=did_you_mean(name, METRICS))

    def metrics(self, data_definitions: Mapping) -> torchmetrics.MetricCollection:
        """Fresh metric states for one phase (train, val or test) of a problem."""
        return torchmetrics.MetricCollection(
            {name: METRICS[name](data_definitions) for name in self.metric_names})
