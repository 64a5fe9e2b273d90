"""SimpleCNN: 3x3 convolutions with batch normalisation and pooling, then a head."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from pyrosys.configuration.constraints import Integer, ListOf, Number
from pyrosys.factory import register
from pyrosys.models.model import Model
from pyrosys.models.modules import Conv2dEncoder, head_for


@register("model")
class SimpleCNN(Model):
    """Conv(3x3)-BatchNorm-ReLU-pool stages, then a classification or regression head."""

    input_kinds = ("image",)

    @staticmethod
    def get_params() -> dict:
        return {"channels": [32, 64], "dropout": 0.25}

    @staticmethod
    def constraints() -> dict:
        return {"channels": ListOf(Integer(low=1)), "dropout": Number(low=0, high=1, high_open=True)}

    @staticmethod
    def build(params: Mapping, data_definitions: Mapping) -> dict[str, nn.Module]:
        encoder = Conv2dEncoder(data_definitions["inputs"]["shape"], params["channels"], kernel_size=3,
                                batch_norm=True)
        targets = data_definitions["targets"]
        return {"encoder": encoder,
                "head": head_for(targets["task"], encoder.out_features, targets, params["dropout"])}

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.models["head"](self.models["encoder"](inputs))
