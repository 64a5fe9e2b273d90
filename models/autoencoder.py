"""Autoencoder: an MLP encoder to a latent code and an MLP decoder back to the inputs (encode / decode)."""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from pyrosys.configuration.constraints import Integer, ListOf
from pyrosys.factory import register
from pyrosys.models.model import Model
from pyrosys.models.modules import MLPDecoder, MLPEncoder


@register("model")
class Autoencoder(Model):
    """Reconstructs its inputs through a `latent_size` bottleneck; any problem with vector or image inputs."""

    target_field = "inputs"
    default_loss = "mse"
    default_metrics = ("mse", "r2")

    @staticmethod
    def get_params() -> dict:
        return {"hidden_sizes": [64], "latent_size": 8}

    @staticmethod
    def constraints() -> dict:
        return {"hidden_sizes": ListOf(Integer(low=1)), "latent_size": Integer(low=1)}

    @staticmethod
    def build(params: Mapping, data_definitions: Mapping) -> dict[str, nn.Module]:
        shape = data_definitions["inputs"]["shape"]
        hidden = MLPEncoder(math.prod(shape), params["hidden_sizes"])
        encoder = nn.Sequential(hidden, nn.Linear(hidden.out_features, int(params["latent_size"])))
        decoder = MLPDecoder(int(params["latent_size"]), list(reversed(params["hidden_sizes"])), shape)
        return {"encoder": encoder, "decoder": decoder}

    def encode(self, inputs: torch.Tensor) -> torch.Tensor:
        """Autoencoding interface: inputs -> latent codes."""
        return self.models["encoder"](inputs)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Autoencoding interface: latent codes -> reconstructed inputs."""
        return self.models["decoder"](codes)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(inputs))
