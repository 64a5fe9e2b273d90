"""Sequential layers that skip, at run time, the ones that would change nothing."""
from __future__ import annotations

import torch
from torch import nn


class LeanSequential(nn.Sequential):
    """nn.Sequential (same layers, names and indices) whose forward pass steps over dropout of
    probability 0 and a flatten of inputs that are flat already: each would cost a module call at every
    step and change nothing."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        for layer in self:
            kind = type(layer)
            if (kind is nn.Dropout and layer.p == 0) or \
                    (kind is nn.Flatten and inputs.dim() == 2 and layer.start_dim in (1, -1)):
                continue
            inputs = layer(inputs)
        return inputs
