"""pyrosys-trainer: resolve a configuration, build problem and model, fit, test the best model, record.

    pyrosys-trainer --c configs/digits/lenet5.yaml [--c more.yaml] [--set key=value ...]
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyrosys.configuration.loading import dump_yaml, load_configuration
from pyrosys.errors import ConfigError, RunFailed
from pyrosys.configuration.param_registry import ParamInterface, ParamRegistry
from pyrosys.configuration.seeds import resolve_seed
from pyrosys.workers.components import ComponentPlan, plain, resolve_model, resolve_problem
from pyrosys.workers.worker import (add_configuration_flags, add_run_flags, base_parser, run,
                                    show_progress_lines)

log = logging.getLogger("pyrosys.trainer")

EXPERIMENT_ENV = "PYROSYS_EXPERIMENT_DIR"

# Keys of pl.Trainer that PyroSys sets from its own sections.
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


# sections whose keys the trainer knows in full (get_params); others belong to components
CLOSED_SECTIONS = ("training", "training.terminal_conditions", "validation", "testing", "logging")


def check_trainer_keys(configuration: Any) -> None:
    """Refuse a misspelt key of the trainer's own sections at once, naming the nearest known key: the
    check the registry makes after the build, made before torch and Lightning are imported."""
    from pyrosys.errors import nearest
    from pyrosys.configuration.param_registry import unknown_keys_error

    known = {"": {**get_params(), "problem": {}, "model": {}},
             **{section: _node(get_params(), section) for section in CLOSED_SECTIONS}}
    for section, allowed in known.items():
        given = _node(configuration.tree, section) if section else configuration.tree
        if not isinstance(given, dict) or not isinstance(allowed, dict):
            continue
        for key in given:
            if key not in allowed:
                path = f"{section}.{key}" if section else key
                close = nearest(key, allowed, n=1)
                near = (f"{section}.{close[0]}" if section else close[0]) if close else None
                raise unknown_keys_error([(path, near)], [configuration.source(path)])


def _node(tree: dict, path: str) -> Any:
    for part in path.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


@dataclass
class TrainingPlan:
    """Everything the configuration asks of one training run, read and checked, as plain values."""

    configuration: dict
    problem: ComponentPlan
    model: ComponentPlan
    seed_torch: int
    seed_numpy: int
    loss: str | None
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
    validation_interval: float | int
    monitor: str
    mode: str
    logging_interval: int
    tensorboard: int | None
    mlflow: dict | None


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


def resolve(args: argparse.Namespace) -> TrainingPlan:
    """Configuration files and flags -> a checked TrainingPlan; the registry is then frozen."""
    if args.resume is not None and args.model_weights is not None:
        raise ConfigError("--resume and --m cannot be combined: --resume goes on with an experiment's own weights, "
                          "--m starts a new experiment from other weights", file="the command line", key="--resume",
                          hint="Keep one of the two")
    overrides = list(args.overrides)
    if args.seed is not None:
        overrides.append(f"training.seed={args.seed}")
    if args.logging_interval is not None:
        overrides.append(f"logging.interval={args.logging_interval}")
    if args.tensorboard is not None:
        overrides.append(f"logging.tensorboard={args.tensorboard}")
    if args.mlflow is not None:
        overrides.append(f"logging.mlflow.tracking_uri={args.mlflow}")
    if args.model_weights is not None:
        overrides.append(f"model.load={{from: {json.dumps(str(Path(args.model_weights).resolve()))}}}")
    files, choices, overrides = command_line_choices(args, overrides)
    if args.resume is not None:
        from pyrosys.folders.resume import CONFIGURATION_FILE, resume_point

        resume_point(args.resume)
        files = [str(Path(args.resume) / CONFIGURATION_FILE), *files]
    elif not files:
        raise ConfigError("no configuration file was given", file="the command line", key="--c",
                          hint="Name one with --c FILE, or continue an experiment with --resume EXPERIMENT_DIR")
    ParamRegistry.reset()
    registry = ParamRegistry()
    configuration = load_configuration(files, overrides, choices)
    check_trainer_keys(configuration)          # before any component (torch, Lightning) is imported
    registry.load(configuration)
    registry.section().add_default_params(get_params())

    training = registry.section("training")
    seed_torch = _seed(training, "seed_torch", fallback=_seed(training, "seed"))
    seed_numpy = _seed(training, "seed_numpy", fallback=seed_torch)
    training.add_config_params({"seed": training["seed"] if training["seed"] not in (None, -1) else seed_torch,
                                "seed_torch": seed_torch, "seed_numpy": seed_numpy})
    problem = resolve_problem(registry, seed=seed_numpy)
    model = resolve_model(registry)

    limits = training["terminal_conditions"]
    validation, logging_section = registry.section("validation"), registry.section("logging")
    from pyrosys.objectives import check_objective

    loss, metrics = training.get("loss"), plain(training.get("metrics"))
    check_objective(loss if loss is not None else "mse", metrics if metrics is not None else [],
                    file=training.source("loss" if loss is not None else "metrics"))
    trainer = plain(training["trainer"])
    for key, instead in DERIVED_TRAINER_KEYS.items():
        if key in trainer:
            raise ConfigError(f"PyroSys sets pl.Trainer's '{key}' itself", file=training.source("trainer"),
                              key=f"training.trainer.{key}", hint=f"Use {instead} instead")
    callbacks = plain(training["callbacks"])
    if not isinstance(callbacks, list):
        raise ConfigError("must be a list of callbacks, each {_target_: ..., arg: ...}",
                          file=training.source("callbacks"), key="training.callbacks")
    interval = validation["interval"]
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0 \
            or (isinstance(interval, float) and interval > 1.0):
        raise ConfigError(f"the validation interval is a fraction of an epoch in (0, 1] or a whole number of "
                          f"episodes, not {interval!r}", file=validation.source("interval"), key="validation.interval")
    mode = validation["mode"]
    if mode not in ("min", "max"):
        raise ConfigError(f"mode is 'min' or 'max', not {mode!r}", file=validation.source("mode"),
                          key="validation.mode")
    plan = TrainingPlan(
        configuration={}, problem=problem, model=model, seed_torch=seed_torch,
        seed_numpy=seed_numpy,
        loss=loss, metrics=metrics, optimizer=_spec(training, "optimizer") or {}, scheduler=_spec(training, "scheduler"),
        epoch_limit=_number(limits, "epoch_limit", int, minimum=1, allow_off=True),
        episode_limit=_number(limits, "episode_limit", int, minimum=1, allow_off=True),
        loss_stop=_number(limits, "loss_stop", float, minimum=0, allow_off=True),
        early_stopping=plain(limits.get("early_stopping")),
        gradient_clipping=_number(training, "gradient_clipping", float, minimum=0, allow_off=True),
        curriculum=_curriculum(registry, problem),
        trainer=trainer, callbacks=callbacks, validation_interval=interval, monitor=str(validation["monitor"]),
        mode=mode, logging_interval=_number(logging_section, "interval", int, minimum=1, allow_off=False),
        tensorboard=logging_section["tensorboard"], mlflow=_mlflow(logging_section))
    if plan.tensorboard not in (None, 0, 1, 2) or isinstance(plan.tensorboard, bool):
        raise ConfigError(f"the TensorBoard level is 0, 1, 2 or null, not {plan.tensorboard!r}",
                          file=logging_section.source("tensorboard"), key="logging.tensorboard",
                          hint="0: statistics; 1: + weight histograms; 2: + gradient histograms; null: off")
    if plan.epoch_limit is None and plan.episode_limit is None:
        raise ConfigError("training has no limit: both epoch_limit and episode_limit are off",
                          file=limits.source(), key="training.terminal_conditions",
                          hint="Set epoch_limit or episode_limit to a positive number")
    if plan.early_stopping is not None and not isinstance(plan.early_stopping, dict):
        raise ConfigError("early_stopping is a mapping such as {monitor: val_loss, patience: 5}",
                          file=limits.source("early_stopping"), key="training.terminal_conditions.early_stopping")
    registry.freeze()
    registry.check_unread()
    plan.configuration = registry.to_dict()
    if args.resume is not None:
        from pyrosys.configuration.loading import load_yaml
        from pyrosys.folders.resume import CONFIGURATION_FILE, configuration_changes

        saved = Path(args.resume) / CONFIGURATION_FILE
        changes = configuration_changes(load_yaml(saved), plan.configuration)
        if changes:
            raise ConfigError("a resumed experiment keeps its configuration; only terminal conditions may change, "
                              "but these differ: " + "; ".join(changes), file=str(saved), key=changes[0].split(":")[0],
                              hint="Start a new experiment for other settings (--m CHECKPOINT starts from its weights)")
    return plan


def build_callbacks(plan: TrainingPlan) -> list:
    """Terminal conditions and the configured callbacks, each checked to be a Lightning callback."""
    from pyrosys.factory import instantiate
    from pyrosys.callbacks.terminal_conditions import LossStop

    source = ParamRegistry().configuration.source
    callbacks: list = []
    if plan.loss_stop is not None:
        callbacks.append(LossStop(plan.loss_stop, plan.logging_interval))
    if plan.early_stopping is not None:
        spec = {"name": "EarlyStopping", "monitor": plan.monitor, "mode": plan.mode, **plan.early_stopping}
        key = "training.terminal_conditions.early_stopping"
        callbacks.append(instantiate(spec, "callback", file=source(key), key=key))
    for index, spec in enumerate(plan.callbacks):
        key = f"training.callbacks.{index}"
        callbacks.append(instantiate(spec, "callback", file=source(key), key=key))
    return callbacks


def tracking(plan: TrainingPlan, folder: Path, outdir: Path, callbacks: list,
             resume: dict | None = None) -> tuple[list, list, Any]:
    """Where statistics go (CSV and log lines always; TensorBoard at its level; MLflow) and the callbacks
    that feed them, and the MLflow sink (None when off); a resumed run goes on in its TensorBoard folder
    and MLflow run."""
    from pyrosys.callbacks.statistics import CsvSink, LogSink

    sinks: list = [CsvSink(folder), LogSink()]
    mlflow = None
    if plan.mlflow is not None:
        from pyrosys.tracking.mlflow_sink import RUN_FILE, MLflowSink, default_tracking_uri

        earlier = (resume or {}).get("mlflow") or {}
        uri = earlier.get("tracking_uri") or plan.mlflow["tracking_uri"] or default_tracking_uri(outdir)
        mlflow = MLflowSink(uri, plan.mlflow["experiment_name"] or plan.problem.name,
                            plan.mlflow["run_name"] or f"{plan.model.name}_{folder.name}",
                            artifact_root=None if plan.mlflow["tracking_uri"] else outdir / "mlflow" / "artifacts",
                            run_id=earlier.get("run_id"), run_file=folder / RUN_FILE)
        sinks.append(mlflow)
        if resume and not earlier.get("run_id"):      # the interrupted run never reached MLflow: log its rows now
            mlflow.replay(folder, resume["episode"])
    if plan.tensorboard is not None:
        from pyrosys.callbacks.tensorboard import TensorBoardHistograms, TensorBoardSink

        board = TensorBoardSink(folder / "tensorboard", purge_step=resume["episode"] + 1 if resume else None)
        sinks.append(board)
        if plan.tensorboard >= 1:
            callbacks = [*callbacks, TensorBoardHistograms(board, plan.tensorboard, plan.logging_interval)]
    return sinks, callbacks, mlflow


def checkpointing(plan: TrainingPlan, models_dir: Path) -> Any:
    """models/best.ckpt by the monitored value, and models/last.ckpt at every validation."""
    from pyrosys.callbacks.checkpoint import ModelCheckpoint

    return ModelCheckpoint(dirpath=models_dir, filename="best", monitor=plan.monitor, mode=plan.mode,
                           save_top_k=1, save_last=True, auto_insert_metric_name=False,
                           enable_version_counter=False)


def optimization(plan: TrainingPlan, model: Any) -> Any:
    """The optimiser (and scheduler) the configuration names, built now so that mistakes show early."""
    from pyrosys.factory import instantiate

    source = ParamRegistry().configuration.source
    optimizer = instantiate(plan.optimizer, "optimizer", model.parameters(), given=("params",),
                            file=source("training.optimizer"), key="training.optimizer")
    if plan.scheduler is None:
        return lambda _: optimizer
    scheduler = instantiate(plan.scheduler, "scheduler", optimizer, given=("optimizer",),
                            file=source("training.scheduler"), key="training.scheduler")
    return lambda _: {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": plan.monitor}}


def trainer_arguments(plan: TrainingPlan) -> dict:
    """pl.Trainer's arguments from the plan: limits, validation schedule, clipping, the user's own."""
    import pytorch_lightning as pl

    from pyrosys.app_state import AppState
    from pyrosys.factory import check_arguments
    from pyrosys.callbacks.profiling import NoProfiler

    interval = plan.validation_interval
    arguments: dict[str, Any] = {
        "accelerator": AppState().accelerator, "devices": 1, "logger": False, "num_sanity_val_steps": 0,
        "enable_model_summary": False, "max_epochs": plan.epoch_limit or -1, "max_steps": plan.episode_limit or -1,
        "val_check_interval": interval, "check_val_every_n_epoch": None if isinstance(interval, int) else 1,
        "gradient_clip_val": plan.gradient_clipping,
        "enable_progress_bar": sys.stdout.isatty(),   # a bar on a terminal; plain log lines otherwise
        "profiler": NoProfiler(),
    }
    user = dict(plan.trainer)
    source = ParamRegistry().configuration.source("training.trainer")
    if "gradient_clip_val" in user and plan.gradient_clipping is not None:
        raise ConfigError("gradient clipping is set twice", file=source, key="training.trainer.gradient_clip_val",
                          hint="Keep either training.gradient_clipping or training.trainer.gradient_clip_val")
    check_arguments(pl.Trainer, user, file=source, key="training.trainer")
    return {**arguments, **user}


def train_other_rank(plan: TrainingPlan, model: Any, problem: Any, arguments: dict, callbacks: list,
                     folder: Path) -> int:
    """A DDP process other than the first: the same fit into the first process's folder, writing nothing."""
    import pytorch_lightning as pl

    from pyrosys.callbacks.checkpoint import AtomicCheckpointIO
    from pyrosys.callbacks.statistics import StatisticsCollector

    trainer = pl.Trainer(**arguments, default_root_dir=str(folder), plugins=[AtomicCheckpointIO()],
                         callbacks=[StatisticsCollector([], plan.logging_interval, problem_statistics(problem)),
                                    checkpointing(plan, folder / "models"), *callbacks])
    trainer.fit(model, datamodule=problem)
    return 0


def end_other_ranks() -> None:
    """After a multi-process fit, the first process tests alone: leave the process group."""
    import torch.distributed

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def run_tags(described: dict, folder: Path) -> dict[str, str]:
    """MLflow tags of a run: PyroSys version, git commit of the configs, command line, experiment folder."""
    git = described.get("git") or {}
    return {"pyrosys.version": described["versions"]["pyrosys"], "pyrosys.command": " ".join(described["command"]),
            "pyrosys.experiment_folder": str(folder), "mlflow.source.git.commit": git.get("commit", ""),
            "pyrosys.git_dirty": str(git.get("dirty", ""))}


def finish_tracking(mlflow: Any, experiment: Any, plan: TrainingPlan, results: dict, status: str) -> None:
    """The end of a trained run's MLflow tracking (none when MLflow is off)."""
    if mlflow is not None:
        log_run_end(mlflow, experiment, results, status, plan.mlflow["registered_model_name"])


def log_run_end(mlflow: Any, experiment: Any, results: dict, status: str, registered_model: str | None,
                **recorded: Any) -> bool:
    """Test metrics, artifacts (configuration, description, curves, status, the best bundle of a finished
    run), the run's end, and where it went in status.json; whether everything was logged."""
    folder = experiment.folder
    bundle = folder / "models" / "best"
    mlflow.log_final({f"test/{name}": value for name, value in results.items() if name != "folder"})
    mlflow.log_artifacts([folder / "training_configuration.yaml", folder / "description.json", folder / "curves.png",
                          folder / "status.json"], bundle if status == "FINISHED" and bundle.is_dir() else None,
                         registered_model)
    logged = mlflow.finish(status)
    experiment.write_status(mlflow={"tracking_uri": mlflow.tracking_uri, "run_id": mlflow.run_id, "logged": logged,
                                    **recorded})
    return logged


def problem_statistics(problem: Any) -> Any:
    """The problem's own per-batch statistics function, or None when it adds none (most problems)."""
    from pyrosys.problems.problem import Problem

    return problem.batch_statistics if type(problem).batch_statistics is not Problem.batch_statistics else None


def start_curriculum(plan: TrainingPlan, problem: Any) -> None:
    """Hand the problem its curriculum; with must_finish, train at least until the curriculum is complete."""
    if plan.curriculum is None:
        return
    problem.set_curriculum({k: v for k, v in plan.curriculum.items() if k != "must_finish"})
    if not plan.curriculum["must_finish"]:
        return
    end = problem.curriculum_end()
    if plan.episode_limit is not None:
        plan.episode_limit = max(plan.episode_limit, end)
    if plan.epoch_limit is not None:
        plan.epoch_limit = max(plan.epoch_limit, math.ceil(end / max(1, len(problem.loader("train")))))


def dry_run(model: Any, problem: Any) -> int:
    """One training batch forward and backward, the model summary and its size; nothing is written."""
    from pytorch_lightning.utilities.model_summary import ModelSummary

    from pyrosys.data_dict import batch_size

    batch = next(iter(problem.loader("train")))
    loss = model.objective.loss(model.forward_batch(batch), batch)
    loss.backward()
    gradients = sum(p.grad is not None for p in model.parameters() if p.requires_grad)
    print(ModelSummary(model, max_depth=2))
    print(f"[pyrosys] dry run: {model.__class__.__name__} on {problem.name}, one batch of "
          f"{batch_size(batch)}: loss {float(loss.detach()):.6f}, gradients for {gradients} parameter tensors; "
          f"nothing was trained or written")
    return 0


def configuration_header() -> str:
    """YAML comments recording the PyroSys version and, when the configs live in git, the commit."""
    import pyrosys
    from pyrosys.tracking.provenance import git_state

    files = ParamRegistry().configuration.files
    state = git_state(Path(files[0]).parent) if files else None
    lines = [f"# resolved by pyrosys {pyrosys.__version__}"]
    if state:
        lines.append(f"# configuration files at git commit {state['commit']}" + (" (dirty)" if state["dirty"] else ""))
    return "\n".join(lines) + "\n"


def command_line_choices(args: argparse.Namespace,
                         overrides: list[str]) -> tuple[list[str], dict[str, str], list[str]]:
    """The configuration files, the project group choices (model=vae) given after them, and the
    overrides: other `key=value` items given there, then `overrides`."""
    from pyrosys.configuration.project import split_choices

    files = [item for item in args.config if "=" not in item or Path(item).exists()]
    items = [item for item in [*args.config, *args.choices] if item not in files]
    choices, rest = split_choices(items, files[0] if files else Path.cwd())
    return files, choices, [*rest, *overrides]


def list_choices(args: argparse.Namespace) -> int:
    """--list GROUP: the choices of a group of the project around the configuration (or this folder)."""
    from pyrosys.configuration.project import find_project

    start = args.config[0] if args.config else Path.cwd()
    project = find_project(start)
    if project is None:
        raise ConfigError("this is not inside a PyroSys project (no .pyrosys-project file here or above)",
                          file=str(start), key="--list", hint="Create one with pyrosys-init NAME")
    groups = project.groups()
    if args.list not in groups:
        raise ConfigError(f"the project {project.package} has no group '{args.list}'", file=str(project.config_dir),
                          key="--list", hint="Groups: " + ", ".join(groups))
    for choice in groups[args.list]:
        print(choice)
    return 0


def train(args: argparse.Namespace) -> int:
    """resolve -> build -> fit -> test -> record."""
    if args.list:
        return list_choices(args)
    plan = resolve(args)
    if args.print_config:
        print(dump_yaml(plan.configuration), end="")
        return 0

    import pytorch_lightning as pl

    from pyrosys.app_state import AppState
    from pyrosys.atomic import write_text_atomic
    from pyrosys.callbacks.checkpoint import AtomicCheckpointIO, read_checkpoint
    from pyrosys.folders.experiment import Experiment, now_iso
    from pyrosys.tracking.plots import plot_curves
    from pyrosys.tracking.mlflow_sink import flatten
    from pyrosys.tracking.provenance import description
    from pyrosys.configuration.seeds import apply_seeds
    from pyrosys.callbacks.statistics import StatisticsCollector
    from pyrosys.callbacks.terminal_conditions import stop_reason
    from pyrosys.workers.components import build_model, build_problem, make_objective
    from pyrosys.workers.tester import test_model

    app = AppState()
    if args.gpu:
        app.use_gpu()
    app.seed, app.log_level = plan.seed_torch, args.log_level
    apply_seeds(plan.seed_torch, plan.seed_numpy)

    # build: every configuration mistake surfaces here, before the experiment folder exists
    problem = build_problem(plan.problem)
    start_curriculum(plan, problem)
    model = build_model(plan.model, problem)
    objective = make_objective(model, problem, plan.loss, plan.metrics)
    model.attach(objective, optimization(plan, model), plan.configuration)
    callbacks, arguments = build_callbacks(plan), trainer_arguments(plan)
    if args.dry_run:
        return dry_run(model, problem)
    if os.environ.get(EXPERIMENT_ENV) and int(os.environ.get("LOCAL_RANK", "0")) > 0:
        return train_other_rank(plan, model, problem, arguments, callbacks, Path(os.environ[EXPERIMENT_ENV]))
    resume = None
    if args.resume is not None:
        from pyrosys.folders.resume import resume_point, truncate_statistics

        experiment = Experiment.reopen(args.resume)
        last, _, step = resume_point(experiment.folder)
        for stale in experiment.models_dir.glob(".*.tmp"):       # a checkpoint write the kill interrupted
            stale.unlink()
        run_file = experiment.folder / "mlflow_run.json"
        resume = {"checkpoint": str(last), "episode": step,
                  "mlflow": json.loads(run_file.read_text()) if run_file.is_file() else None}
        truncate_statistics(experiment.folder, step)
    elif args.run_name:
        experiment = Experiment.create_named(args.outdir or "experiments", args.run_name)
    else:
        experiment = Experiment.create(args.outdir or "experiments", plan.problem.name, plan.model.name,
                                       args.savetag)
    show_progress_lines(not arguments["enable_progress_bar"])
    sinks, callbacks, mlflow = tracking(plan, experiment.folder, Path(args.outdir or "experiments"), callbacks,
                                        resume)
    collector = StatisticsCollector(sinks, plan.logging_interval, problem_statistics(problem))
    trainer = pl.Trainer(**arguments, default_root_dir=str(experiment.folder), plugins=[AtomicCheckpointIO()],
                         callbacks=[collector, checkpointing(plan, experiment.models_dir), *callbacks])

    app.experiment_dir = experiment.folder
    handler = experiment.start_logging(args.log_level)
    write_text_atomic(experiment.folder / "training_configuration.yaml",
                      configuration_header() + dump_yaml(plan.configuration))
    experiment.write_status(status="running", started=experiment.status.get("started", now_iso()),
                            command=" ".join(sys.argv), seed_torch=plan.seed_torch, seed_numpy=plan.seed_numpy,
                            **({"resumed": [*experiment.status.get("resumed", []),
                                            {"at": now_iso(), "episode": resume["episode"]}]} if resume else {}))
    described = description(ParamRegistry().configuration.files,
                            {"seed_torch": plan.seed_torch, "seed_numpy": plan.seed_numpy})
    write_text_atomic(experiment.folder / "description.json",
                      json.dumps({**described, "started": experiment.status["started"]}, indent=2))
    if mlflow is not None:
        mlflow.log_params_and_tags(flatten(plan.configuration), run_tags(described, experiment.folder))
    if getattr(model, "adapter_report", None) is not None:
        log.info(model.adapter_report.summary())
        experiment.write_status(weights_loaded={"from": str(plan.model.load["from"]),
                                                "summary": model.adapter_report.summary()})
    print(f"[pyrosys] experiment folder: {experiment.folder}", flush=True)
    try:
        started = time.perf_counter()
        os.environ[EXPERIMENT_ENV] = str(experiment.folder)      # DDP's other processes train into this folder
        trainer.fit(model, datamodule=problem, ckpt_path=resume and resume["checkpoint"])          # fit
        fit_seconds = round(time.perf_counter() - started, 3)
        end_other_ranks()
        reason = stop_reason(trainer, plan.epoch_limit, plan.episode_limit)
        log.info("training ended: %s", reason)
        best = experiment.models_dir / "best.ckpt"
        if not best.is_file():               # stopped before any validation: validate the final weights
            trainer.validate(model, datamodule=problem, verbose=False)
            for name in ("best.ckpt", "last.ckpt"):
                trainer.save_checkpoint(experiment.models_dir / name)
        model.load_state_dict(read_checkpoint(best, key="models/best.ckpt")["state_dict"])
        model.save(experiment.models_dir / "best")                                                # bundle
        results = test_model(model, problem, experiment.folder)                                    # test
        plot_curves(experiment.folder, objective.metric_names[0] if objective.metric_names else None,
                    f"{plan.model.name} on {plan.problem.name}")
        experiment.write_status(status="completed", finished=now_iso(), reason=reason,
                                epoch=trainer.current_epoch, episode=trainer.global_step,
                                seconds=round(time.perf_counter() - started, 3), fit_seconds=fit_seconds,
                                **{k: round(v, 3) if isinstance(v, float) and k != "first_step_at" else v
                                   for k, v in collector.timing.items()},
                                best_checkpoint=str(best), validation=collector.results.get("val", {}),
                                testing=results)                                                   # record
        finish_tracking(mlflow, experiment, plan, results, "FINISHED")
    except BaseException as error:
        experiment.write_status(status="failed", finished=now_iso(), reason=f"{type(error).__name__}: {error}",
                                epoch=trainer.current_epoch, episode=trainer.global_step)
        finish_tracking(mlflow, experiment, plan, {}, "FAILED")
        if isinstance(error, RunFailed):
            log.error("training failed: %s", error, extra={"file_only": True})   # outcome() prints it
        else:
            log.exception("training failed")
        raise
    finally:
        collector.close()                    # after a failure too: a grid worker goes on to its next run
        write_text_atomic(experiment.folder / "description.json",
                          json.dumps({**described, "started": experiment.status["started"],
                                      "finished": now_iso()}, indent=2))
        Experiment.stop_logging(handler)
    print(f"[pyrosys] test loss: {results['loss']:.6f}" + "".join(
        f"  test {name}: {results[name]:.6f}" for name in objective.metric_names))
    print(f"[pyrosys] results: {experiment.folder}")
    return 0


def parser() -> argparse.ArgumentParser:
    """The trainer's flags: the common ones plus --c, --seed."""
    result = base_parser("pyrosys-trainer", "Train a model on a problem, both named in YAML configuration files.")
    result.add_argument("--c", "--config", dest="config", metavar="FILE", nargs="+", action="extend", default=[],
                        help="configuration files, later ones winning (also a,b,c); with --resume, merged over "
                             "the experiment's saved configuration")
    result.add_argument("choices", nargs="*", metavar="GROUP=CHOICE",
                        help="in a PyroSys project: pick config/<GROUP>/<CHOICE>.yaml for a group (model=vae "
                             "data=cells); other key.sub=value items are overrides, as with --set")
    result.add_argument("--list", metavar="GROUP", default=None,
                        help="in a PyroSys project: list the choices of a configuration group and exit")
    result.add_argument("--resume", metavar="EXPERIMENT_DIR", default=None,
                        help="continue an interrupted experiment from its models/last.ckpt, in the same folder, "
                             "CSVs, TensorBoard and MLflow run")
    result.add_argument("--m", "--model", dest="model_weights", metavar="CHECKPOINT", default=None,
                        help="start a new experiment from these weights (a checkpoint or bundle, via the Adapter)")
    add_configuration_flags(result)
    add_run_flags(result, savetag=True)
    result.add_argument("--run-name", metavar="NAME", default=None,
                        help="experiment folder <outdir>/NAME instead of <outdir>/<Problem>/<Model>/<time> "
                             "(grid workers name their runs so)")
    result.add_argument("--tensorboard", type=int, choices=(0, 1, 2), default=None,
                        help="logging.tensorboard: 0 statistics, 1 + weight histograms, 2 + gradient histograms")
    result.add_argument("--mlflow", metavar="URI", default=None,
                        help="logging.mlflow.tracking_uri: an MLflow server or store (default: sqlite in --outdir)")
    result.add_argument("--li", dest="logging_interval", metavar="INTERVAL", type=int, default=None,
                        help="episodes between statistics rows (logging.interval)")
    result.add_argument("--seed", type=int, default=None, help="the seed (training.seed); -1 draws one")
    result.add_argument("--dry-run", action="store_true",
                        help="resolve, build, one batch forward and backward, print the model summary; no training")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of pyrosys-trainer."""
    return run(train, parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
