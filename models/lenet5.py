"""LeNet5: LeCun's two-convolution network, padded so that it fits small images such as 8x8 digits."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from pyrosys.configuration.constraints import Integer, ListOf, Number
from pyrosys.factory import register
from pyrosys.models.model import Model
from pyrosys.models.modules import Conv2dEncoder, MLPEncoder, head_for


@register("model")
class LeNet5(Model):
    """Conv(5x5)-pool-conv(5x5)-pool, then fully connected layers; sized from the image shape."""

    input_kinds = ("image",)

    @staticmethod
    def get_params() -> dict:
        return {"channels": [6, 16], "hidden_sizes": [120, 84], "dropout": 0.0}

    @staticmethod
    def constraints() -> dict:
        return {"channels": ListOf(Integer(low=1)), "hidden_sizes": ListOf(Integer(low=1)),
                "dropout": Number(low=0, high=1, high_open=True)}

    @staticmethod
    def build(params: Mapping, data_definitions: Mapping) -> dict[str, nn.Module]:
        features = Conv2dEncoder(data_definitions["inputs"]["shape"], params["channels"], kernel_size=5)
        hidden = MLPEncoder(features.out_features, params["hidden_sizes"], params["dropout"])
        targets = data_definitions["targets"]
        return {"features": features,
                "classifier": nn.Sequential(hidden, head_for(targets["task"], hidden.out_features, targets))}

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.models["classifier"](self.models["features"](inputs))
