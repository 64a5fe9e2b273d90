"""SequenceRNN: an LSTM or GRU over sequences or amino-acid tokens; answers per position or per sequence."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from pyrosys.configuration.aliases import Aliases
from pyrosys.configuration.constraints import Boolean, Integer, Number, OneOf
from pyrosys.data_dict import DataDict
from pyrosys.factory import register
from pyrosys.models.model import Model
from pyrosys.models.modules import PositionwiseDecoder, RNNEncoder, SequenceInput, head_for, masked_mean
from pyrosys.objectives import RESIDUE_TASKS


@register("model")
class SequenceRNN(Model):
    """Recurrent encoder; a per-position decoder for sequence tasks (recall), a per-position head for residue
    tasks, a pooled head otherwise."""

    input_kinds = ("sequence", "tokens")
    tasks = ("sequence", "classification", "regression", "multilabel", *RESIDUE_TASKS)   # residue: per position
    # MI-Prometheus's LSTM model: the same stacked LSTM with a per-position linear output
    aliases = Aliases(names={"LSTM": {"cell": "lstm"}}, keys={"hidden_state_size": "hidden_size"})

    @staticmethod
    def get_params() -> dict:
        return {"cell": "lstm", "hidden_size": 64, "num_layers": 1, "bidirectional": False,
                "embedding_dim": 32, "dropout": 0.0}

    @staticmethod
    def constraints() -> dict:
        return {"cell": OneOf("lstm", "gru", "rnn"), "hidden_size": Integer(low=1), "num_layers": Integer(low=1),
                "bidirectional": Boolean(), "embedding_dim": Integer(low=1),
                "dropout": Number(low=0, high=1, high_open=True)}

    @staticmethod
    def build(params: Mapping, data_definitions: Mapping) -> dict[str, nn.Module]:
        entry = SequenceInput(data_definitions["inputs"], params["embedding_dim"])
        encoder = RNNEncoder(entry.out_features, params["hidden_size"], params["num_layers"], params["cell"],
                             params["bidirectional"], params["dropout"])
        targets = data_definitions["targets"]
        if targets["task"] == "sequence":
            head: nn.Module = PositionwiseDecoder(encoder.out_features, int(targets["shape"][-1]))
        else:
            head = head_for(targets["task"], encoder.out_features, targets, params["dropout"])
        return {"input": entry, "encoder": encoder, "head": head}

    def forward(self, inputs: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        """Per-position outputs for sequence tasks (where masks mark the answer, not padding) and residue tasks
        (masks mark padding); otherwise the mean of the features over the unpadded positions, through the head."""
        entry = self.models["input"](inputs)
        task = self.data_definitions["targets"]["task"]
        if task == "sequence":
            return self.models["head"](self.models["encoder"](entry))
        if task in RESIDUE_TASKS:                        # one answer per residue, no pooling
            return self.models["head"](self.models["encoder"](entry, masks))
        return self.models["head"](masked_mean(self.models["encoder"](entry, masks), masks))

    def forward_batch(self, batch: DataDict) -> torch.Tensor:
        return self(batch["inputs"], batch.get("masks"))
