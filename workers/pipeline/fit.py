"""Fit: Lightning's fit of a built run, then the best weights back in the model and saved as its bundle;
the same fit in a multi-process run's other processes; and the dry run that trains nothing."""
from __future__ import annotations

import logging
import os
import time
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
    os.environ[HANDOVER_ENV] = str(experiment.folder)      # DDP's other processes train into this folder
    trainer_.fit(parts.model, datamodule=parts.problem, ckpt_path=str(resume.checkpoint) if resume else None)
    fit_seconds = round(time.perf_counter() - started, 3)
    end_other_ranks()
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


def is_other_rank() -> bool:
    """Whether this process is one of a multi-process run's others (not the one that writes the folder)."""
    return bool(os.environ.get(HANDOVER_ENV)) and int(os.environ.get("LOCAL_RANK", "0")) > 0


def fit_other_rank(plan: TrainingPlan, parts: Setup, resumed: str | None = None) -> int:
    """A DDP process other than the first: the same fit into the first process's folder, writing nothing; a
    resumed run's from the checkpoint the first process resumes (`resumed`: the --resume folder)."""
    folder = Path(os.environ[HANDOVER_ENV])
    collector = StatisticsCollector([], plan.logging_interval, problem_statistics(parts.problem))
    checkpoint = resume_point(Experiment(resumed)).checkpoint if resumed else None
    trainer(plan, parts, folder, collector, parts.callbacks).fit(parts.model, datamodule=parts.problem,
                                                                 ckpt_path=str(checkpoint) if checkpoint else None)
    return 0


def end_other_ranks() -> None:
    """After a multi-process fit, the first process tests alone: leave the process group."""
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

