"""Fit: Lightning's fit of a built run, then the best weights back in the model and saved as its bundle;
the same fit in a multi-process run's other processes; and the dry run that trains nothing."""
from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch.distributed
from pytorch_lightning.utilities.model_summary import ModelSummary

from pyrosys.callbacks.checkpoint import read_checkpoint
from pyrosys.callbacks.statistics import StatisticsCollector
from pyrosys.callbacks.terminal_conditions import stop_reason
from pyrosys.data_dict import batch_size
from pyrosys.folders.experiment import HANDOVER_ENV, Experiment
from pyrosys.folders.resume import resume_point
from pyrosys.workers.pipeline.build import Resume, Run, Setup, problem_statistics, trainer
from pyrosys.workers.pipeline.resolve import TrainingPlan

log = logging.getLogger("pyrosys.trainer")


@dataclass
class Fitted:
    """How a fit ended."""

    reason: str          # epoch_limit, episode_limit, loss_stop or early_stopping, with its figure
    epoch: int
    episode: int
    started: float       # time.perf_counter() when the fit started
    fit_seconds: float


def fit(run: Run, parts: Setup, plan: TrainingPlan, resume: Resume | None) -> Fitted:
    """Fit (from the resume point, if any); without any validation yet, validate the final weights; load
    the best weights into the model and save them as the experiment's bundle."""
    experiment, trainer_ = run.experiment, run.trainer
    started = time.perf_counter()
    with handed_over(experiment.folder):
        trainer_.fit(parts.model, datamodule=parts.problem, ckpt_path=str(resume.checkpoint) if resume else None)
    fit_seconds = round(time.perf_counter() - started, 3)
    leave_process_group()                              # the other processes have ended theirs: test alone
    reason = stop_reason(trainer_, plan.epoch_limit, plan.episode_limit)
    log.info("training ended: %s", reason)
    if not experiment.best_checkpoint.is_file():       # stopped before any validation: validate the final weights
        trainer_.validate(parts.model, datamodule=parts.problem, verbose=False)
        for path in (experiment.best_checkpoint, experiment.last_checkpoint):
            trainer_.save_checkpoint(path, weights_only=False)
    best = read_checkpoint(experiment.best_checkpoint,
                           key=str(experiment.best_checkpoint.relative_to(experiment.folder)))
    parts.model.load_state_dict(parts.model.completed_state(best, str(experiment.best_checkpoint)))
    parts.model.save(experiment.bundle_dir)
    return Fitted(reason, trainer_.current_epoch, trainer_.global_step, started, fit_seconds)


@contextlib.contextmanager
def handed_over(folder: Path) -> Iterator[None]:
    """For the fit's duration, name `folder` to the DDP processes Lightning starts (they train into it); then
    put the variable back as it was, so that a later run in this process, or a command it starts, does not
    take this run's folder for its own."""
    earlier = os.environ.get(HANDOVER_ENV)
    os.environ[HANDOVER_ENV] = str(folder)
    try:
        yield
    finally:
        if earlier is None:
            os.environ.pop(HANDOVER_ENV, None)
        else:
            os.environ[HANDOVER_ENV] = earlier


# where a launcher says which process this is: torchrun (RANK, and LOCAL_RANK, GROUP_RANK per node), SLURM's
# srun (SLURM_PROCID), Lightning's own launcher for its devices and nodes (LOCAL_RANK, NODE_RANK), Ray Train
RANK_VARIABLES = ("RANK", "SLURM_PROCID", "GROUP_RANK", "NODE_RANK", "LOCAL_RANK")


def is_other_rank(arguments: Mapping[str, Any]) -> bool:
    """Whether this process is one of a multi-process run's others, on this node or another: the run is one of
    several processes (pl.Trainer's `num_nodes` x `devices`, or a first process that handed its folder over) and
    a rank a launcher gave this process is above 0. Only the first process writes the experiment folder; a
    process of a launcher's many that runs a one-process experiment (`srun -n 4` of four runs) writes its own."""
    several = bool(os.environ.get(HANDOVER_ENV)) or configured_processes(arguments) > 1
    return several and any(int(os.environ.get(name) or 0) > 0 for name in RANK_VARIABLES)


def configured_processes(arguments: Mapping[str, Any]) -> int:
    """How many processes pl.Trainer's arguments ask for: nodes x devices; `devices` that depend on the machine
    ('auto', -1) count as what the launcher says (WORLD_SIZE)."""
    devices, nodes = arguments.get("devices", 1), int(arguments.get("num_nodes") or 1)
    if isinstance(devices, (list, tuple)):
        return nodes * len(devices)
    if isinstance(devices, int) and devices > 0 or isinstance(devices, str) and devices.strip().isdigit():
        return nodes * int(devices)
    return max(nodes, int(os.environ.get("WORLD_SIZE") or 1))


def fit_other_rank(plan: TrainingPlan, parts: Setup, resume: str | None = None) -> int:
    """A process other than the first: the same fit, writing nothing, from the same checkpoint as the first
    when the run is resumed. On the first one's node it trains in the folder that process handed over;
    elsewhere (another node) in a scratch folder, as Lightning needs one; checkpoints are written by the first
    process alone, in its folder."""
    collector = StatisticsCollector([], plan.logging_interval, problem_statistics(parts.problem))
    checkpoint = str(resume_point(Experiment(resume)).checkpoint) if resume else None
    with contextlib.ExitStack() as stack:
        handed = os.environ.get(HANDOVER_ENV)
        folder = Path(handed) if handed else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pyrosys-")))
        trainer(plan, parts, folder, collector, parts.callbacks).fit(parts.model, datamodule=parts.problem,
                                                                     ckpt_path=checkpoint)
    leave_process_group()
    return 0


def leave_process_group() -> None:
    """After a multi-process fit, every process leaves the process group (then the first one tests alone), so
    that none ends with its connections to the others still open."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def dry_run(model: Any, problem: Any) -> int:
    """One training batch forward and backward, the model summary and its size; nothing is written."""
    batch = next(iter(problem.loader("train")))
    loss = model.objective.loss(model.forward_batch(batch), batch)
    loss.backward()
    gradients = sum(p.grad is not None for p in model.parameters() if p.requires_grad)
    print(ModelSummary(model, max_depth=2))
    print(f"[pyrosys] dry run: {model.__class__.__name__} on {problem.name}, one batch of "
          f"{batch_size(batch)}: loss {float(loss.detach()):.6f}, gradients for {gradients} parameter tensors; "
          f"nothing was trained or written")
    return 0

