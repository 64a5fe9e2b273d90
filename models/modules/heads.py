"""Heads: features -> the answer of a task (class logits, term logits, regression values)."""
from __future__ import annotations

import math
from collections.abc import Mapping

from torch import nn

from pyrosys.models.modules.sequential import LeanSequential


def output_size(target: Mapping) -> int:
    """How many outputs a target needs: its classes, its terms (multilabel: one logit each), else its number
    of values (1 for a scalar)."""
    if "terms" in target:
        return len(target["terms"])
    if "num_classes" in target:
        return int(target["num_classes"])
    return math.prod(target.get("shape", [])) or 1


class ClassificationHead(LeanSequential):
    """Dropout then Linear to one logit per class."""

    def __init__(self, in_features: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__(nn.Dropout(float(dropout)), nn.Linear(in_features, int(num_classes)))


class RegressionHead(LeanSequential):
    """Dropout then Linear to the target's values."""

    def __init__(self, in_features: int, outputs: int, dropout: float = 0.0) -> None:
        super().__init__(nn.Dropout(float(dropout)), nn.Linear(in_features, int(outputs)))


class ResidueRegressionHead(LeanSequential):
    """Dropout then Linear to one value per position: [N, T, F] -> [N, T]."""

    def __init__(self, in_features: int, dropout: float = 0.0) -> None:
        super().__init__(nn.Dropout(float(dropout)), nn.Linear(in_features, 1), nn.Flatten(start_dim=-2))


def head_for(task: str, in_features: int, target: Mapping, dropout: float = 0.0) -> nn.Module:
    """The head a task needs, sized from the target's data definition (residue tasks: applied per position)."""
    if task in ("classification", "residue_classification", "multilabel"):   # multilabel: one logit per term
        return ClassificationHead(in_features, output_size(target), dropout)
    if task == "residue_regression":
        return ResidueRegressionHead(in_features, dropout)
    return RegressionHead(in_features, output_size(target), dropout)
