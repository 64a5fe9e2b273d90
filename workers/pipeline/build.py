"""Build: a resolved plan -> the problem, the model (with its objective and optimizer), the callbacks and
the pl.Trainer with its statistics sinks; and `load_model`, the one way from a saved model on disk (a
bundle folder or a checkpoint) to a model. Every configuration mistake found here surfaces before the
experiment folder exists.
"""
from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from pyrosys.app_state import AppState
from pyrosys.callbacks.checkpoint import AtomicCheckpointIO, ModelCheckpoint, read_checkpoint
from pyrosys.callbacks.interruption import DeferInterruptions
from pyrosys.callbacks.profiling import NoProfiler
from pyrosys.callbacks.pruning import TrialPruning
from pyrosys.callbacks.progress import TrainingBar
from pyrosys.callbacks.ray_train_report import RayTrainReport
from pyrosys.callbacks.statistics import CsvSink, LogSink, StatisticsCollector
from pyrosys.callbacks.tensorboard import TensorBoardHistograms, TensorBoardSink
from pyrosys.callbacks.terminal_conditions import LossStop
from pyrosys.callbacks.tune_report import TuneReport
from pyrosys.configuration.loading import COMMAND_LINE
from pyrosys.configuration.loading import dump_yaml
from pyrosys.configuration.seeds import apply_seeds
from pyrosys.errors import ConfigError, did_you_mean
from pyrosys.factory import check_arguments, instantiate
from pyrosys.folders.experiment import CSV_FILES, Experiment
from pyrosys.folders.grid import Grid
from pyrosys.models.adapter import adapt
from pyrosys.models.model import BUNDLE_FILE, Model
from pyrosys.objectives import Objective, check_task
from pyrosys.problems.problem import Problem
from pyrosys.tracking.mlflow_sink import MLflowSink, default_tracking_uri
from pyrosys.workers.pipeline import ray_train
from pyrosys.workers.pipeline.resolve import PHASE_SECTIONS, ComponentPlan, TrainingPlan

log = logging.getLogger("pyrosys.adapter")


@dataclass
class Setup:
    """What a plan builds before anything is written: the parts of a run and pl.Trainer's arguments."""

    problem: Any
    model: Any
    objective: Any
    callbacks: list
    arguments: dict


@dataclass
class Resume:
    """Where an interrupted experiment goes on: its checkpoint, episode and MLflow run (if any)."""

    checkpoint: Path
    episode: int
    mlflow: dict | None


@dataclass
class Run:
    """A run under way: its folder, its trainer with the statistics collector, its MLflow sink (or None),
    and what `record` keeps while it runs (the log handler, the run's description)."""

    experiment: Experiment
    trainer: pl.Trainer
    collector: StatisticsCollector
    mlflow: Any
    handler: logging.Handler | None = None
    described: dict | None = None


def run(plan: TrainingPlan, parts: Setup, experiment: Experiment, outdir: Path, resume: Resume | None) -> Run:
    """The pl.Trainer of a run with its statistics sinks, writing into `experiment`."""
    statistics, callbacks, mlflow = sinks(plan, experiment, outdir, parts.callbacks, resume)
    collector = StatisticsCollector(statistics, plan.logging_interval, problem_statistics(parts.problem))
    return Run(experiment, trainer(plan, parts, experiment.folder, collector, callbacks), collector, mlflow)


def setup(plan: TrainingPlan, gpu: bool = False) -> Setup:
    """Seeds, problem, model with its objective and optimizer, callbacks and pl.Trainer's arguments (after the
    curriculum, which may lengthen the run); every refusal comes before anything is written."""
    if gpu:
        AppState().use_gpu()
    apply_seeds(plan.seed_torch, plan.seed_numpy)
    with files_named(plan):
        problem = build_problem(plan.problem)
        plan.start_curriculum(problem)
        model = build_model_in_memory(plan.model, problem)
        objective = make_objective(model, problem, plan.loss, plan.metrics)
    check_monitors(plan, objective)
    with files_named(plan):
        model.attach(objective, optimization(plan, model), plan.configuration)
    return Setup(problem, model, objective, build_callbacks(plan), trainer_arguments(plan))


@contextlib.contextmanager
def files_named(plan: TrainingPlan) -> Iterator[None]:
    """Components name the key of a refusal, not the file that set it: name that file from the plan."""
    try:
        yield
    except ConfigError as error:
        if error.file is None and error.key:
            error.file = plan.source(error.key)
        raise


def build_model_in_memory(plan: ComponentPlan, problem: Any) -> Any:
    """`build_model`, with a model too large for this machine's memory told as the parameters' fault."""
    try:
        return build_model(plan, problem)
    except RuntimeError as error:          # torch.OutOfMemoryError (a device's) is one too
        if "alloc" not in str(error).lower() and "out of memory" not in str(error).lower():
            raise
        sizes = ", ".join(f"{key}: {value}" for key, value in plan.params.items())
        raise ConfigError(f"the model {plan.name} ({sizes}) needs more memory than this machine can give "
                          f"({str(error).splitlines()[0][:200]})", key="model",
                          hint="Make the model smaller (its layer sizes or number of layers)") from None


def check_monitors(plan: TrainingPlan, objective: Objective) -> None:
    """validation.monitor (and early stopping's own monitor) must name a statistic the run logs at every
    validation: val_loss or val_<metric> for a metric of the objective."""
    logged = ["val_loss", *(f"val_{name}" for name in objective.metric_names)]
    monitors = {"validation.monitor": plan.monitor,
                "training.terminal_conditions.early_stopping.monitor": (plan.early_stopping or {}).get("monitor")}
    for key, monitor in monitors.items():
        if monitor is not None and monitor not in logged:
            raise ConfigError(f"{monitor!r} is not a statistic this run logs at validation (it logs "
                              f"{', '.join(logged)})", file=plan.source(key), key=key,
                              hint=did_you_mean(str(monitor), logged) + " A metric is logged once training.metrics "
                                                                        "names it")


# -- components ----------------------------------------------------------------------------------------

def build_problem(plan: ComponentPlan) -> Any:
    """The problem, created and set up (so that data errors surface before an experiment starts); a phase
    whose loader holds no batch (a problem of one's own) is refused: it could not train or test."""
    problem = plan.cls.create(plan.params, plan.phases)
    problem.setup()
    for phase, section in PHASE_SECTIONS.items():
        try:
            empty = len(problem.loader(phase)) == 0
        except TypeError:                    # a loader that does not know its length
            empty = False
        if empty:
            raise ConfigError(f"the {phase} phase of the problem {problem.name} holds no batch",
                              key=f"{section}.problem", hint="Give this phase some data, or a batch_size it can fill")
    return problem


def build_model(plan: ComponentPlan, problem: Any) -> Any:
    """The model, checked to fit the problem's data and task, sized from its data definitions, and given
    the weights `model.load` names (through the Adapter)."""
    plan.cls.check_fit(problem.data_definitions, problem=f"the problem {problem.name}")
    model = plan.cls.create(plan.params, problem.data_definitions)
    if plan.load is not None:
        report = adapt(model, plan.load["from"], plan.load["modules"], plan.load["freeze"])
        if report.shape_mismatched or not report.matched:
            first = report.shape_mismatched[0] if report.shape_mismatched else None
            detail = (f": its {first[0]} has shape {first[2]}, the model {plan.name}'s {first[1]} on the problem "
                      f"{problem.name} needs {first[3]}" if first else "")
            raise ConfigError(f"the weights to load do not fit{detail}", file=str(plan.load["from"]),
                              key="model.load.from",
                              hint=report.summary() + "; load only the sub-modules that fit with modules: [...]")
        log.info(report.summary())
        model.adapter_report = report
    return model


def make_objective(model: Any, problem: Any, loss: str | Mapping | None, metrics: list | None) -> Objective:
    """The objective: the configuration's loss (a name, or {name, class_weights}) and metrics, else the
    model's (autoencoders), else the problem's; checked to suit the task the model serves on this problem."""
    name, weights = (loss.get("name"), loss.get("class_weights")) if isinstance(loss, Mapping) else (loss, None)
    objective = Objective(name or model.default_loss or problem.default_loss,
                          tuple(metrics if metrics is not None else model.default_metrics or problem.default_metrics),
                          target_field=model.target_field, class_weights=weights)
    check_task(objective.loss_name, objective.metric_names, model.task,
               f"the model {type(model).__name__} on the problem {problem.name}")
    objective.weigh(model.data_definitions)
    return objective


def problem_statistics(problem: Any) -> Any:
    """The problem's own per-batch statistics function, or None when it adds none (most problems)."""
    return problem.batch_statistics if type(problem).batch_statistics is not Problem.batch_statistics else None


def load_model(path: str | Path, key: str = "--m") -> Model:
    """A model from a bundle folder or a PyroSys checkpoint, in evaluation mode."""
    location = Path(path)
    if location.is_dir():
        if not (location / BUNDLE_FILE).is_file():
            raise ConfigError(f"this folder is not a model bundle (it has no {BUNDLE_FILE})", file=str(path), key=key,
                              hint=f"Name <experiment>/{Experiment.MODELS}/{Experiment.BUNDLE} or a .ckpt file")
        return Model.load(location)
    return Model.from_checkpoint(read_checkpoint(location, key=key), str(path))


# -- training ------------------------------------------------------------------------------------------

def optimization(plan: TrainingPlan, model: Any) -> Any:
    """The optimiser (and scheduler) the configuration names, built now so that mistakes show early."""
    optimizer = instantiate(plan.optimizer, "optimizer", model.parameters(), given=("params",),
                            key="training.optimizer")          # (files_named names the file that set the key)
    if plan.scheduler is None:
        return lambda _: optimizer
    scheduler = instantiate(plan.scheduler, "scheduler", optimizer, given=("optimizer",), key="training.scheduler")
    return lambda _: {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": plan.monitor}}


def build_callbacks(plan: TrainingPlan) -> list:
    """Terminal conditions and the configured callbacks, each checked to be a Lightning callback."""
    callbacks: list = []
    if plan.loss_stop is not None:
        callbacks.append(LossStop(plan.loss_stop, plan.logging_interval))
    if plan.early_stopping is not None:
        spec = {"name": "EarlyStopping", "monitor": plan.monitor, "mode": plan.mode, **plan.early_stopping}
        key = "training.terminal_conditions.early_stopping"
        callbacks.append(instantiate(spec, "callback", file=plan.source(key), key=key))
    for index, spec in enumerate(plan.callbacks):
        key = f"training.callbacks.{index}"
        callbacks.append(instantiate(spec, "callback", file=plan.source(key), key=key))
    return callbacks


def trainer_arguments(plan: TrainingPlan) -> dict:
    """pl.Trainer's arguments from the plan: limits, validation schedule, clipping, the user's own."""
    interval = plan.validation_interval
    arguments: dict[str, Any] = {
        "accelerator": AppState().accelerator, "devices": 1, "logger": False, "num_sanity_val_steps": 0,
        "enable_model_summary": False, "max_epochs": plan.epoch_limit or -1, "max_steps": plan.episode_limit or -1,
        "val_check_interval": interval, "check_val_every_n_epoch": None if isinstance(interval, int) else 1,
        "gradient_clip_val": plan.gradient_clipping,   # MI-Prometheus's meaning: each gradient value within +-this
        **({"gradient_clip_algorithm": "value"} if plan.gradient_clipping is not None else {}),
        "enable_progress_bar": sys.stdout.isatty(),   # a bar on a terminal; plain log lines otherwise
        "profiler": NoProfiler(),
    }
    user = dict(plan.trainer)
    source = plan.source("training.trainer")
    if "gradient_clip_val" in user and plan.gradient_clipping is not None:
        raise ConfigError("gradient clipping is set twice", file=source, key="training.trainer.gradient_clip_val",
                          hint="Keep either training.gradient_clipping or training.trainer.gradient_clip_val")
    check_arguments(pl.Trainer, user, file=source, key="training.trainer")
    check_trainer(arguments, user, source)
    return {**arguments, **user}


def trainer_refusal(arguments: dict) -> str | None:
    """Why pl.Trainer refuses these arguments (a throwaway one is built, and never run), or None."""
    try:
        with warnings.catch_warnings():            # the run's own trainer says them once
            warnings.simplefilter("ignore")
            pl.Trainer(**arguments)
    except (MisconfigurationException, ValueError, TypeError, RuntimeError) as error:
        return str(error).strip().rstrip(".!") or type(error).__name__
    return None


def check_trainer(own: dict, user: dict, source: str | None) -> None:
    """Refuse what pl.Trainer would refuse only once the experiment folder exists (a precision it does not
    know, an accelerator this machine lacks), naming the key: the first one of training.trainer that adds
    the refusal, or --gpu."""
    refusal = trainer_refusal({**own, **user})
    if refusal is None:
        return
    if trainer_refusal(own) is not None:       # PyroSys's own arguments were checked, but for --gpu's accelerator
        raise ConfigError(f"pl.Trainer refuses the accelerator '{own['accelerator']}': {refusal}", file=COMMAND_LINE,
                          key="--gpu", hint="Leave out --gpu on a machine without a GPU")
    added: dict = {}
    for name, value in user.items():
        added[name] = value
        if trainer_refusal({**own, **added}) is not None:
            break
    raise ConfigError(f"pl.Trainer refuses its arguments: {refusal}", file=source, key=f"training.trainer.{name}",
                      hint="Correct or remove this argument (pl.Trainer's documentation lists its values)")


def checkpointing(plan: TrainingPlan, models_dir: Path) -> ModelCheckpoint:
    """models/best.ckpt by the monitored value, and models/last.ckpt at every validation."""
    return ModelCheckpoint(dirpath=models_dir, filename=Path(Experiment.BEST).stem, monitor=plan.monitor,
                           mode=plan.mode, save_top_k=1, save_last=True, auto_insert_metric_name=False,
                           enable_version_counter=False)


def trainer(plan: TrainingPlan, parts: Setup, folder: Path, collector: StatisticsCollector,
            callbacks: list) -> pl.Trainer:
    """The pl.Trainer of a run: statistics first, then checkpoints, then the configured callbacks; a
    signal stops it at the end of a batch, after writing the last checkpoint."""
    experiment = Experiment(folder)
    on_ray = ray_train.on_workers()
    arguments = ray_train.worker_arguments(parts.arguments) if on_ray else dict(parts.arguments)
    plugins = [*arguments.pop("plugins", []), AtomicCheckpointIO()]       # (Ray's cluster environment on its workers)
    trainer_ = pl.Trainer(**arguments, default_root_dir=str(folder), plugins=plugins,
                          callbacks=[collector, checkpointing(plan, experiment.models_dir), *callbacks,
                                     *TrialPruning.from_environment(plan.monitor),
                                     *TuneReport.from_environment(plan.monitor), *RayTrainReport.from_environment(),
                                     DeferInterruptions(experiment.last_checkpoint), *bar(parts.arguments, callbacks)])
    return ray_train.prepared(trainer_) if on_ray else trainer_


def bar(arguments: dict, callbacks: list) -> list:
    """PyroSys's progress bar (numbers on it) when the run shows one and no configured callback is a bar."""
    configured = any(isinstance(callback, pl.callbacks.ProgressBar) for callback in callbacks)
    return [] if configured or not arguments.get("enable_progress_bar", True) else [TrainingBar()]


def sinks(plan: TrainingPlan, experiment: Experiment, outdir: Path, callbacks: list,
          resume: Resume | None = None) -> tuple[list, list, Any]:
    """Where statistics go (CSV and log lines always; TensorBoard at its level; MLflow) and the callbacks
    that feed them, and the MLflow sink (None when off); a resumed run goes on in its TensorBoard folder
    and MLflow run."""
    result: list = [CsvSink({table: experiment.csv(table) for table in CSV_FILES if table != "testing"}),
                    LogSink()]
    mlflow = None
    if plan.mlflow is not None:
        earlier = (resume.mlflow if resume else None) or {}
        uri = earlier.get("tracking_uri") or plan.mlflow["tracking_uri"] or default_tracking_uri(outdir)
        mlflow = MLflowSink(uri, plan.mlflow["experiment_name"] or plan.problem.name,
                            plan.mlflow["run_name"] or f"{plan.model.name}_{experiment.folder.name}",
                            artifact_root=None if plan.mlflow["tracking_uri"] else outdir / "mlflow" / "artifacts",
                            run_id=earlier.get("run_id"), run_file=experiment.mlflow_run_file,
                            grid=getattr(Grid.holding(experiment.folder), "folder", None))
        result.append(mlflow)
        if resume and not earlier.get("run_id"):      # the interrupted run never reached MLflow: log its rows now
            mlflow.replay(experiment.folder, resume.episode)
    if plan.tensorboard is not None:
        board = TensorBoardSink(experiment.tensorboard_dir, purge_step=resume.episode + 1 if resume else None,
                                configuration=None if resume else dump_yaml(plan.configuration))
        result.append(board)
        if plan.tensorboard >= 1:
            callbacks = [*callbacks, TensorBoardHistograms(board, plan.tensorboard, plan.logging_interval)]
    return result, callbacks, mlflow
