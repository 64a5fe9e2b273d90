"""PLMClassifier: a pretrained protein language model (ESM-2, or another Hugging Face encoder) and a head for any
task: pooled features for sequence classification, regression and multi-label; per-residue features for
residue tasks. The encoder is frozen (its embeddings optionally cached on disk for every run), trained in its
last layers or in full, or adapted with LoRA.
"""
from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pyrosys.configuration.constraints import (Boolean, Integer, ListOf, MappingWith, Number, OneOf, OptionalOf,
                                               Text)
from pyrosys.data_dict import DataDict
from pyrosys.errors import ConfigError
from pyrosys.factory import register
from pyrosys.models.embedding_cache import EmbeddingCache, sequence_key
from pyrosys.models.model import Model, inside
from pyrosys.models.modules import head_for, masked_mean
from pyrosys.models.modules.pretrained import PretrainedEncoder, lengths_of, pretrained_folder
from pyrosys.objectives import RESIDUE_TASKS

ENCODER_FOLDER = "encoder"          # in a bundle: the encoder's config.json and tokenizer files
FILL_ROWS = 32                      # sequences per encoder batch while filling the embedding cache
log = logging.getLogger("pyrosys.models")
# a frozen encoder stays in evaluation mode on purpose (PretrainedEncoder.train): Lightning's notice is noise
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")


@register("model")
class PLMClassifier(Model):
    """Pretrained encoder (windows of its longest input, averaged), pooling, feed-forward layers, task head."""

    input_kinds = ("tokens",)
    tasks = ("classification", "regression", "multilabel", *RESIDUE_TASKS)    # residue tasks: a per-position head

    @staticmethod
    def get_params() -> dict:
        return {"pretrained": None,        # a folder written by save_pretrained, or a hub name (needs a network once)
                "freeze": "all",           # all: only the head trains; none: the whole encoder; last_k: its last layers
                "last_k": 2,               # freeze: last_k trains the encoder's last last_k layers
                "finetune": None,          # LoRA: {method: lora, r: 8, alpha: 16, dropout: 0.0, target_modules: [...]}
                "pooling": "mean",         # mean over residues, cls (the start token), attention (learned weights)
                "layer": -1,               # the hidden state read: -1 the last layer, 0 the embeddings
                "head": {"hidden": [], "dropout": 0.1},
                "embeddings": None,        # {cache: DIR}: a frozen encoder's embeddings kept on disk, shared by runs
                "gradient_checkpointing": False}

    @staticmethod
    def constraints() -> dict:
        return {"pretrained": OptionalOf(Text(), "required: a folder or hub name"),
                "freeze": OneOf("all", "none", "last_k"), "last_k": Integer(low=1),
                "finetune": OptionalOf(MappingWith({"method": OneOf("lora"), "r": Integer(low=1),
                                                    "alpha": Number(low=0, low_open=True),
                                                    "dropout": Number(low=0, high=1, high_open=True),
                                                    "target_modules": ListOf(Text(), min_length=1)}),
                                       "no adapters"),
                "pooling": OneOf("mean", "cls", "attention"), "layer": Integer(),
                "head": MappingWith({"hidden": ListOf(Integer(low=1)),
                                     "dropout": Number(low=0, high=1, high_open=True)}),
                "embeddings": OptionalOf(MappingWith({"cache": Text()}), "no cache"),
                "gradient_checkpointing": Boolean()}

    @staticmethod
    def build(params: Mapping, data_definitions: Mapping) -> dict[str, nn.Module]:
        if not params["pretrained"]:
            raise ConfigError("PLMClassifier needs a pretrained encoder", key="model.pretrained",
                              hint="Set model.pretrained to a folder written by save_pretrained, or a hub name such "
                                   "as facebook/esm2_t6_8M_UR50D (docs/proteins.md, 'Protein language models')")
        if params["finetune"] is not None and params["freeze"] != "all":
            raise ConfigError(f"LoRA adapts a frozen encoder, but freeze is {params['freeze']!r}",
                              key="model.finetune", hint="Set freeze: all with finetune (or drop finetune)")
        frozen = params["freeze"] == "all" and params["finetune"] is None
        if params["embeddings"] is not None and not frozen:
            raise ConfigError("only a frozen encoder's embeddings can be cached (this one trains)",
                              key="model.embeddings.cache", hint="Set freeze: all without finetune, or drop embeddings")
        folder = pretrained_folder(str(params["pretrained"]))
        encoder = PretrainedEncoder(folder, data_definitions["inputs"]["vocabulary"], layer=params["layer"],
                                    freeze=params["freeze"], last_k=int(params["last_k"]), finetune=params["finetune"],
                                    gradient_checkpointing=bool(params["gradient_checkpointing"]),
                                    source=str(params["pretrained"]))
        head = dict(params["head"])
        layers: list[nn.Module] = []
        width = encoder.hidden_size
        for size in head.get("hidden", []):
            layers += [nn.Dropout(float(head.get("dropout", 0.1))), nn.Linear(width, int(size)), nn.GELU()]
            width = int(size)
        targets = data_definitions["targets"]
        dropout = float(head.get("dropout", 0.1))
        modules: dict[str, nn.Module] = {"encoder": encoder, "feedforward": nn.Sequential(*layers),
                                         "head": head_for(targets["task"], width, targets, dropout)}
        if params["pooling"] == "attention" and targets["task"] not in RESIDUE_TASKS:
            modules["attention"] = nn.Linear(encoder.hidden_size, 1)
        return modules

    def __init__(self, params: Mapping, data_definitions: Mapping) -> None:
        super().__init__(params, data_definitions)
        per_residue = self.data_definitions["targets"]["task"] in RESIDUE_TASKS or self.params["pooling"] == "attention"
        self.representation = "residues" if per_residue else self.params["pooling"]
        encoder = self.models["encoder"]
        self.cache = None
        if self.params["embeddings"] is not None:
            self.cache = EmbeddingCache(self.params["embeddings"]["cache"], encoder.weights_sha256,
                                        f"layer{encoder.layer}_{self.representation}", encoder.source)
            self.cache.check()

    # -- reading sequences ------------------------------------------------------------------------------

    def forward(self, inputs: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        features = self.features(inputs, masks)
        task = self.data_definitions["targets"]["task"]
        if self.representation == "residues" and task not in RESIDUE_TASKS:      # attention pooling
            scores = self.models["attention"](features).squeeze(-1)
            if masks is not None:
                scores = scores.masked_fill(~masks.bool(), float("-inf"))
            features = (scores.softmax(dim=1).unsqueeze(-1) * features).sum(dim=1)
        return self.models["head"](self.models["feedforward"](features))

    def forward_batch(self, batch: DataDict) -> torch.Tensor:
        """The outputs of a batch; outside training, many sequences (a predictor's file) go through in chunks."""
        inputs, masks = batch["inputs"], batch.get("masks")
        if self.training or len(inputs) <= FILL_ROWS:
            return self(inputs, masks)
        return torch.cat([self(inputs[start:start + FILL_ROWS], masks[start:start + FILL_ROWS] if masks is not None
                               else None) for start in range(0, len(inputs), FILL_ROWS)])

    def features(self, inputs: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
        """The encoder's representation of a batch ([N, H] pooled, or [N, T, H] per residue), from the
        embedding cache where it holds them."""
        encoder = self.models["encoder"]
        lengths = lengths_of(inputs, masks)
        encoder.count(inputs, masks, lengths, self.phase())
        if self.cache is None:
            return self.encoded(inputs, masks)
        keys = self.keys(inputs, lengths)
        found = [self.cache.get(key) for key in keys]
        missing = [i for i, item in enumerate(found) if item is None]
        if missing:
            computed = self.rows(inputs, masks, missing)
            for i, item in zip(missing, computed):
                found[i] = item
                self.cache.put(keys[i], item)
        if self.representation != "residues":
            return torch.stack(found).to(self.device)
        padded = torch.zeros(inputs.shape[0], inputs.shape[1], encoder.hidden_size, device=self.device)
        for i, item in enumerate(found):
            padded[i, :len(item)] = item
        return padded

    def phase(self) -> str:
        """The phase a batch belongs to (training, validation, test, ...), or prediction outside a trainer."""
        return self._trainer.state.stage.value if self._trainer is not None and self._trainer.state.stage else \
            "prediction"

    def encoded(self, inputs: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
        """The representation computed by the encoder."""
        residues, first = self.models["encoder"](inputs, masks)
        if self.representation == "residues":
            return residues
        return first if self.representation == "cls" else masked_mean(residues, masks)

    @torch.no_grad()
    def rows(self, inputs: torch.Tensor, masks: torch.Tensor | None, rows: list[int]) -> list[torch.Tensor]:
        """The representation of some rows of a batch, each trimmed to its sequence (residues)."""
        index = torch.tensor(rows, device=inputs.device)
        sub_masks = masks[index] if masks is not None else None
        lengths = lengths_of(inputs[index], sub_masks)
        width = max(lengths)
        encoded = self.encoded(inputs[index][:, :width], sub_masks[:, :width] if sub_masks is not None else None)
        if self.representation != "residues":
            return [row.float().cpu() for row in encoded]
        return [encoded[i, :length].float().cpu() for i, length in enumerate(lengths)]

    def keys(self, inputs: torch.Tensor, lengths: list[int]) -> list[str]:
        """Each sequence's cache key (its encoder token ids)."""
        ids = self.models["encoder"].token_map[inputs]
        return [sequence_key(ids[i, :length]) for i, length in enumerate(lengths)]

    def fill_cache(self, problem: Any, phases: tuple[str, ...]) -> None:
        """Compute, in the cache folder's turn, the embeddings the cache lacks for the problem's splits (an
        in-memory problem's; others fill it batch by batch as they train)."""
        if self.cache is None or not hasattr(problem, "phase_split"):
            return
        def batches() -> Iterator[tuple[list[str], Any]]:
            for phase in phases:
                fields = problem.phase_split(phase).fields
                inputs, masks = fields["inputs"], fields.get("masks")
                for start in range(0, len(inputs), FILL_ROWS):
                    chunk = inputs[start:start + FILL_ROWS].to(self.device)
                    chunk_masks = masks[start:start + FILL_ROWS].to(self.device) if masks is not None else None
                    yield (self.keys(chunk, lengths_of(chunk, chunk_masks)),
                           lambda rows, c=chunk, m=chunk_masks: self.rows(c, m, rows))
        was_training = self.training
        self.eval()
        try:
            computed = self.cache.fill(batches())
        finally:
            self.train(was_training)
        if computed:
            log.info("embedding cache: %d sequences embedded into %s", computed, self.cache.folder)

    # -- the run's hooks: fill the cache first, report what the encoder met -------------------------------

    def on_fit_start(self) -> None:
        self.fill_cache(self.trainer.datamodule, ("train", "val"))

    def on_test_start(self) -> None:
        self.fill_cache(self.trainer.datamodule, ("test",))

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        self.end_phase()

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        self.end_phase()

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        self.end_phase()

    def end_phase(self) -> None:
        """Write the embeddings computed during the phase to the cache; report unknown letters and windows."""
        if self.cache is not None:
            self.cache.flush()
        self.models["encoder"].report(self.phase())

    def predictions_done(self) -> None:
        self.end_phase()

    # -- what checkpoints leave out, what bundles add --------------------------------------------------

    def frozen_tensors(self) -> dict | None:
        encoder = self.models["encoder"]
        names = [f"models.encoder.{name}" for name in encoder.frozen_names()]
        return {"names": names, "source": encoder.source, "sha256": encoder.weights_sha256} if names else None

    def save_files(self, folder: Path) -> None:
        self.models["encoder"].save_files(folder / ENCODER_FOLDER)

    @classmethod
    def bundled_params(cls, params: Mapping, folder: Path, file: str) -> dict:
        encoder = folder / inside(folder, ENCODER_FOLDER, file, "encoder")
        return {**params, "pretrained": str(encoder)}

