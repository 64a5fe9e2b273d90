"""TransformerClassifier: a Transformer encoder over sequences or tokens, pooled, then a head (residue tasks:
the head at every position, no pooling)."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from pyrosys.configuration.constraints import Integer, Number
from pyrosys.data_dict import DataDict
from pyrosys.errors import ConfigError
from pyrosys.factory import register
from pyrosys.models.model import Model
from pyrosys.models.modules import SequenceInput, TransformerEncoder, head_for, masked_mean
from pyrosys.objectives import RESIDUE_TASKS


@register("model")
class TransformerClassifier(Model):
    """Embedding or projection, sinusoidal positions, self-attention layers, masked mean pool, head."""

    input_kinds = ("sequence", "tokens")
    tasks = ("classification", "regression", "multilabel", *RESIDUE_TASKS)    # residue tasks: a per-position head

    @staticmethod
    def get_params() -> dict:
        return {"embedding_dim": 32, "dim": 64, "heads": 4, "layers": 2, "feedforward": 128, "dropout": 0.1,
                "max_length": 1024}

    @staticmethod
    def constraints() -> dict:
        return {"embedding_dim": Integer(low=1), "dim": Integer(low=1), "heads": Integer(low=1),
                "layers": Integer(low=1), "feedforward": Integer(low=1),
                "dropout": Number(low=0, high=1, high_open=True), "max_length": Integer(low=1)}

    @staticmethod
    def build(params: Mapping, data_definitions: Mapping) -> dict[str, nn.Module]:
        if params["dim"] % params["heads"]:
            raise ConfigError(f"dim ({params['dim']}) must be a multiple of heads ({params['heads']}): each "
                              "attention head reads an equal share of it", key="model.heads")
        length = data_definitions["inputs"]["shape"][0]
        if length is not None and length > params["max_length"]:
            raise ConfigError(f"the sequences are up to {length} long, longer than the model's max_length "
                              f"({params['max_length']}), the positions it can encode", key="model.max_length",
                              hint=f"Set model.max_length to at least {length}, or shorten the sequences")
        entry = SequenceInput(data_definitions["inputs"], params["embedding_dim"])
        encoder = TransformerEncoder(entry.out_features, params["dim"], params["heads"], params["layers"],
                                     params["feedforward"], params["dropout"], params["max_length"])
        targets = data_definitions["targets"]
        return {"input": entry, "encoder": encoder,
                "head": head_for(targets["task"], encoder.out_features, targets, params["dropout"])}

    def forward(self, inputs: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        features = self.models["encoder"](self.models["input"](inputs), masks)
        if self.data_definitions["targets"]["task"] in RESIDUE_TASKS:
            return self.models["head"](features)              # one answer per residue, no pooling
        return self.models["head"](masked_mean(features, masks))

    def forward_batch(self, batch: DataDict) -> torch.Tensor:
        return self(batch["inputs"], batch.get("masks"))
