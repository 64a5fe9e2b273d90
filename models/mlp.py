"""MLP: a multi-layer perceptron over the flattened inputs, sized from the data definitions."""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from pyrosys.configuration.constraints import Integer, ListOf, Number
from pyrosys.factory import register
from pyrosys.models.model import Model
from pyrosys.models.modules import MLPEncoder, head_for


@register("model")
class MLP(Model):
    """Flatten the inputs, hidden layers with ReLU and dropout, then a classification or regression head."""

    @staticmethod
    def get_params() -> dict:
        return {"hidden_sizes": [128, 64], "dropout": 0.0}

    @staticmethod
    def constraints() -> dict:
        return {"hidden_sizes": ListOf(Integer(low=1)), "dropout": Number(low=0, high=1, high_open=True)}

    @staticmethod
    def build(params: Mapping, data_definitions: Mapping) -> dict[str, nn.Module]:
        encoder = MLPEncoder(math.prod(data_definitions["inputs"]["shape"]), params["hidden_sizes"],
                             params["dropout"])
        targets = data_definitions["targets"]
        return {"encoder": encoder, "head": head_for(targets["task"], encoder.out_features, targets)}

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.models["head"](self.models["encoder"](inputs))
