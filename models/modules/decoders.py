"""Decoders: features -> inputs again (autoencoders) or one output per position (sequences)."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class MLPDecoder(nn.Module):
    """Linear-ReLU layers from a code back to a tensor of `output_shape`."""

    def __init__(self, in_features: int, hidden_sizes: Sequence[int], output_shape: Sequence[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for width in hidden_sizes:
            layers += [nn.Linear(in_features, int(width)), nn.ReLU()]
            in_features = int(width)
        layers.append(nn.Linear(in_features, math.prod(output_shape)))
        self.layers = nn.Sequential(*layers)
        self.output_shape = tuple(int(d) for d in output_shape)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.layers(code).reshape(-1, *self.output_shape)


class PositionwiseDecoder(nn.Linear):
    """One Linear applied at every position: [N, T, H] -> [N, T, out]."""
