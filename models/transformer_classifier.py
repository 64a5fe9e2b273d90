"""TransformerClassifier: a Transformer encoder over sequences or tokens, pooled, then a head."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from pyrosys.data_dict import DataDict
from pyrosys.factory import register
from pyrosys.models.model import Model
from pyrosys.models.modules import SequenceInput, TransformerEncoder, head_for, masked_mean


@register("model")
class TransformerClassifier(Model):
    """Embedding or projection, sinusoidal positions, self-attention layers, masked mean pool, head."""

    input_kinds = ("sequence", "tokens")

    @staticmethod
    def get_params() -> dict:
        return {"embedding_dim": 32, "dim": 64, "heads": 4, "layers": 2, "feedforward": 128, "dropout": 0.1,
                "max_length": 1024}

    @staticmethod
    def build(params: Mapping, data_definitions: Mapping) -> dict[str, nn.Module]:
        entry = SequenceInput(data_definitions["inputs"], params["embedding_dim"])
        encoder = TransformerEncoder(entry.out_features, params["dim"], params["heads"], params["layers"],
                                     params["feedforward"], params["dropout"], params["max_length"])
        targets = data_definitions["targets"]
        return {"input": entry, "encoder": encoder,
                "head": head_for(targets["task"], encoder.out_features, targets, params["dropout"])}

    def forward(self, inputs: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        features = self.models["encoder"](self.models["input"](inputs), masks)
        return self.models["head"](masked_mean(features, masks))

    def forward_batch(self, batch: DataDict) -> torch.Tensor:
        return self(batch["inputs"], batch.get("masks"))
