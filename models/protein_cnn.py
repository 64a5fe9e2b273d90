"""ProteinCNN: 1D convolutions over amino-acid embeddings, max-pooled over the sequence, then a head (residue
tasks: the head at every position, no pooling)."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from pyrosys.configuration.constraints import Integer, ListOf, Number, OneOf
from pyrosys.data_dict import DataDict
from pyrosys.factory import register
from pyrosys.models.model import Model
from pyrosys.models.modules import Conv1dEncoder, TokenEmbedding, head_for, masked_max, masked_mean
from pyrosys.objectives import RESIDUE_TASKS


@register("model")
class ProteinCNN(Model):
    """Token embedding, Conv1d-ReLU stages keeping the length, masked max pool, classification/regression head."""

    input_kinds = ("tokens",)
    tasks = ("classification", "regression", "multilabel", *RESIDUE_TASKS)    # residue tasks: a per-position head

    @staticmethod
    def get_params() -> dict:
        return {"embedding_dim": 32, "channels": [64, 64], "kernel_size": 5, "dropout": 0.1,
                "pooling": "max"}   # max: motifs anywhere; mean: composition-like properties; mean_max: both

    @staticmethod
    def constraints() -> dict:
        return {"embedding_dim": Integer(low=1), "channels": ListOf(Integer(low=1)),
                "kernel_size": Integer(low=1, odd=True),    # odd: the padding keeps every sequence's length
                "dropout": Number(low=0, high=1, high_open=True), "pooling": OneOf("max", "mean", "mean_max")}

    @staticmethod
    def build(params: Mapping, data_definitions: Mapping) -> dict[str, nn.Module]:
        embedding = TokenEmbedding(len(data_definitions["inputs"]["vocabulary"]), params["embedding_dim"])
        encoder = Conv1dEncoder(embedding.out_features, params["channels"], int(params["kernel_size"]),
                                params["dropout"])
        targets = data_definitions["targets"]
        pooled = encoder.out_features * (2 if params["pooling"] == "mean_max" else 1)
        return {"embedding": embedding, "encoder": encoder,
                "head": head_for(targets["task"], pooled, targets, params["dropout"])}

    def forward(self, inputs: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        features = self.models["encoder"](self.models["embedding"](inputs), masks)
        if self.data_definitions["targets"]["task"] in RESIDUE_TASKS:
            return self.models["head"](features)              # one answer per residue, no pooling
        if self.params["pooling"] == "mean_max":       # the composition-like mean beside the motif-like max
            return self.models["head"](torch.cat([masked_mean(features, masks), masked_max(features, masks)], dim=-1))
        pool = masked_mean if self.params["pooling"] == "mean" else masked_max
        return self.models["head"](pool(features, masks))

    def forward_batch(self, batch: DataDict) -> torch.Tensor:
        return self(batch["inputs"], batch.get("masks"))
