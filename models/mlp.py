"""MLP: a multi-layer perceptron over the flattened inputs, sized from the data definitions."""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from pyrosys.factory import register
from pyrosys.models.model import Model


@register("model")
class MLP(Model):
    """Flatten the inputs, then hidden layers with ReLU and dropout, then one logit per class."""

    @staticmethod
    def get_params() -> dict:
        return {"hidden_sizes": [128, 64], "dropout": 0.0}

    @staticmethod
    def build(params: Mapping, data_definitions: Mapping) -> dict[str, nn.Module]:
        in_features = math.prod(data_definitions["inputs"]["shape"])
        out_features = data_definitions["targets"].get("num_classes", 1)
        layers: list[nn.Module] = [nn.Flatten()]
        for width in params["hidden_sizes"]:
            layers += [nn.Linear(in_features, int(width)), nn.ReLU(), nn.Dropout(float(params["dropout"]))]
            in_features = int(width)
        return {"encoder": nn.Sequential(*layers), "head": nn.Linear(in_features, out_features)}

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.models["head"](self.models["encoder"](inputs))
