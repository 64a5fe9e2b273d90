"""Resolve: configuration files and command-line flags -> a checked TrainingPlan.

Every key read here is a key a configuration may hold; keys nothing reads are refused with the
nearest known key. The plan carries its configuration (tree and sources), so no later step reads
the parameter registry back. Light on purpose: torch is imported only by the component classes a
configuration names (and the objectives), after what can be checked without them was: the trainer's
own keys and values, component names (package metadata), and a model's or problem's keys where its
get_params() can be read from its source.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyrosys.configuration.aliases import Aliases, apply_aliases
from pyrosys.configuration.constraints import check_declared, check_objective_names, check_params
from pyrosys.configuration.declarations import declared_names, declared_params, read_constraints
from pyrosys.configuration.loading import COMMAND_LINE, Configuration, load_configuration, value_at
from pyrosys.configuration.param_registry import ParamInterface, ParamRegistry, fill_defaults, unknown_keys_error
from pyrosys.configuration.project import split_choices
from pyrosys.configuration.seeds import resolve_seed
from pyrosys.errors import ConfigError, did_you_mean, nearest
from pyrosys.factory import check_name, indexed_names
from pyrosys.factory import resolve as resolve_class
from pyrosys.folders.experiment import Experiment, safe_name
from pyrosys.workers.pipeline.console import say_loading

# phase of a problem -> the configuration section that holds its overrides
PHASE_SECTIONS = {"train": "training", "val": "validation", "test": "testing"}
CLASS_KEYS = ("name", "_target_")
# sections whose keys the trainer knows in full (get_params); others belong to components
CLOSED_SECTIONS = ("training", "training.terminal_conditions", "training.ray", "validation", "testing", "logging")
BACKENDS = ("local", "ray")         # training.backend: this machine's processes, or Ray Train's workers
# pl.Trainer arguments that Ray Train's workers set themselves (one process per worker)
RAY_TRAINER_KEYS = ("strategy", "devices", "num_nodes", "accelerator", "plugins")
# keys of pl.Trainer that PyroSys sets from its own sections
DERIVED_TRAINER_KEYS = {
    "max_epochs": "training.terminal_conditions.epoch_limit",
    "max_steps": "training.terminal_conditions.episode_limit",
    "callbacks": "training.callbacks", "logger": "logging", "default_root_dir": "--outdir",
    "val_check_interval": "validation.interval", "check_val_every_n_epoch": "validation.interval",
    "plugins": "(PyroSys's atomic checkpoint I/O)", "enable_checkpointing": "(always on)",
}


def get_params() -> dict:
    """The trainer's sections and their defaults (the problem and model bring their own)."""
    return {
        "training": {
            "seed": -1,                 # -1 or null: drawn at random and recorded
            "seed_torch": None,         # MI-Prometheus: separate seeds (default: seed)
            "seed_numpy": None,
            "problem": {"split": "train"},
            "optimizer": {"name": "Adam", "lr": 1.0e-3},
            "scheduler": None,
            "loss": None,               # null: the model's or the problem's default loss
            "metrics": None,            # null: the model's or the problem's default metrics
            "terminal_conditions": {"epoch_limit": 10, "episode_limit": -1, "loss_stop": None,
                                    "early_stopping": None},
            "gradient_clipping": None,  # MI-Prometheus: clip gradients to this norm
            "curriculum_learning": None,  # problems that grow their difficulty: {interval: ..., must_finish: ...}
            "trainer": {},              # more pl.Trainer arguments (precision, devices, strategy...)
            "callbacks": [],            # Lightning callbacks as {_target_: ..., arg: ...}
            "backend": "local",         # local | ray: one run on Ray Train's workers (pyrosys-trainer --backend ray)
            "ray": {"num_workers": 2, "use_gpu": False, "resources_per_worker": {"CPU": 1}, "max_failures": 0,
                    "address": None},   # address: HOST:PORT of a Ray cluster; null: a local Ray instance
        },
        "validation": {"problem": {"split": "val"}, "interval": 1.0, "monitor": "val_loss", "mode": "min"},
        "testing": {"problem": {"split": "test"}},
        "logging": {"interval": 50,
                    "tensorboard": 0,           # 0 statistics, 1 + weight histograms, 2 + gradient histograms; null off
                    "mlflow": {"tracking_uri": None,        # null: sqlite:///<outdir>/mlflow.db; `mlflow: null` off
                               "experiment_name": None,     # null: the problem's name
                               "run_name": None,            # null: <model>_<experiment folder name>
                               "registered_model_name": None}},
    }


def plain(value: Any) -> Any:
    """Plain data from a registry value (a section view becomes a dict, read whole)."""
    return value.to_dict() if isinstance(value, ParamInterface) else value


@dataclass
class ComponentPlan:
    """A component class and the parameters it will be created with."""

    cls: type
    params: dict
    phases: dict[str, dict] = field(default_factory=dict)
    load: dict | None = None     # models: weights to adapt in ({from, modules, freeze})

    @property
    def name(self) -> str:
        return self.cls.__name__


@dataclass
class TrainingPlan:
    """Everything the configuration asks of one training run, read and checked, as plain values."""

    loaded: Configuration          # the merged configuration as loaded (its sources name files)
    configuration: dict            # the resolved tree, defaults and drawn seeds included
    problem: ComponentPlan
    model: ComponentPlan
    seed_torch: int
    seed_numpy: int
    loss: str | dict | None      # a loss name, or {name: ..., class_weights: ...}
    metrics: list | None
    optimizer: dict
    scheduler: dict | None
    epoch_limit: int | None
    episode_limit: int | None
    loss_stop: float | None
    early_stopping: dict | None
    gradient_clipping: float | None
    curriculum: dict | None
    trainer: dict
    callbacks: list
    backend: str
    ray: dict
    validation_interval: float | int
    monitor: str
    mode: str
    logging_interval: int
    tensorboard: int | None
    mlflow: dict | None

    def source(self, key: str) -> str | None:
        """The file (or the command line) that set `key`."""
        return self.loaded.source(key)

    def start_curriculum(self, problem: Any) -> None:
        """Hand the problem its curriculum; with must_finish, train at least until it is complete."""
        if self.curriculum is None:
            return
        problem.set_curriculum({k: v for k, v in self.curriculum.items() if k != "must_finish"})
        if not self.curriculum["must_finish"]:
            return
        end = problem.curriculum_end()
        if self.episode_limit is not None:
            self.episode_limit = max(self.episode_limit, end)
        if self.epoch_limit is not None:
            self.epoch_limit = max(self.epoch_limit, math.ceil(end / max(1, len(problem.loader("train")))))


# -- the command line ----------------------------------------------------------------------------------

def command_line_choices(args: argparse.Namespace,
                         overrides: list[str]) -> tuple[list[str], dict[str, str], list[str]]:
    """The configuration files, the project group choices (model=vae) given after them, and the
    overrides: other `key=value` items given there, then `overrides`."""
    files = [item for item in args.config if "=" not in item or Path(item).exists()]
    items = [item for item in [*args.config, *args.choices] if item not in files]
    choices, rest = split_choices(items, files[0] if files else Path.cwd())
    return files, choices, [*rest, *overrides]


def flag_overrides(args: argparse.Namespace) -> list[str]:
    """`--set` items, then the flags that stand for configuration keys (--seed, --li, --m...)."""
    overrides = list(args.overrides)
    for flag, key in (("seed", "training.seed"), ("logging_interval", "logging.interval"),
                      ("tensorboard", "logging.tensorboard"), ("mlflow", "logging.mlflow.tracking_uri"),
                      ("backend", "training.backend"), ("address", "training.ray.address")):
        if getattr(args, flag, None) is not None:
            overrides.append(f"{key}={getattr(args, flag)}")
    if args.model_weights is not None:
        overrides.append(f"model.load={{from: {json.dumps(str(Path(args.model_weights).resolve()))}}}")
    return overrides


def load_training_configuration(args: argparse.Namespace) -> tuple[Configuration, Any]:
    """The trainer's configuration: files (the resumed experiment's first), group choices, overrides; and
    for --resume the point it goes on from (read once, refusing a folder that cannot be resumed)."""
    if args.resume is not None and args.model_weights is not None:
        raise ConfigError("--resume and --m cannot be combined: --resume goes on with an experiment's own weights, "
                          "--m starts a new experiment from other weights", file=COMMAND_LINE, key="--resume",
                          hint="Keep one of the two")
    safe_name(args.run_name, "--run-name")
    safe_name(args.savetag, "--savetag")
    files, choices, overrides = command_line_choices(args, flag_overrides(args))
    point = None
    if args.resume is not None:
        from pyrosys.folders.resume import resume_point     # only to resume: --help and new runs go without it

        point = resume_point(Experiment(args.resume))
        files = [str(Experiment(args.resume).configuration_file), *files]
    elif not files:
        raise ConfigError("no configuration file was given", file=COMMAND_LINE, key="--c",
                          hint="Name one with --c FILE, or continue an experiment with --resume EXPERIMENT_DIR")
    return load_configuration(files, overrides, choices), point


def check_trainer_keys(configuration: Configuration) -> None:
    """Refuse a misspelt key of the trainer's own sections at once, naming the nearest known key: the
    check the registry makes after the build, made before torch and Lightning are imported."""
    known = {"": {**get_params(), "problem": {}, "model": {}},
             **{section: value_at(get_params(), section) for section in CLOSED_SECTIONS}}
    for section, allowed in known.items():
        given = value_at(configuration.tree, section) if section else configuration.tree
        if not isinstance(given, dict) or not isinstance(allowed, dict):
            continue
        for key in given:
            if key not in allowed:
                path = f"{section}.{key}" if section else key
                close = nearest(key, allowed, n=1)
                near = (f"{section}.{close[0]}" if section else close[0]) if close else None
                raise unknown_keys_error([(path, near)], [configuration.source(path)])


def check_component_names(configuration: Configuration) -> None:
    """Refuse an unknown component name, an argument an optimizer, scheduler or callback does not take, and a
    model's or problem's key its class does not declare, before torch is imported (from package metadata and
    source text): the trainer's default optimizer is filled in as the registry will fill it, so that a value
    set on it is checked against the class it keeps."""
    tree, defaults = configuration.tree, get_params()
    specs = {section: ("problem", value_at(tree, section)) for section in
             ("problem", *(f"{name}.problem" for name in PHASE_SECTIONS.values()))}
    specs["model"] = ("model", value_at(tree, "model"))
    for key in ("optimizer", "scheduler"):
        default = value_at(defaults, f"training.{key}")
        value = copy.deepcopy(value_at(tree, f"training.{key}", default))
        if isinstance(value, dict) and isinstance(default, dict):
            fill_defaults(value, default)
        specs[f"training.{key}"] = (key, value)
    callbacks = value_at(tree, "training.callbacks")
    for index, spec in enumerate(callbacks if isinstance(callbacks, list) else []):
        specs[f"training.callbacks.{index}"] = ("callback", spec)
    for key, (kind, spec) in specs.items():
        check_name(spec, kind, source=configuration.source, key=key)
    named = value_at(tree, "problem.name")
    for key, (kind, spec) in specs.items():
        if kind in ("model", "problem") and isinstance(spec, dict):
            check_declared_keys(configuration, key, kind, spec.get("name", named if kind == "problem" else None))


def check_declared_keys(configuration: Configuration, key: str, kind: str, name: Any) -> None:
    """Refuse a key of a model's or a problem's section that its class's get_params() does not declare, the
    declaration read from the class's source (no torch); a class whose declaration cannot be read so is
    checked once imported, by the registry."""
    if named_by_alias(kind, name):
        return                                   # its keys are checked once its aliases are translated
    where = (indexed_names(kind) or {}).get(name) if isinstance(name, str) else None
    declared = declared_params(where) if where and ":" in where else None
    given = value_at(configuration.tree, key)
    if declared is None or not isinstance(given, dict):
        return
    allowed = [*declared, *CLASS_KEYS, *(("load",) if kind == "model" else ())]
    for param in given:
        if param not in allowed:
            close = nearest(str(param), allowed, n=1)
            raise unknown_keys_error([(f"{key}.{param}", f"{key}.{close[0]}" if close else None)],
                                     [configuration.source(f"{key}.{param}")])
    check_declared_values(configuration, key, where, declared)


def check_declared_values(configuration: Configuration, key: str, where: str, declared: dict) -> None:
    """Refuse a model's or problem's value outside the range its class's constraints() declares, read from the
    class's source (no torch), with the message the imported class gives: the defaults merged with the values
    given, as resolve_problem and resolve_model check them (a phase's own values alone)."""
    constraints = read_constraints(where)
    if constraints is None:
        return                                   # checked once the class is imported
    owner, given = where.rpartition(":")[2], value_at(configuration.tree, key)
    shared = key in ("model", "problem")
    params = {param: value for param, value in ({**declared, **given} if shared else given).items()
              if param in declared}
    check_declared(owner, constraints, params, section=key, defaults=declared if shared else None,
                   source=lambda param: configuration.source(f"{key}.{param}") or f"{owner}.get_params()")


def check_objective_names_read(loss: Any, metrics: Any, *, file: str | None) -> None:
    """Refuse an unknown loss or metric name before torch is imported, against the names of the tables LOSSES and
    METRICS read from pyrosys.objectives's source (checked again, once imported, with the same message)."""
    losses, metric_names = (declared_names("pyrosys.objectives", table) for table in ("LOSSES", "METRICS"))
    if losses is not None and metric_names is not None:
        check_objective_names(loss, metrics, losses=losses, metric_names=metric_names, file=file)


# -- MI-Prometheus's names and keys --------------------------------------------------------------------

def _partial_validation(value: Any, params: dict) -> dict:
    """MI-Prometheus validates every N episodes ("partial validation"); N <= 0 leaves validation at epoch ends."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"partial_validation_interval is a whole number of episodes, not {value!r}")
    return {"interval": value} if value > 0 else {}


def _sampler(value: Any, params: dict) -> dict:
    """A phase's MI-Prometheus sampler as the problem's shuffle; other samplers are refused, saying why."""
    if value is None or value == {}:
        return {}                                  # MI-Prometheus's default: no sampler
    name = value.get("name") if isinstance(value, dict) else None
    if isinstance(value, dict) and set(value) == {"name"} and name in ("RandomSampler", "SequentialSampler"):
        return {"problem.shuffle": name == "RandomSampler"}
    raise ValueError(f"the sampler {value!r} has no PyroSys meaning: RandomSampler (problem.shuffle: true) and "
                     "SequentialSampler (problem.shuffle: false) are translated; a subset of a split is chosen "
                     "with the problem's own split parameters")


# MI-Prometheus's dataloader keys: PyroSys's problem parameter of the same meaning, or the one value honoured
DATALOADER_KEYS = ("shuffle", "drop_last", "num_workers")
DATALOADER_FIXED = {"batch_sampler": None, "pin_memory": False, "timeout": 0}


def _dataloader(value: Any, params: dict) -> dict:
    """A phase's MI-Prometheus dataloader section as the problem's loader parameters."""
    if not isinstance(value, dict):
        raise ValueError(f"dataloader is a mapping of DataLoader options, not {value!r}")
    translated = {}
    for key, given in value.items():
        if key in DATALOADER_KEYS:
            translated[f"problem.{key}"] = given
        elif key not in DATALOADER_FIXED or given != DATALOADER_FIXED[key]:
            known = ", ".join([*DATALOADER_KEYS, *(f"{k}: {v}" for k, v in DATALOADER_FIXED.items())])
            raise ValueError(f"dataloader's '{key}: {given!r}' cannot be honoured: PyroSys takes {known}")
    return translated


# the components of MI-Prometheus's maes_baselines and dwm_baselines files that PyroSys does not have (the ones
# it has declare their MI-Prometheus names beside their class: `aliases`)
MI_PROMETHEUS_ONLY = {
    "model": ("DNC", "DWM", "NTM", "MAES", "EncoderSolverLSTM", "EncoderSolverNTM"),
    "problem": ("RepeatReverseRecallCommandLines", "RepeatSerialRecallCommandLines", "ScratchPadCommandLines",
                "SequenceComparisonCommandLines", "SequenceEqualityCommandLines", "SequenceSymmetryCommandLines",
                "SkipRecallCommandLines", "distraction_carry", "distraction_forget", "distraction_ignore",
                "interruption_not", "interruption_reverse_recall", "interruption_swap_recall",
                "manipulation_spatial_not", "manipulation_spatial_rotation", "manipulation_temporal_swap",
                "operation_span", "reading_span"),
}
MI_PROMETHEUS_HAS = {"model": "LSTM (as SequenceRNN)",
                     "problem": "SerialRecallCommandLines and ReverseRecallCommandLines "
                                "(as SerialRecall, ReverseRecall)"}


def _phase_aliases(section: str) -> Aliases:
    """MI-Prometheus's keys of a training, validation or testing section."""
    converted = {"sampler": _sampler, "dataloader": _dataloader}
    if section == "validation":
        converted["partial_validation_interval"] = _partial_validation
    return Aliases(converted=converted)


def translate_section_keys(configuration: Configuration) -> None:
    """Rewrite MI-Prometheus's keys of the trainer's sections to PyroSys's own, in place (no import needed),
    recording each in `configuration.aliases`."""
    for section in PHASE_SECTIONS.values():
        configuration.aliases += apply_aliases(configuration, section, _phase_aliases(section))


def translate_aliases(configuration: Configuration) -> Configuration:
    """MI-Prometheus's keys of the trainer's sections, then its names and keys of the components, as PyroSys's."""
    translate_section_keys(configuration)
    refuse_mi_prometheus_only(configuration)
    translate_component_aliases(configuration)
    return configuration


def refuse_mi_prometheus_only(configuration: Configuration) -> None:
    """Refuse an MI-Prometheus problem or model PyroSys does not have, saying which of them it has."""
    problem_paths = ("problem", *(f"{section}.problem" for section in PHASE_SECTIONS.values()))
    for kind, paths in (("problem", problem_paths), ("model", ("model",))):
        for path in paths:
            name = value_at(configuration.tree, f"{path}.name")
            if isinstance(name, str) and name in MI_PROMETHEUS_ONLY[kind]:
                where = f"{path}.name"
                raise ConfigError(f"'{name}' is an MI-Prometheus {kind} that PyroSys does not have",
                                  file=configuration.source(where), key=where,
                                  hint=f"Of MI-Prometheus's {kind}s, PyroSys has {MI_PROMETHEUS_HAS[kind]}; use "
                                       f"one it has, or a {kind} class of your own with _target_: package.module.Class")


def named_by_alias(kind: str, name: Any) -> bool:
    """Whether `name:` names a component by another name than its class's (an MI-Prometheus alias such as LSTM);
    without the metadata to tell, any name might be one."""
    names = indexed_names(kind)
    if names is None or not isinstance(name, str) or name not in names:
        return names is None and isinstance(name, str)
    return names[name].rpartition(":")[2].rpartition(".")[2] != name


def translate_component_aliases(configuration: Configuration) -> None:
    """Rewrite MI-Prometheus's names and keys of the problem and the model (declared beside each class, `aliases`)
    to PyroSys's own, in place, recording each in `configuration.aliases`; only a component named by an alias
    is imported here."""
    problem_paths = ("problem", *(f"{section}.problem" for section in PHASE_SECTIONS.values()))
    for kind, paths in (("problem", problem_paths), ("model", ("model",))):
        sections = [(path, value_at(configuration.tree, path)) for path in paths]
        named = [(path, section) for path, section in sections
                 if isinstance(section, dict) and any(section.get(key) is not None for key in CLASS_KEYS)]
        if not named or not named_by_alias(kind, named[0][1].get("name")):
            continue
        path, section = named[0]
        spec = {key: section[key] for key in CLASS_KEYS if section.get(key) is not None}
        cls = resolve_class(spec, kind, file=configuration.source(f"{path}.{next(iter(spec))}"), key=path)
        aliases = getattr(cls, "aliases", None)
        if aliases is None:
            continue
        shared = value_at(configuration.tree, kind)
        context = {**cls.get_params(), **(shared if isinstance(shared, dict) else {})}
        for path in paths:
            configuration.aliases += apply_aliases(configuration, path, aliases, cls.__name__, context)


# -- the components ------------------------------------------------------------------------------------

def _class_spec(section: ParamInterface) -> dict:
    return {key: section[key] for key in CLASS_KEYS if key in section and section.get(key) is not None}


def resolve_problem(registry: ParamRegistry, seed: int | None = None) -> ComponentPlan:
    """The problem class (one for every phase), its shared parameters and each phase's overrides."""
    sections = {"problem": registry.section("problem")}
    for name in PHASE_SECTIONS.values():
        if "problem" in registry.section(name):
            sections[f"{name}.problem"] = registry.section(f"{name}.problem")
    named = {path: spec for path, spec in ((p, _class_spec(s)) for p, s in sections.items()) if spec}
    if not named:
        raise ConfigError("no problem is named", file=registry.configuration.source("problem"), key="problem.name",
                          hint="Add 'problem: {name: Digits}' or '_target_: package.module.ProblemClass'")
    classes = {path: resolve_class(spec, "problem", file=sections[path].source(), key=path)
               for path, spec in named.items()}
    first, problem_cls = next(iter(classes.items()))
    for other, cls in classes.items():
        if cls is not problem_cls:
            raise ConfigError(f"'{other}' names another problem class than '{first}'",
                              file=sections[other].source(), key=other,
                              hint="One problem class serves every phase; phases may only change its parameters")
    defaults = problem_cls.get_params()
    shared = sections["problem"]
    shared.add_default_params(defaults)
    for section in sections.values():
        absolute_paths(section, problem_cls.path_params)
    if seed is not None and shared.get("seed") is None:
        shared.add_config_params({"seed": seed})
    params = {key: plain(shared[key]) for key in defaults}
    _check_component(problem_cls, params, shared, defaults)
    phases = {}
    for phase, name in PHASE_SECTIONS.items():
        section = sections.get(f"{name}.problem")
        phases[phase] = {key: plain(section[key]) for key in defaults if section is not None and key in section}
        if section is not None:          # (the phase's defaults are the trainer's, not get_params()'s)
            _check_component(problem_cls, phases[phase], section, None)
    return ComponentPlan(problem_cls, params, phases)


def _check_component(cls: type, params: dict, section: ParamInterface, defaults: dict | None) -> None:
    """Refuse a parameter outside the range its class declares (constraints(), beside get_params()), naming
    the file that set it; before anything is read or built."""
    check_params(cls, params, section=section.path, defaults=defaults,
                 source=lambda key: section.source(key) or f"{cls.__name__}.get_params()")


def absolute_paths(section: ParamInterface, keys: tuple[str, ...]) -> None:
    """Make relative file parameters absolute, taken from the folder of the YAML file that set them."""
    for key in keys:
        value = section.get(key) if key in section else None
        if not isinstance(value, str) or not value or Path(value).is_absolute():
            continue
        source = section.source(key)
        base = Path(source).parent if source and Path(source).is_file() else Path.cwd()
        section.add_config_params({key: str((base / value).resolve())})


def resolve_model(registry: ParamRegistry) -> ComponentPlan:
    """The model class and its parameters, defaults filled in from its get_params()."""
    section = registry.section("model")
    spec = _class_spec(section)
    if not spec:
        raise ConfigError("no model is named", file=section.source(), key="model.name",
                          hint="Add 'model: {name: LeNet5}' or '_target_: package.module.ModelClass'")
    model_cls = resolve_class(spec, "model", file=section.source(), key="model")
    defaults = model_cls.get_params()
    if "load" in defaults:
        raise TypeError(f"{model_cls.__name__}.get_params() may not use 'load': it names weights to adapt in")
    section.add_default_params(defaults)
    params = {key: plain(section[key]) for key in defaults}
    _check_component(model_cls, params, section, defaults)
    return ComponentPlan(model_cls, params, load=_weights_to_load(section))


def _weights_to_load(model: ParamInterface) -> dict | None:
    """`model.load: {from: PATH, modules: [...], freeze: [...]}`: weights adapted in by structure."""
    if model.get("load") is None:
        return None
    section = model["load"]
    if not isinstance(section, ParamInterface):
        raise ConfigError("model.load is a mapping such as {from: run/models/best, modules: [encoder]}",
                          file=model.source("load"), key="model.load")
    section.add_default_params({"from": None, "modules": None, "freeze": None})
    absolute_paths(section, ("from",))
    load = {key: section[key] for key in ("from", "modules", "freeze")}
    if not load["from"]:
        raise ConfigError("model.load names no source", file=section.source(), key="model.load.from",
                          hint="Set 'from' to a bundle folder or a checkpoint")
    for key in ("modules", "freeze"):
        names = load[key]
        if names is not None and (not isinstance(names, list) or not all(isinstance(m, str) for m in names)):
            raise ConfigError(f"{key} is a list of sub-module names", file=section.source(key), key=f"model.load.{key}")
    return load


# -- the trainer's own sections ----------------------------------------------------------------------

def _number(section: ParamInterface, key: str, kind: type, *, minimum: float, allow_off: bool) -> Any:
    """A positive limit, interval or threshold; -1 / null switch it off where `allow_off`."""
    value = section.get(key)
    off = value is None or (allow_off and value == -1)
    if off and allow_off:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= minimum
    if kind is int:
        ok = ok and float(value).is_integer()
    if not ok:
        wanted = "a whole number" if kind is int else "a number"
        raise ConfigError(f"must be {wanted} >= {minimum}" + (" (or -1 / null for none)" if allow_off else "")
                          + f", not {value!r}", file=section.source(key), key=f"{section.path}.{key}")
    return kind(value)


def _seed(section: ParamInterface, key: str, fallback: int | None = None) -> int:
    value = section.get(key)
    if value is None and fallback is not None:
        return fallback
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < -1):
        raise ConfigError(f"a seed is a whole number >= 0, or -1 / null for a random one, not {value!r}",
                          file=section.source(key), key=f"{section.path}.{key}")
    return resolve_seed(value)


def _seeds(training: ParamInterface) -> tuple[int, int]:
    """(seed_torch, seed_numpy), drawn where the configuration asks for random ones, and recorded."""
    seed_torch = _seed(training, "seed_torch", fallback=_seed(training, "seed"))
    seed_numpy = _seed(training, "seed_numpy", fallback=seed_torch)
    training.add_config_params({"seed": training["seed"] if training["seed"] not in (None, -1) else seed_torch,
                                "seed_torch": seed_torch, "seed_numpy": seed_numpy})
    return seed_torch, seed_numpy


def _curriculum(registry: ParamRegistry, problem: ComponentPlan) -> dict | None:
    """MI-Prometheus's curriculum_learning, with the problem's defaults and must_finish (default true)."""
    training = registry.section("training")
    if training.get("curriculum_learning") is None:
        return None
    if problem.cls.curriculum is None:
        raise ConfigError(f"the problem {problem.name} has no curriculum to learn",
                          file=training.source("curriculum_learning"), key="training.curriculum_learning",
                          hint="Remove curriculum_learning, or use a problem that grows its difficulty")
    section = registry.section("training.curriculum_learning")
    defaults = {**problem.cls.curriculum, "must_finish": True}
    section.add_default_params(defaults)
    return {key: section[key] for key in defaults}


def _mlflow(logging_section: ParamInterface) -> dict | None:
    """logging.mlflow as plain values; null switches MLflow tracking off."""
    value = logging_section.get("mlflow")
    if value is None:
        return None
    if not isinstance(value, ParamInterface):
        raise ConfigError("logging.mlflow is a mapping (tracking_uri, experiment_name, run_name, "
                          "registered_model_name) or null", file=logging_section.source("mlflow"), key="logging.mlflow")
    settings = value.to_dict()
    for key, text in settings.items():
        if text is not None and not isinstance(text, str):
            raise ConfigError(f"must be a string, not {text!r}", file=value.source(key), key=f"logging.mlflow.{key}")
    return settings


def _spec(section: ParamInterface, key: str) -> dict | None:
    value = plain(section.get(key))
    if value is not None and not isinstance(value, dict):
        raise ConfigError(f"must be a mapping with 'name' or '_target_', not {value!r}",
                          file=section.source(key), key=f"{section.path}.{key}")
    return value


def _trainer(training: ParamInterface) -> dict:
    """training.trainer: more pl.Trainer arguments, none of those PyroSys sets itself."""
    trainer = plain(training["trainer"])
    for key, instead in DERIVED_TRAINER_KEYS.items():
        if key in trainer:
            raise ConfigError(f"PyroSys sets pl.Trainer's '{key}' itself", file=training.source("trainer"),
                              key=f"training.trainer.{key}", hint=f"Use {instead} instead")
    return trainer


def _backend(training: ParamInterface) -> str:
    """training.backend: local, or ray (then pl.Trainer's processes are Ray Train's workers, not its own)."""
    backend = training["backend"]
    if backend not in BACKENDS:
        raise ConfigError(f"the backend is 'local' or 'ray', not {backend!r}", file=training.source("backend"),
                          key="training.backend", hint=did_you_mean(str(backend), list(BACKENDS)))
    given = [key for key in RAY_TRAINER_KEYS if key in plain(training["trainer"])]
    if backend == "ray" and given:
        raise ConfigError(f"on Ray Train the workers are the processes, so pl.Trainer's '{given[0]}' is Ray's to set",
                          file=training.source("trainer"), key=f"training.trainer.{given[0]}",
                          hint="Set training.ray.num_workers (and use_gpu) instead, or use training.backend: local")
    return backend


def _ray(training: ParamInterface) -> dict:
    """training.ray: Ray Train's workers (how many, on GPUs or not, the resources of each) and restarts."""
    section = training["ray"]
    settings = {"num_workers": _number(section, "num_workers", int, minimum=1, allow_off=False),
                "max_failures": _number(section, "max_failures", int, minimum=-1, allow_off=False),
                "use_gpu": section["use_gpu"], "resources_per_worker": plain(section["resources_per_worker"]),
                "address": section["address"]}
    if not isinstance(settings["use_gpu"], bool):
        raise ConfigError(f"must be true or false, not {settings['use_gpu']!r}", file=section.source("use_gpu"),
                          key="training.ray.use_gpu")
    resources = settings["resources_per_worker"]
    if not isinstance(resources, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
                                                  for v in resources.values()):
        raise ConfigError(f"must map resource names to amounts, such as {{CPU: 1}}, not {resources!r}",
                          file=section.source("resources_per_worker"), key="training.ray.resources_per_worker")
    if settings["address"] is not None and not isinstance(settings["address"], str):
        raise ConfigError(f"must be HOST:PORT or null, not {settings['address']!r}", file=section.source("address"),
                          key="training.ray.address")
    return settings


def _callbacks(training: ParamInterface) -> list:
    callbacks = plain(training["callbacks"])
    if not isinstance(callbacks, list):
        raise ConfigError("must be a list of callbacks, each {_target_: ..., arg: ...}",
                          file=training.source("callbacks"), key="training.callbacks")
    return callbacks


def _validation_interval(validation: ParamInterface) -> float | int:
    """validation.interval: a finite fraction of an epoch in (0, 1], or a whole number of episodes."""
    interval = validation["interval"]
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not math.isfinite(interval) \
            or interval <= 0 or (isinstance(interval, float) and interval > 1.0):
        raise ConfigError(f"the validation interval is a fraction of an epoch in (0, 1] or a whole number of "
                          f"episodes, not {interval!r}", file=validation.source("interval"), key="validation.interval")
    return interval


def _mode(validation: ParamInterface) -> str:
    mode = validation["mode"]
    if mode not in ("min", "max"):
        raise ConfigError(f"mode is 'min' or 'max', not {mode!r}", file=validation.source("mode"),
                          key="validation.mode")
    return mode


def _tensorboard(logging_section: ParamInterface) -> int | None:
    level = logging_section["tensorboard"]
    if level not in (None, 0, 1, 2) or isinstance(level, bool):
        raise ConfigError(f"the TensorBoard level is 0, 1, 2 or null, not {level!r}",
                          file=logging_section.source("tensorboard"), key="logging.tensorboard",
                          hint="0: statistics; 1: + weight histograms; 2: + gradient histograms; null: off")
    return level


def _check_limits(own: dict, source: Any) -> None:
    if own["epoch_limit"] is None and own["episode_limit"] is None:
        raise ConfigError("training has no limit: both epoch_limit and episode_limit are off",
                          file=source("training.terminal_conditions"), key="training.terminal_conditions",
                          hint="Set epoch_limit or episode_limit to a positive number")
    if own["early_stopping"] is not None and not isinstance(own["early_stopping"], dict):
        key = "training.terminal_conditions.early_stopping"
        raise ConfigError("early_stopping is a mapping such as {monitor: val_loss, patience: 5}",
                          file=source(key), key=key)


def own_sections(registry: ParamRegistry) -> dict:
    """The trainer's own sections (training but its components, validation, logging) read and checked: the
    TrainingPlan's fields that need no component, and so no torch."""
    training, validation, logging_section = (registry.section(name) for name in ("training", "validation", "logging"))
    limits = training["terminal_conditions"]
    own = dict(
        loss=plain(training.get("loss")), metrics=plain(training.get("metrics")),
        optimizer=_spec(training, "optimizer") or {}, scheduler=_spec(training, "scheduler"),
        epoch_limit=_number(limits, "epoch_limit", int, minimum=1, allow_off=True),
        episode_limit=_number(limits, "episode_limit", int, minimum=1, allow_off=True),
        loss_stop=_number(limits, "loss_stop", float, minimum=0, allow_off=True),
        early_stopping=plain(limits.get("early_stopping")),
        gradient_clipping=_number(training, "gradient_clipping", float, minimum=0, allow_off=True),
        trainer=_trainer(training), callbacks=_callbacks(training), backend=_backend(training), ray=_ray(training),
        validation_interval=_validation_interval(validation), monitor=str(validation["monitor"]),
        mode=_mode(validation), logging_interval=_number(logging_section, "interval", int, minimum=1, allow_off=False),
        tensorboard=_tensorboard(logging_section), mlflow=_mlflow(logging_section))
    _check_limits(own, registry.configuration.source)
    return own


def _check_resumed(plan: TrainingPlan, folder: str, point: Any) -> None:
    """A resumed experiment keeps the configuration it was trained with, as its checkpoint carries it
    (`point`: an edited training_configuration.yaml is caught too); only its terminal conditions may change."""
    from pyrosys.folders.resume import configuration_changes     # (see load_training_configuration)

    changes = configuration_changes(point.configuration, plan.configuration)
    if changes:
        raise ConfigError("a resumed experiment keeps the configuration it was trained with (as its checkpoint "
                          "holds it); only terminal conditions may change, but these differ: " + "; ".join(changes),
                          file=str(Experiment(folder).configuration_file), key=changes[0].split(":")[0],
                          hint="Undo the change, or start a new experiment for other settings "
                               "(--m CHECKPOINT starts one from its weights)")


# -- the plan ------------------------------------------------------------------------------------------

def check_configuration_keys(configuration: Configuration) -> None:
    """What a configuration's keys and component names can be refused for before torch is imported (the grid
    checks a search's space with it before any trial)."""
    translate_section_keys(configuration)      # MI-Prometheus's keys, before the trainer's own are checked
    check_trainer_keys(configuration)          # before any component (torch, Lightning) is imported
    refuse_mi_prometheus_only(configuration)
    check_component_names(configuration)


def resolve(args: argparse.Namespace) -> TrainingPlan:
    """Configuration files and flags -> a checked TrainingPlan; the registry is then frozen."""
    configuration, point = load_training_configuration(args)
    check_configuration_keys(configuration)
    translate_component_aliases(configuration)  # imports a component only where an alias names it
    ParamRegistry.reset()
    registry = ParamRegistry()
    registry.load(configuration)
    registry.section().add_default_params(get_params())
    training = registry.section("training")
    seed_torch, seed_numpy = _seeds(training)
    own = own_sections(registry)
    loss, metrics = own["loss"], own["metrics"]
    objective = (loss if loss is not None else "mse", metrics if metrics is not None else [])
    objective_file = training.source("loss" if loss is not None else "metrics")
    check_objective_names_read(*objective, file=objective_file)
    if not getattr(args, "print_config", False):   # its output is the configuration alone
        say_loading(configuration.tree)
    from pyrosys.objectives import check_objective   # torch, now that the trainer's own sections are right

    problem, model = resolve_problem(registry, seed=seed_numpy), resolve_model(registry)
    check_objective(*objective, file=objective_file)
    plan = TrainingPlan(loaded=configuration, configuration={}, problem=problem, model=model, seed_torch=seed_torch,
                        seed_numpy=seed_numpy, curriculum=_curriculum(registry, problem), **own)
    registry.freeze()
    registry.check_unread()
    plan.configuration = registry.to_dict()
    if args.resume is not None:
        _check_resumed(plan, args.resume, point)
    return plan
