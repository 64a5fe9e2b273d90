"""Adapter: copy weights into a model by structure (module tree and tensor shapes, in order), not by
parameter names, so that weights serve across architectures that share a structure.

Sources: another model, a bundle folder (model.yaml + weights) or a PyroSys checkpoint. Optionally
only named sub-modules are copied, and optionally they are frozen. The report says what matched.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pyrosys.callbacks.checkpoint import read_checkpoint
from pyrosys.errors import ConfigError, did_you_mean
from pyrosys.models.model import BUNDLE_FILE, Model


@dataclass
class AdapterReport:
    """What a transfer did: (source, target) pairs copied, shape mismatches, tensors left unpaired."""

    matched: list[tuple[str, str]] = field(default_factory=list)
    shape_mismatched: list[tuple[str, str, list, list]] = field(default_factory=list)
    unmatched_target: list[str] = field(default_factory=list)
    unmatched_source: list[str] = field(default_factory=list)
    frozen: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for logs."""
        return (f"adapter: {len(self.matched)} tensors copied, {len(self.shape_mismatched)} of another shape, "
                f"{len(self.unmatched_target)} target and {len(self.unmatched_source)} source tensors unpaired"
                + (f", frozen: {', '.join(self.frozen)}" if self.frozen else ""))


def source_weights(source: Any) -> dict[str, torch.Tensor]:
    """The named tensors of a model, a bundle folder or a checkpoint, keyed as in `model.models`."""
    if isinstance(source, Model):
        return dict(source.models.state_dict())
    path = Path(source)
    if path.is_dir() and (path / BUNDLE_FILE).is_file():
        return dict(Model.load(path).models.state_dict())
    if path.is_file():
        checkpoint = read_checkpoint(path, key="model.load.from")
        if (checkpoint["pyrosys"] or {}).get("frozen"):       # frozen weights left out: rebuild the model whole
            return dict(Model.from_checkpoint(checkpoint, str(path)).models.state_dict())
        state = checkpoint["state_dict"]
        return {key.removeprefix("models."): value for key, value in state.items() if key.startswith("models.")}
    raise ConfigError("there is no model bundle or checkpoint here", file=str(path), key="model.load.from",
                      hint="Name a bundle folder (models/best) or a checkpoint (models/best.ckpt)")


def _under(state: Mapping[str, torch.Tensor], module: str | None) -> list[tuple[str, torch.Tensor]]:
    return [(k, v) for k, v in state.items() if module is None or k == module or k.startswith(module + ".")]


def adapt(target: Any, source: Any, modules: Sequence[str] | None = None,
          freeze: Sequence[str] | None = None) -> AdapterReport:
    """Copy the source's tensors into `target` by structure; only `modules` if given; freeze `freeze`."""
    own = target.models.state_dict()
    names = list(target.models)
    for module in list(modules or []) + list(freeze or []):
        if module not in names:
            raise ConfigError(f"the model {type(target).__name__} has no sub-module '{module}'",
                              key="model.load", hint=did_you_mean(module, names) + f" Sub-modules: {', '.join(names)}")
    weights = source_weights(source)
    report = AdapterReport()
    updates: dict[str, torch.Tensor] = {}
    for module in modules or [None]:
        targets = _under(own, module)
        sources = _under(weights, module) if module is None or _under(weights, module) else []
        if module is not None and not sources:
            raise ConfigError(f"the source has no sub-module '{module}'", key="model.load.modules",
                              hint="Sub-modules of the source: "
                                   + ", ".join(sorted({k.split(".")[0] for k in weights})))
        for (target_name, own_tensor), (source_name, tensor) in zip(targets, sources):
            if tuple(own_tensor.shape) == tuple(tensor.shape):
                updates[target_name] = tensor.detach().clone().to(own_tensor.dtype)
                report.matched.append((source_name, target_name))
            else:
                report.shape_mismatched.append((source_name, target_name, list(tensor.shape), list(own_tensor.shape)))
        report.unmatched_target += [name for name, _ in targets[len(sources):]]
        report.unmatched_source += [name for name, _ in sources[len(targets):]]
    target.models.load_state_dict({**own, **updates}, strict=True)
    for module in freeze or []:
        for parameter in target.models[module].parameters():
            parameter.requires_grad_(False)
        report.frozen.append(module)
    return report
