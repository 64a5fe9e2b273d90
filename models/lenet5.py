"""LeNet5: LeCun's two-convolution network, padded so that it fits small images such as 8x8 digits."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from pyrosys.factory import register
from pyrosys.models.model import Model


@register("model")
class LeNet5(Model):
    """Conv(5x5)-pool-conv(5x5)-pool, then three fully connected layers; sized from the image shape."""

    @staticmethod
    def get_params() -> dict:
        return {"channels": [6, 16], "hidden_sizes": [120, 84], "dropout": 0.0}

    @staticmethod
    def build(params: Mapping, data_definitions: Mapping) -> dict[str, nn.Module]:
        shape = list(data_definitions["inputs"]["shape"])
        in_channels, height, width = shape if len(shape) == 3 else [1, *shape]
        first, second = (int(c) for c in params["channels"])
        features = nn.Sequential(
            nn.Conv2d(in_channels, first, kernel_size=5, padding=2), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(first, second, kernel_size=5, padding=2), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
            nn.Flatten())
        with torch.no_grad():
            flat = features(torch.zeros(1, in_channels, height, width)).shape[1]
        layers: list[nn.Module] = []
        for size in params["hidden_sizes"]:
            layers += [nn.Linear(flat, int(size)), nn.ReLU(), nn.Dropout(float(params["dropout"]))]
            flat = int(size)
        classes = data_definitions["targets"]["num_classes"]
        return {"features": features, "classifier": nn.Sequential(*layers, nn.Linear(flat, classes))}

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.dim() == 3:
            inputs = inputs.unsqueeze(1)
        return self.models["classifier"](self.models["features"](inputs))
