"""PretrainedEncoder: a protein language model from Hugging Face `transformers` (ESM-2 through `EsmModel`, other
encoders through `AutoModel`) as a PyroSys module: PyroSys token ids in, per-residue features out.

The pretrained folder's tokenizer maps the problem's vocabulary to the encoder's token ids once, into a
table kept with the weights, so a bundle reads raw sequences exactly as training did. Sequences longer
than the encoder's window are read in overlapping windows (half a window apart) whose per-residue
features are averaged. `transformers` (and `peft`, for LoRA) are imported only when an encoder is built.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pyrosys.atomic import write_text_atomic
from pyrosys.errors import ConfigError

log = logging.getLogger("pyrosys.models")

BUNDLED = "pyrosys-encoder.json"    # in a bundle's encoder/ folder: its weights are in the bundle's weights file
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
UNUSED = ("contact_head.",)         # ESM's contact predictor: part of EsmModel, never part of its features
INSTALL = 'pip install "pyrosys[plm]"'
LORA_INSTALL = 'pip install "pyrosys[lora]"'
HUB_HINT = ("A hub name (facebook/esm2_t6_8M_UR50D) needs a network, or a copy in the Hugging Face cache (unset "
            "HF_HUB_OFFLINE to download once); or name a local folder written by save_pretrained")


def transformers_module(key: str) -> Any:
    """`transformers`, quiet (no progress bars, no advice), or a refusal saying how to install it."""
    try:
        import transformers
    except ImportError:
        raise ConfigError("protein language models need the transformers package, which is not installed",
                          key=key, hint=f"Install it with {INSTALL}") from None
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def pretrained_folder(name: str, key: str = "model.pretrained") -> Path:
    """The local folder `pretrained` names: a folder as given, else a hub name from the Hugging Face cache
    (downloaded there unless HF_HUB_OFFLINE is set)."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if path.exists() or path.is_absolute() or name.startswith(".") or name.count("/") != 1:
        raise ConfigError(f"{name!r} is not a folder of a pretrained model", file=name, key=key,
                          hint="Name a folder holding config.json, the tokenizer files and the weights, or a "
                               "Hugging Face hub name such as facebook/esm2_t6_8M_UR50D")
    transformers_module(key)
    from huggingface_hub import snapshot_download
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    try:
        return Path(snapshot_download(name, local_files_only=offline))
    except Exception as error:  # noqa: BLE001 - the hub client raises many kinds for one meaning: not reachable
        reason = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
        state = "HF_HUB_OFFLINE is set and it is not in the local cache" if offline else \
            f"it could not be downloaded ({reason})"
        raise ConfigError(f"the pretrained model {name!r} is neither a local folder nor reachable: {state}",
                          key=key, hint=HUB_HINT) from None


def weights_digest(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of named tensors (names, dtypes, shapes and values): what identifies an encoder's weights."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def load_pretrained(folder: Path, key: str) -> tuple[Any, Any, nn.Module, str, str | None]:
    """The configuration, tokenizer and model of a pretrained folder (the model's encoder alone for an
    encoder-decoder), the SHA-256 of its weights, and the source a bundle's copy names (None otherwise);
    whatever the folder lacks or transformers cannot read is refused, naming the folder."""
    transformers = transformers_module(key)
    where = str(folder)
    if not (folder / "config.json").is_file():
        raise ConfigError("this folder is not a pretrained model: it has no config.json", file=where, key=key,
                          hint="Name a folder written by save_pretrained (config.json, tokenizer files, weights)")
    bundled = folder / BUNDLED
    if not bundled.is_file() and not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise ConfigError("this folder holds a model configuration but no weights (model.safetensors or "
                          "pytorch_model.bin)", file=where, key=key,
                          hint="Name the folder the pretrained model was saved to in full")
    try:
        config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
    except Exception as error:  # noqa: BLE001 - transformers raises ValueError, KeyError, OSError alike
        raise ConfigError(f"config.json is not a model configuration transformers knows ({first_line(error)})",
                          file=str(folder / "config.json"), key=key,
                          hint="Name an ESM-2 folder or another encoder that AutoModel loads") from None
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except Exception as error:  # noqa: BLE001
        raise ConfigError(f"the folder's tokenizer cannot be read ({first_line(error)})", file=where, key=key,
                          hint="Save the tokenizer beside the weights: tokenizer.save_pretrained(folder)") from None
    extra = {"add_pooling_layer": False} if config.model_type in ("esm", "bert") else {}
    source = None
    try:
        if bundled.is_file():      # a bundle's copy: its architecture only, the weights come from the bundle
            model = transformers.AutoModel.from_config(config, **extra)
            marker = json.loads(bundled.read_text())
            source, digest = str(marker["source"]), str(marker["weights_sha256"])
        else:                      # never trust_remote_code: only classes transformers itself holds
            model = transformers.AutoModel.from_pretrained(folder, local_files_only=True, **extra)
            digest = weights_digest(model.state_dict())
    except Exception as error:  # noqa: BLE001
        raise ConfigError(f"the pretrained weights cannot be loaded ({first_line(error)})", file=where, key=key,
                          hint="The folder is damaged, or its weights do not fit its config.json") from None
    if getattr(config, "is_encoder_decoder", False):     # T5-style: only the encoder reads sequences
        model = model.get_encoder()
    return config, tokenizer, model, digest, source


def lengths_of(inputs: torch.Tensor, masks: torch.Tensor | None) -> list[int]:
    """Each row's sequence length (its mask's count; the whole row without masks)."""
    if masks is None:
        return [int(inputs.shape[1])] * int(inputs.shape[0])
    return [int(n) for n in masks.sum(dim=1).tolist()]


def window_starts(length: int, window: int) -> list[int]:
    """Where the windows over a sequence start: one window when it fits, else half a window apart, the last
    one ending at the sequence's end."""
    if length <= window:
        return [0]
    stride = max(1, window // 2)
    starts = list(range(0, length - window, stride))
    return [*starts, length - window]


def layer_list(model: nn.Module, layers: int) -> nn.ModuleList | None:
    """The encoder's stack of transformer layers (the ModuleList as long as config.num_hidden_layers)."""
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) == layers:
            return module
    return None


class PretrainedEncoder(nn.Module):
    """A pretrained Hugging Face encoder reading PyroSys token ids: features [N, T, H] and the start token's
    [N, H], windows averaged; frozen, partly or fully trained, or with LoRA adapters."""

    def __init__(self, folder: str | Path, vocabulary: Sequence[str], *, layer: int = -1, freeze: str = "all",
                 last_k: int = 2, finetune: Mapping | None = None, gradient_checkpointing: bool = False,
                 source: str | None = None, key: str = "model.pretrained") -> None:
        super().__init__()
        self.folder, self.layer, self.freeze = Path(folder), int(layer), freeze
        where = str(self.folder)
        self.config, self.tokenizer, self.model, self.weights_sha256, bundled_source = load_pretrained(self.folder, key)
        self.source = bundled_source or source or where
        self.hidden_size = int(self.config.hidden_size)
        self.layers = int(getattr(self.config, "num_hidden_layers", 0) or getattr(self.config, "num_layers", 0))
        self.check_layer(key)
        self.special = self.special_tokens(where, key)
        self.window = self.window_size()
        self.register_buffer("token_map", self.token_table(vocabulary, where, key))
        self.unknown_letters = [letter for index, letter in enumerate(vocabulary)
                                if index and int(self.token_map[index]) == self.special["unk"]]
        self.register_buffer("unknown", torch.tensor([bool(i) and letter in self.unknown_letters
                                                      for i, letter in enumerate(vocabulary)]), persistent=False)
        self.counts: dict[str, dict[str, int]] = {}     # phase -> what `count` found in it
        self.reported: set[str] = set()
        self.trainable(freeze, last_k, finetune, key)
        if gradient_checkpointing:          # transformers 5 names it activation checkpointing
            if hasattr(self.model, "activation_checkpointing_enable"):
                self.model.activation_checkpointing_enable({"use_reentrant": False})
            else:
                self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    # -- building ---------------------------------------------------------------------------------------

    def check_layer(self, key: str) -> None:
        """`layer` must name one of the hidden states (0: the embeddings, -1 and `layers`: the last layer)."""
        if not -(self.layers + 1) <= self.layer <= self.layers:
            raise ConfigError(f"layer {self.layer} is not a layer of this encoder, which has {self.layers}",
                              key=key.rsplit(".", 1)[0] + ".layer",
                              hint=f"Use -1 (the last layer) or 0..{self.layers}")

    def special_tokens(self, where: str, key: str) -> dict[str, int]:
        """The ids that start, end and pad a sequence and stand for unknown letters, checked to exist in the
        encoder's vocabulary (a tokenizer of another model has ids beyond it)."""
        tokenizer = self.tokenizer
        start = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
        end = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
        special = {"start": start, "end": end, "pad": tokenizer.pad_token_id, "unk": tokenizer.unk_token_id}
        if special["pad"] is None or special["unk"] is None:
            raise ConfigError("the tokenizer has no padding or unknown token", file=where, key=key,
                              hint="Use the tokenizer saved with this encoder")
        size = self.model.get_input_embeddings().num_embeddings
        if len(tokenizer) > size:
            raise ConfigError(f"the tokenizer does not match the encoder: it has {len(tokenizer)} tokens, the "
                              f"encoder's embedding table {size}", file=where, key=key,
                              hint="Save the encoder's own tokenizer in the folder (tokenizer.save_pretrained)")
        return special

    def window_size(self) -> int:
        """Residues per window: the tokenizer's (else the configuration's) longest input, less the start and
        end tokens (ESM-2: 1,024 - 2 = 1,022)."""
        longest = [n for n in (getattr(self.tokenizer, "model_max_length", None),
                               getattr(self.config, "max_position_embeddings", None)) if n and n < 10 ** 6]
        specials = sum(self.special[name] is not None for name in ("start", "end"))
        return max(1, min(longest or [1024]) - specials)

    def token_table(self, vocabulary: Sequence[str], where: str, key: str) -> torch.Tensor:
        """The encoder's token id of each PyroSys token id: padding to the tokenizer's padding, each letter
        to its token (upper case first), letters the tokenizer lacks to its unknown token."""
        size = self.model.get_input_embeddings().num_embeddings
        table = [self.special["pad"]]
        for letter in vocabulary[1:]:
            ids = [self.tokenizer.convert_tokens_to_ids(form) for form in (letter.upper(), letter)]
            known = [i for i in ids if isinstance(i, int) and i != self.special["unk"]]
            table.append(known[0] if known else self.special["unk"])
        if max(table) >= size:
            raise ConfigError(f"the tokenizer does not match the encoder: it maps letters to ids up to {max(table)}, "
                              f"beyond the encoder's {size} embeddings", file=where, key=key,
                              hint="Save the encoder's own tokenizer in the folder (tokenizer.save_pretrained)")
        return torch.tensor(table, dtype=torch.long)

    def trainable(self, freeze: str, last_k: int, finetune: Mapping | None, key: str) -> None:
        """Which weights train: none (freeze all; LoRA adapters if `finetune` asks), the last k layers, or all."""
        section = key.rsplit(".", 1)[0]
        if freeze == "last_k":
            stack = layer_list(self.model, self.layers)
            if stack is None or last_k > len(stack):
                raise ConfigError(f"last_k is {last_k}, but the encoder has {self.layers} layers",
                                  key=f"{section}.last_k",
                                  hint=f"Train at most its {self.layers} layers (freeze: none trains them all)")
            first = len(stack) - last_k
            frozen = {id(p) for layer in list(stack)[:first] for p in layer.parameters()}
            frozen |= {id(p) for p in self.model.get_input_embeddings().parameters()}
            for name, parameter in self.model.named_parameters():
                parameter.requires_grad_(id(parameter) not in frozen and not name.startswith("embeddings."))
        elif freeze == "all":
            self.model.requires_grad_(False)
        for name, parameter in self.model.named_parameters():
            if name.startswith(UNUSED):
                parameter.requires_grad_(False)
        if finetune is not None:
            self.add_lora(finetune, section)

    def add_lora(self, finetune: Mapping, section: str) -> None:
        """LoRA adapters (peft) in the named linear layers; only they train."""
        try:
            import peft
        except ImportError:
            raise ConfigError("LoRA needs the peft package, which is not installed", key=f"{section}.finetune",
                              hint=f"Install it with {LORA_INSTALL}") from None
        targets = list(finetune.get("target_modules") or default_lora_targets(self.model))
        names = {name.rsplit(".", 1)[-1] for name, _ in self.model.named_modules()}
        unknown = [t for t in targets if t not in names]
        if unknown:
            linear = sorted({n.rsplit(".", 1)[-1] for n, m in self.model.named_modules() if isinstance(m, nn.Linear)})
            raise ConfigError(f"the encoder has no module named {unknown[0]!r} for LoRA",
                              key=f"{section}.finetune.target_modules", hint="Its linear layers: " + ", ".join(linear))
        config = peft.LoraConfig(r=int(finetune.get("r", 8)), lora_alpha=float(finetune.get("alpha", 16)),
                                 lora_dropout=float(finetune.get("dropout", 0.0)), target_modules=targets)
        self.model.requires_grad_(False)
        self.model = peft.inject_adapter_in_model(config, self.model)
        for name, parameter in self.model.named_parameters():
            parameter.requires_grad_("lora_" in name)

    def train(self, mode: bool = True) -> PretrainedEncoder:
        """A frozen encoder stays in evaluation mode (no dropout), so its features equal the cached ones."""
        super().train(mode)
        if self.freeze == "all" and not any(p.requires_grad for p in self.model.parameters()):
            self.model.eval()
        return self

    def frozen_names(self) -> list[str]:
        """This module's tensors (state-dict names) that never change: frozen weights and the model's buffers."""
        trainable = {name for name, p in self.model.named_parameters() if p.requires_grad}
        return [f"model.{name}" for name in self.model.state_dict() if name not in trainable]

    def save_files(self, folder: Path) -> None:
        """Write the encoder's configuration and tokenizer (not its weights: the bundle holds them) to `folder`."""
        folder.mkdir(parents=True, exist_ok=True)
        self.config.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        write_text_atomic(folder / BUNDLED, json.dumps({"source": self.source, "weights_sha256": self.weights_sha256,
                                                        "weights": "in the bundle's weights file"}, indent=1) + "\n")

    # -- reading sequences ----------------------------------------------------------------------------

    def forward(self, inputs: torch.Tensor, masks: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-residue features [N, T, H] (zero at padding) and the start token's features [N, H]."""
        lengths = lengths_of(inputs, masks)
        ids = self.token_map[inputs]
        rows, places = [], []
        width = min(self.window, max(lengths) if lengths else 1)
        for sample, length in enumerate(lengths):
            for start in window_starts(int(length), width):
                size = min(width, int(length) - start)
                rows.append(self.framed(ids[sample, start:start + size], width))
                places.append((sample, start, size))
        tokens = torch.stack(rows)
        attention = tokens != self.special["pad"]
        states = self.hidden_states(tokens, attention)
        offset = int(self.special["start"] is not None)
        features = states.new_zeros(inputs.shape[0], inputs.shape[1], states.shape[-1])
        counts = states.new_zeros(inputs.shape[0], inputs.shape[1], 1)
        firsts = states.new_zeros(inputs.shape[0], states.shape[-1])
        windows = states.new_zeros(inputs.shape[0], 1)
        for row, (sample, start, size) in enumerate(places):
            features[sample, start:start + size] += states[row, offset:offset + size]
            counts[sample, start:start + size] += 1
            firsts[sample] += states[row, 0]
            windows[sample] += 1
        return features / counts.clamp(min=1), firsts / windows

    def framed(self, ids: torch.Tensor, width: int) -> torch.Tensor:
        """One window's encoder input: start token, residues, end token, padding to the batch's width."""
        parts = [ids]
        if self.special["start"] is not None:
            parts.insert(0, ids.new_tensor([self.special["start"]]))
        if self.special["end"] is not None:
            parts.append(ids.new_tensor([self.special["end"]]))
        row = torch.cat(parts)
        size = width + len(parts) - 1
        return torch.cat([row, row.new_full((size - len(row),), self.special["pad"])])

    def hidden_states(self, tokens: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        """The chosen layer's hidden states of the framed windows."""
        if self.layer in (-1, self.layers):
            return self.model(input_ids=tokens, attention_mask=attention).last_hidden_state
        outputs = self.model(input_ids=tokens, attention_mask=attention, output_hidden_states=True)
        return outputs.hidden_states[self.layer]

    def count(self, inputs: torch.Tensor, masks: torch.Tensor | None, lengths: list[int], phase: str) -> None:
        """Keep count, per phase, of letters read as the unknown token and of sequences read in windows."""
        counts = self.counts.setdefault(phase, {"unknown_residues": 0, "unknown_sequences": 0, "windowed": 0})
        if self.unknown_letters:
            unknown = self.unknown[inputs] & (masks if masks is not None else True)
            counts["unknown_residues"] += int(unknown.sum())
            counts["unknown_sequences"] += int(unknown.any(dim=1).sum())
        counts["windowed"] += sum(length > self.window for length in lengths)

    def report(self, phase: str) -> None:
        """Log, once per phase (its first pass over the data), the letters the tokenizer lacks and the
        sequences read in windows."""
        counts = self.counts.pop(phase, None)
        if counts is None or phase in self.reported:
            return
        self.reported.add(phase)
        if counts["unknown_residues"]:
            log.warning("%s: %d residues in %d sequences are letters the tokenizer of %s does not know (%s); they "
                        "were read as its unknown token", phase, counts["unknown_residues"],
                        counts["unknown_sequences"], self.source, ", ".join(self.unknown_letters))
        if counts["windowed"]:
            log.info("%s: %d sequences longer than the encoder's %d residues were read in overlapping windows, "
                     "averaged", phase, counts["windowed"], self.window)


def default_lora_targets(model: nn.Module) -> list[str]:
    """The attention projections LoRA adapts when no target_modules are named (ESM and BERT: query, value)."""
    names = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, nn.Linear)}
    for pair in (["query", "value"], ["q", "v"], ["q_proj", "v_proj"]):
        if set(pair) <= names:
            return pair
    return sorted(names)


def first_line(error: BaseException) -> str:
    """An exception as one short line."""
    text = str(error).strip()
    return (text.splitlines()[0][:200] if text else type(error).__name__)
