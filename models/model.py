"""Model: a LightningModule built from named modules, usable without any trainer (Frag Atlas style).

Authors write `get_params()`, `build(params, data_definitions)` and `forward`. `create`, `save`,
`load` and the training, validation and test steps are this base class's; the steps depend only
on the objective the worker attaches, never on an architecture.
"""
from __future__ import annotations

import copy
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytorch_lightning as pl
import torch
import torchmetrics
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

import pyrosys
from pyrosys.atomic import atomic_path, write_text_atomic
from pyrosys.configuration.loading import dump_yaml, load_yaml
from pyrosys.data_dict import DataDict, batch_size
from pyrosys.errors import ConfigError, did_you_mean
from pyrosys.factory import resolve

BUNDLE_FILE = "model.yaml"
WEIGHTS_FILE = "weights.safetensors"


def class_path(cls: type) -> str:
    """The dotted import path of a class (what bundles and checkpoints record)."""
    return f"{cls.__module__}.{cls.__qualname__}"


class Model(pl.LightningModule):
    """Base of every model: parameters, named modules, bundle save/load, and the generic steps."""

    input_kinds: ClassVar[tuple[str, ...]] = ("vector", "image")        # what `inputs` it reads
    tasks: ClassVar[tuple[str, ...]] = ("classification", "regression")  # which task interfaces it serves
    target_field: ClassVar[str] = "targets"   # the batch field its outputs are compared with
    default_loss: ClassVar[str | None] = None  # None: the problem's default (autoencoders set their own)
    default_metrics: ClassVar[tuple[str, ...] | None] = None

    @staticmethod
    def get_params() -> dict:
        """Hyper-parameters and their defaults, fixed for the model's lifetime."""
        return {}

    @staticmethod
    def build(params: Mapping, data_definitions: Mapping) -> dict[str, nn.Module]:
        """The named modules of the architecture, sized from the parameters and the data definitions."""
        raise TypeError("a Model subclass must define build(params, data_definitions)")

    def __init__(self, params: Mapping, data_definitions: Mapping) -> None:
        super().__init__()
        self.params = copy.deepcopy(dict(params))
        self.data_definitions = copy.deepcopy(dict(data_definitions))
        self.models = nn.ModuleDict(self.build(self.params, self.data_definitions))
        self.objective = None
        self.configure_optimization: Callable[[Model], Any] | None = None
        self.configuration: dict | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        """Lightning names the running hook on the module twice per hook call, about fifty times a
        training step; that plain string needs none of nn.Module's checks for parameters, buffers and
        submodules (1 µs each)."""
        if name == "_current_fx_name":
            self.__dict__[name] = value
        else:
            super().__setattr__(name, value)

    # -- use: create, save, load, predict ---------------------------------------------------------

    @classmethod
    def create(cls, params: Mapping | None = None, data_definitions: Mapping | None = None) -> Model:
        """A model from (partial) parameters: defaults filled in, unknown keys refused, data checked."""
        defaults = cls.get_params()
        for key in params or {}:
            if key not in defaults:
                raise ConfigError(f"{cls.__name__} has no parameter '{key}'", key=f"model.{key}",
                                  hint=did_you_mean(key, defaults))
        data_definitions = dict(data_definitions or {})
        cls.check_fit(data_definitions)
        return cls({**defaults, **dict(params or {})}, data_definitions)

    @classmethod
    def check_fit(cls, data_definitions: Mapping, problem: str = "the data") -> None:
        """Refuse data this model cannot read or a task it cannot serve, naming both sides."""
        inputs, targets = data_definitions.get("inputs", {}), data_definitions.get("targets", {})
        kind, task = inputs.get("kind"), targets.get("task")
        if kind not in cls.input_kinds:
            raise ConfigError(f"the model {cls.__name__} reads {' or '.join(cls.input_kinds)} inputs, but "
                              f"{problem} gives {kind or 'undescribed'} inputs", key="model.name",
                              hint="Choose a model made for these inputs (see the README's table of models)")
        if cls.target_field == "targets" and task not in cls.tasks:
            raise ConfigError(f"the model {cls.__name__} serves {' or '.join(cls.tasks)} tasks, but {problem} "
                              f"is a {task or 'undescribed'} task", key="model.name",
                              hint="Choose a model that serves this task")

    def description(self) -> dict:
        """Everything needed to rebuild this architecture: class, parameters, data definitions."""
        return {"class": class_path(type(self)), "params": copy.deepcopy(self.params),
                "data_definitions": copy.deepcopy(self.data_definitions),
                "pyrosys_version": pyrosys.__version__}

    def save(self, folder: str | Path) -> Path:
        """Write a bundle folder (model.yaml + weights) that `Model.load` rebuilds with nothing else."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        weights = {k: v.detach().cpu().contiguous() for k, v in self.models.state_dict().items()}
        with atomic_path(folder / WEIGHTS_FILE) as temporary:
            save_file(weights, str(temporary))
        write_text_atomic(folder / BUNDLE_FILE, dump_yaml({**self.description(), "weights": WEIGHTS_FILE}))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Model:
        """Rebuild a saved model from its bundle folder: no trainer, problem or configuration needed."""
        folder = Path(folder)
        description = load_yaml(folder / BUNDLE_FILE)
        file = str(folder / BUNDLE_FILE)
        for key in ("class", "params", "data_definitions"):
            if key not in description:
                raise ConfigError(f"the bundle description lacks '{key}'", file=file, key=key,
                                  hint="Is this folder a PyroSys model bundle (written by Model.save)?")
        model_cls = resolve({"_target_": description["class"]}, "model", file=file, key="class")
        if not issubclass(model_cls, cls):
            raise ConfigError(f"the bundle holds a {model_cls.__name__}, not a {cls.__name__}", file=file,
                              key="class", hint="Load it with Model.load to accept any model")
        model = model_cls.create(description["params"], description["data_definitions"])
        weights_file = folder / str(description.get("weights", WEIGHTS_FILE))
        try:
            state = load_file(str(weights_file))
        except (OSError, SafetensorError) as error:
            raise ConfigError(f"the bundle weights cannot be read ({error})", file=str(weights_file)) from None
        load_weights(model.models, state, str(weights_file))
        return model.eval()

    @classmethod
    def from_checkpoint(cls, checkpoint: Mapping, source: str) -> Model:
        """Rebuild the model a PyroSys checkpoint (read by `read_checkpoint`) describes, with its weights,
        in evaluation mode: the one way from a checkpoint to a model."""
        description = checkpoint["pyrosys"]["model"]
        model_cls = resolve({"_target_": description.get("class")}, "model", file=source, key="pyrosys.model.class")
        if not issubclass(model_cls, cls):
            raise ConfigError(f"the checkpoint holds a {model_cls.__name__}, not a {cls.__name__}", file=source,
                              key="pyrosys.model.class", hint="Load it with Model.from_checkpoint to accept any model")
        model = model_cls.create(description.get("params"), description.get("data_definitions"))
        load_weights(model, checkpoint["state_dict"], source)
        return model.eval()

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """Batches of in-memory CPU problems are already where a CPU run needs them: no per-step walk."""
        if device.type == "cpu":
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def forward_batch(self, batch: DataDict) -> torch.Tensor:
        """The model's outputs for a batch; models that read more fields than `inputs` override this."""
        return self(batch["inputs"])

    @property
    def task(self) -> str:
        """The task interface this model instance serves (from its data definitions)."""
        return "autoencoding" if self.target_field == "inputs" else self.data_definitions["targets"]["task"]

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor, **fields: torch.Tensor) -> torch.Tensor:
        """Outputs for inputs in evaluation mode, without gradients (the 'use' side of a model).

        Other batch fields a model reads (`masks` for padded sequences) are passed by name.
        """
        was_training = self.training
        self.eval()
        try:
            return self.forward_batch(DataDict(inputs=inputs, **fields))
        finally:
            self.train(was_training)

    @torch.no_grad()
    def predict_proba(self, inputs: torch.Tensor, **fields: torch.Tensor) -> torch.Tensor:
        """Classification interface: class probabilities (softmax of the logits)."""
        return self.predict(inputs, **fields).softmax(dim=-1)

    @torch.no_grad()
    def classify(self, inputs: torch.Tensor, **fields: torch.Tensor) -> torch.Tensor:
        """Classification interface: the most probable class of each sample."""
        return self.predict(inputs, **fields).argmax(dim=-1)

    # -- training, driven by a worker -------------------------------------------------------------

    def attach(self, objective: Any, configure_optimization: Callable[[Model], Any],
               configuration: Mapping | None = None) -> None:
        """Hand the model what training needs: the objective, the optimiser recipe, the run's configuration."""
        self.objective = objective
        self.configure_optimization = configure_optimization
        self.configuration = copy.deepcopy(dict(configuration)) if configuration is not None else None
        # phase -> metric states; ModuleDict keys may not shadow Module attributes such as `train`
        self.phase_metrics = nn.ModuleDict(
            {f"{phase}_metrics": objective.metrics(self.data_definitions) for phase in ("train", "val", "test")})
        self.phase_losses = nn.ModuleDict({f"{phase}_loss": torchmetrics.MeanMetric() for phase in ("val", "test")})
        self._train_batches: list[tuple[dict, int]] = []

    def _require_objective(self) -> Any:
        if self.objective is None:
            raise RuntimeError("this model has no objective: a worker attaches one with model.attach(...)")
        return self.objective

    def training_step(self, batch: DataDict, batch_index: int) -> dict:
        objective = self._require_objective()
        outputs = self.forward_batch(batch)
        loss = objective.loss(outputs, batch)
        values = self.phase_metrics["train_metrics"].batch_values(*objective.metric_inputs(outputs.detach(), batch))
        self._train_batches.append((values, batch_size(batch)))   # the epoch's train_<metric>, summed at its end
        own = self.batch_statistics(batch, outputs.detach())
        return {"loss": loss, **values, **own} if own else {"loss": loss, **values}

    def batch_statistics(self, batch: DataDict, outputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Statistics of a training batch the model adds to the training rows (none by default)."""
        return {}

    def _evaluate(self, batch: DataDict, phase: str) -> dict:
        objective = self._require_objective()
        outputs = self.forward_batch(batch)
        loss = objective.loss(outputs, batch)
        values = self.phase_metrics[f"{phase}_metrics"](*objective.metric_inputs(outputs, batch))
        size = batch_size(batch)
        self.phase_losses[f"{phase}_loss"].update(loss.detach(), size)
        return {"loss": loss.detach(), **values, "size": size}

    def _log_phase(self, phase: str) -> None:
        """Log whole-set values as `<phase>_<name>` (what checkpoint monitors and early stopping read)."""
        if phase == "train":          # training steps keep batch values, not metric states: sample-weighted mean
            batches, self._train_batches = self._train_batches, []
            if batches:
                sizes = torch.tensor([size for _, size in batches], dtype=torch.float32, device=self.device)
                self.log_dict({f"train_{name}": (torch.stack([v[name] for v, _ in batches]).float() * sizes).sum()
                               / sizes.sum() for name in batches[0][0]})
            return
        metrics = self.phase_metrics[f"{phase}_metrics"]
        values = dict(metrics.compute())
        metrics.reset()
        if f"{phase}_loss" in self.phase_losses:
            values["loss"] = self.phase_losses[f"{phase}_loss"].compute()
            self.phase_losses[f"{phase}_loss"].reset()
        self.log_dict({f"{phase}_{name}": value for name, value in values.items()})

    def on_train_epoch_end(self) -> None:
        self._log_phase("train")

    def on_validation_epoch_end(self) -> None:
        self._log_phase("val")

    def on_test_epoch_end(self) -> None:
        self._log_phase("test")

    def validation_step(self, batch: DataDict, batch_index: int) -> dict:
        return self._evaluate(batch, "val")

    def test_step(self, batch: DataDict, batch_index: int) -> dict:
        return self._evaluate(batch, "test")

    def configure_optimizers(self) -> Any:
        if self.configure_optimization is None:
            raise RuntimeError("this model has no optimiser recipe: a worker attaches one with model.attach(...)")
        return self.configure_optimization(self)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Checkpoints carry, as plain data, what rebuilds the model and replays the run (random states too)."""
        checkpoint["pyrosys"] = {"model": self.description(), "configuration": copy.deepcopy(self.configuration),
                                 "random_states": random_states()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Resuming: the random generators continue where the checkpoint left them."""
        states = checkpoint.get("pyrosys", {}).get("random_states")
        if states:
            restore_random_states(states)


def load_weights(modules: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load a state dict exactly (same names and shapes), or explain what differs."""
    own = modules.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or shapes:
        details = "; ".join(filter(None, [
            f"missing {missing[:3]}" if missing else "", f"unexpected {unexpected[:3]}" if unexpected else "",
            f"shape differs for {shapes[:3]}" if shapes else ""]))
        raise ConfigError(f"the weights do not fit this model: {details}", file=source,
                          hint="The weights were saved from another architecture or other parameters")
    modules.load_state_dict(state, strict=True)


def random_states() -> dict:
    """Python's, NumPy's and torch's random states as weights-only data (tensors, tuples, numbers)."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    return {"python": random.getstate(), "torch": torch.get_rng_state(),
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(gauss)]}


def restore_random_states(states: Mapping) -> None:
    """Set Python's, NumPy's and torch's random states from `random_states()`."""
    random.setstate(tuple(states["python"][:1]) + (tuple(states["python"][1]),) + tuple(states["python"][2:]))
    torch.set_rng_state(states["torch"])
    kind, keys, position, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
