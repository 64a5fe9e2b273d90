"""Model: a LightningModule built from named modules, usable without any trainer (Frag Atlas style).

Authors write `get_params()`, `build(params, data_definitions)` and `forward`. `create`, `save`,
`load` and the training, validation and test steps are this base class's; the steps depend only
on the objective the worker attaches, never on an architecture.
"""
from __future__ import annotations

import copy
import hashlib
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytorch_lightning as pl
import torch
import torchmetrics
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

import pyrosys
from pyrosys.atomic import atomic_path, write_text_atomic
from pyrosys.configuration.constraints import check_params
from pyrosys.configuration.loading import dump_yaml, load_yaml
from pyrosys.data_dict import DataDict, batch_size
from pyrosys.errors import ConfigError, did_you_mean
from pyrosys.factory import check_class_path, class_path, resolve

BUNDLE_FILE = "model.yaml"
WEIGHTS_FILE = "weights.safetensors"
CHECKSUM_KEY = "weights_sha256"       # model.yaml: the SHA-256 of the weights file (bundles written before lack it)
# what a model description (a bundle's model.yaml, a checkpoint's pyrosys.model) holds, and the type of each
DESCRIPTION = {"class": (str, "a dotted class path"), "params": (Mapping, "a mapping"),
               "data_definitions": (Mapping, "a mapping")}
# what a damaged description provokes in a model's get_params/build: told as the file's fault
BUILD_ERRORS = (TypeError, ValueError, KeyError, IndexError, AttributeError, RuntimeError)


class Model(pl.LightningModule):
    """Base of every model: parameters, named modules, bundle save/load, and the generic steps."""

    input_kinds: ClassVar[tuple[str, ...]] = ("vector", "image")        # what `inputs` it reads
    # which task interfaces it serves (multilabel: a head of one logit per term, free for any pooled model)
    tasks: ClassVar[tuple[str, ...]] = ("classification", "regression", "multilabel")
    target_field: ClassVar[str] = "targets"   # the batch field its outputs are compared with
    default_loss: ClassVar[str | None] = None  # None: the problem's default (autoencoders set their own)
    default_metrics: ClassVar[tuple[str, ...] | None] = None

    @staticmethod
    def get_params() -> dict:
        """Hyper-parameters and their defaults, fixed for the model's lifetime."""
        return {}

    @staticmethod
    def constraints() -> dict:
        """The valid values of each parameter of get_params() (pyrosys.configuration.constraints); a parameter
        without one is not checked."""
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
        check_params(cls, params or {}, section="model", defaults=defaults)
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
        """Write a bundle folder (model.yaml + weights) that `Model.load` rebuilds with nothing else; model.yaml
        records the weights' SHA-256, so that a damaged weights file is refused rather than predicting."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        weights = {k: v.detach().cpu().contiguous() for k, v in self.models.state_dict().items()}
        data = save_safetensors(weights)
        with atomic_path(folder / WEIGHTS_FILE) as temporary:
            temporary.write_bytes(data)
        self.save_files(folder)
        write_text_atomic(folder / BUNDLE_FILE, dump_yaml({**self.description(), "weights": WEIGHTS_FILE,
                                                           CHECKSUM_KEY: hashlib.sha256(data).hexdigest()}))
        return folder

    def save_files(self, folder: Path) -> None:
        """Files a model adds to its bundle beside model.yaml and the weights (a pretrained encoder's
        configuration and tokenizer); none by default."""

    @classmethod
    def bundled_params(cls, params: Mapping, folder: Path, file: str) -> dict:
        """The parameters of a bundle read back, pointed at the files `save_files` wrote into `folder`."""
        return dict(params)

    @classmethod
    def load(cls, folder: str | Path) -> Model:
        """Rebuild a saved model from its bundle folder: no trainer, problem or configuration needed."""
        folder = Path(folder)
        file = str(folder / BUNDLE_FILE)
        try:
            raw = load_yaml(folder / BUNDLE_FILE)
        except ConfigError as error:          # its hints speak to the author of a configuration
            raise ConfigError(error.message, file=error.file, key=error.key, hint="Is this folder a PyroSys model "
                              "bundle (written by Model.save)? Its model.yaml is damaged or foreign") from None
        description = checked_description(raw, file, "")
        weights_file = folder / inside(folder, description.get("weights", WEIGHTS_FILE), file, "weights")
        model = cls._described(description, file, "", "bundle", folder)
        load_weights(model.models, read_weights(weights_file, description.get(CHECKSUM_KEY), file), str(weights_file))
        return model.eval()

    @classmethod
    def from_checkpoint(cls, checkpoint: Mapping, source: str) -> Model:
        """Rebuild the model a PyroSys checkpoint (read by `read_checkpoint`) describes, with its weights,
        in evaluation mode: the one way from a checkpoint to a model."""
        description = checked_description(checkpoint["pyrosys"].get("model"), source, "pyrosys.model.")
        model = cls._described(description, source, "pyrosys.model.", "checkpoint")
        load_weights(model, model.completed_state(checkpoint, source), source)
        return model.eval()

    @classmethod
    def _described(cls, description: Mapping, file: str, prefix: str, holder: str,
                   folder: Path | None = None) -> Model:
        """The model a checked description names, built with its parameters: its class is checked against
        the known models before anything is imported; what the description cannot build is the file's fault."""
        check_class_path(description["class"], "model", file=file, key=f"{prefix}class")
        model_cls = resolve({"_target_": description["class"]}, "model", file=file, key=f"{prefix}class")
        if not issubclass(model_cls, cls):
            reader = "load" if holder == "bundle" else "from_checkpoint"
            raise ConfigError(f"the {holder} holds a {model_cls.__name__}, not a {cls.__name__}", file=file,
                              key=f"{prefix}class", hint=f"Load it with Model.{reader} to accept any model")
        params = description["params"] if folder is None else model_cls.bundled_params(description["params"],
                                                                                        folder, file)
        try:
            return model_cls.create(params, description["data_definitions"])
        except ConfigError as error:        # an unknown parameter, a misfit: the file's, not a configuration's
            key = error.key or ""
            where = f"params.{key.removeprefix('model.')}" if key.startswith("model.") and key != "model.name" \
                else "data_definitions"
            raise ConfigError(error.message, file=file, key=prefix + where, hint=error.hint) from None
        except BUILD_ERRORS as error:
            raise ConfigError(f"the model description's params and data_definitions cannot build a "
                              f"{model_cls.__name__} ({type(error).__name__}: {error})", file=file,
                              key=f"{prefix}params", hint="The file is damaged or was written for another version "
                                                          "of this model; use another checkpoint or bundle") from None

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

    def predictions_done(self) -> None:
        """Called after predictions made outside a trainer (the predictor's): a model may report what it met."""

    @torch.no_grad()
    def predict_proba(self, inputs: torch.Tensor, **fields: torch.Tensor) -> torch.Tensor:
        """Classification interface: class probabilities (softmax of the logits); multilabel: each term's
        probability (sigmoid of its logit)."""
        outputs = self.predict(inputs, **fields)
        return outputs.sigmoid() if self.task == "multilabel" else outputs.softmax(dim=-1)

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
        """Checkpoints carry, as plain data, what rebuilds the model and replays the run (random states too);
        the frozen tensors a model rebuilds itself stay out, named by their source and SHA-256."""
        checkpoint["pyrosys"] = {"model": self.description(), "configuration": copy.deepcopy(self.configuration),
                                 "random_states": random_states()}
        frozen = self.frozen_tensors()
        if frozen is not None:
            for name in frozen["names"]:
                checkpoint["state_dict"].pop(name, None)
            checkpoint["pyrosys"]["frozen"] = {"source": frozen["source"], "sha256": frozen["sha256"],
                                               "tensors": len(frozen["names"])}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Resuming: the frozen tensors back in the state, the random generators where the checkpoint left them."""
        checkpoint["state_dict"] = self.completed_state(checkpoint, "checkpoint")
        states = checkpoint.get("pyrosys", {}).get("random_states")
        if states:
            restore_random_states(states)

    def frozen_tensors(self) -> dict | None:
        """The tensors checkpoints leave out because the model rebuilds them (a frozen pretrained encoder's):
        {names, source, sha256}; None: checkpoints hold every tensor."""
        return None

    def completed_state(self, checkpoint: Mapping, source: str) -> dict[str, torch.Tensor]:
        """A checkpoint's state dict with the frozen tensors it left out taken from this model, whose frozen
        weights must be the ones the checkpoint was trained on (same SHA-256): the one way from a checkpoint's
        tensors to a model's."""
        state = dict(checkpoint["state_dict"])
        recorded = (checkpoint.get("pyrosys") or {}).get("frozen")
        if not recorded:
            return state
        own = self.frozen_tensors()
        if own is None or own["sha256"] != recorded.get("sha256"):
            raise ConfigError(f"the checkpoint leaves out the frozen weights of {recorded.get('source')} (SHA-256 "
                              f"{str(recorded.get('sha256'))[:12]}...), and the encoder built from it now holds "
                              f"other weights" + (f" ({own['sha256'][:12]}...)" if own else ""), file=source,
                              key="pyrosys.frozen", hint="Put back the pretrained folder the run was trained with, "
                                                         "or use the experiment's bundle (models/best), which holds "
                                                         "every weight")
        full = self.state_dict()
        state.update({name: full[name] for name in own["names"] if name not in state})
        return state


def checked_description(description: Any, file: str, prefix: str) -> Mapping:
    """A model description read from a file (a bundle's model.yaml, a checkpoint's pyrosys.model), its
    keys there and of the right type, or a ConfigError naming the file and the key."""
    hint = "The file is damaged or was not written by PyroSys; use another checkpoint or bundle"
    if not isinstance(description, Mapping):
        what = "missing" if description is None else f"of type {type(description).__name__}, not a mapping"
        raise ConfigError(f"the model description is {what}", file=file, key=prefix.rstrip(".") or None, hint=hint)
    for key, (kind, what) in DESCRIPTION.items():
        if key not in description:
            raise ConfigError(f"the model description lacks '{key}'", file=file, key=prefix + key, hint=hint)
        if not isinstance(description[key], kind):
            raise ConfigError(f"'{key}' is of type {type(description[key]).__name__} where {what} belongs",
                              file=file, key=prefix + key, hint=hint)
    for key in ("inputs", "targets"):
        value = description["data_definitions"].get(key)
        if value is not None and not isinstance(value, Mapping):
            raise ConfigError(f"'data_definitions.{key}' is of type {type(value).__name__} where a mapping belongs",
                              file=file, key=f"{prefix}data_definitions.{key}", hint=hint)
    return description


def inside(folder: Path, name: Any, file: str, key: str) -> str:
    """A file name read from `file` that stays inside `folder` (no absolute path, no '..', no link out)."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"'{key}' must name a file in the bundle folder, not {name!r}", file=file, key=key)
    relative = Path(name)
    target = (folder / relative).resolve()
    if relative.is_absolute() or ".." in relative.parts or not target.is_relative_to(folder.resolve()):
        link = "" if relative.is_absolute() or ".." in relative.parts else f", a link to {target}"
        raise ConfigError(f"'{key}' names {name!r}{link}, outside the bundle folder, and was refused unread",
                          file=file, key=key, hint=f"A bundle reads only files inside its own folder; write e.g. "
                                                   f"'{key}: {WEIGHTS_FILE}' and put the file beside {BUNDLE_FILE}")
    return name


def read_weights(path: Path, checksum: Any, file: str) -> dict[str, torch.Tensor]:
    """The tensors of a bundle's safetensors file, refused when its SHA-256 differs from the one model.yaml
    records (a bundle written before the checksum existed is read unchecked)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"the bundle weights cannot be read ({error.strerror or error})", file=str(path),
                          key="weights") from None
    if checksum is not None:
        if not isinstance(checksum, str) or len(checksum) != 64:
            raise ConfigError(f"'{CHECKSUM_KEY}' must be a SHA-256 (64 hexadecimal digits), not {checksum!r}",
                              file=file, key=CHECKSUM_KEY, hint="The bundle description is damaged")
        if hashlib.sha256(data).hexdigest() != checksum.lower():
            raise ConfigError(f"the weights file {path.name} does not match its SHA-256 in {BUNDLE_FILE}: it is "
                              "damaged or was altered", file=file, key=CHECKSUM_KEY,
                              hint="Use another bundle (or the checkpoint it was made from); do not edit bundles")
    try:
        return load_safetensors(data)
    except (SafetensorError, ValueError, OSError) as error:
        raise ConfigError(f"the bundle weights cannot be read ({error})", file=str(path), key="weights") from None


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
