"""Console: what a run says as it goes, so that no step is a silence (loading the components, building
them, testing the best model), and the one-screen summary a trained run ends with.

Light on purpose (no torch): `resolve` says what it loads before the components import torch. Steps
before the experiment folder exists are printed on stdout, so that a refusal stays the one paragraph on
stderr; later steps are log lines, which reach the run's pyrosys.log too.
"""
from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pyrosys.folders.experiment import Experiment
from pyrosys.tracking.tables import read_rows

if TYPE_CHECKING:                      # fit imports torch; this module stays light
    from pyrosys.workers.pipeline.fit import Fitted
    from pyrosys.workers.pipeline.resolve import TrainingPlan

log = logging.getLogger("pyrosys.trainer")


def step(message: str) -> None:
    """Say a step of a run at once, on stdout (once: a multi-process run's other processes keep quiet)."""
    if os.environ.get("LOCAL_RANK", "0") == "0":
        print(f"[pyrosys] {message}", flush=True)


def component_name(section: Any) -> str:
    """A configured component's name (`name:`, or the class of `_target_:`), as the user wrote it."""
    if not isinstance(section, Mapping):
        return "?"
    name = section.get("name") or str(section.get("_target_") or "?").rpartition(".")[2]
    return str(name)


def say_loading(tree: Mapping) -> None:
    """Before the components are imported (torch, Lightning: seconds): which ones."""
    step(f"loading components: problem {component_name(tree.get('problem'))}, "
         f"model {component_name(tree.get('model'))}")


def say_loading_model(path: str) -> None:
    """Before a saved model is read (torch, Lightning and its components are imported first: seconds)."""
    step(f"loading {path} (torch, Lightning and its components)")


def split_size(problem: Any, phase: str) -> str:
    """A phase's size as it can be told before reading it: its samples (a DataLoader's dataset, in-memory
    batches' split), else its batches (a generated problem's loader of whole batches, `batch_size=None`)."""
    loader = problem.loader(phase)
    samples = getattr(loader, "dataset", None) or getattr(loader, "split", None)
    if getattr(loader, "batch_size", 1) is None:          # its dataset's items are batches
        samples = None
    for sized, unit in ((samples, "samples"), (loader, "batches")):
        try:
            return f"{len(sized)} {unit}"
        except TypeError:
            continue
    return "size unknown"


def say_testing(what: str, problem: Any) -> None:
    """Before a test: what is tested, and on how much data."""
    log.info("testing %s on the test split (%s)", what, split_size(problem, "test"))


def best_validation(rows: Sequence[Mapping[str, str]], monitor: str, mode: str) -> dict[str, str] | None:
    """The validation row with the best monitored value (the first of equals, as checkpoints keep it)."""
    column = monitor.removeprefix("val_")
    scored = [(float(row[column]), index) for index, row in enumerate(rows) if row.get(column) not in (None, "")]
    scored = [(value, index) for value, index in scored if not math.isnan(value)]
    if not scored:
        return None
    best = min(scored, key=lambda pair: (pair[0] if mode == "min" else -pair[0], pair[1]))
    return dict(rows[best[1]])


def validation_values(row: Mapping[str, str], monitor: str) -> str:
    """A validation row's statistics as val_<name> values, the monitored one first."""
    names = sorted((key for key in row if key not in ("episode", "epoch")), key=lambda key: f"val_{key}" != monitor)
    return "  ".join(f"val_{name} {float(row[name]):.6g}" for name in names if row[name] not in (None, ""))


def summary_lines(experiment: Experiment, reason: str, monitor: str, mode: str, seconds: float,
                  training_seconds: float) -> list[str]:
    """The summary of a trained run: its folder, why it stopped, its best validation and its model."""
    best = best_validation(read_rows(experiment.csv("validation")), monitor, mode)
    side = "lowest" if mode == "min" else "highest"
    lines = [f"summary of {experiment.folder}",
             f"  stopped: {reason}; {seconds:.1f} s in all, {training_seconds:.1f} s of it training"]
    if best is not None:
        lines.append(f"  best: epoch {best.get('epoch')}, episode {best.get('episode')} ({side} {monitor}): "
                     f"{validation_values(best, monitor)}")
    lines.append(f"  model: {experiment.bundle_dir.relative_to(experiment.folder)} (bundle), "
                 f"{experiment.best_checkpoint.relative_to(experiment.folder)}")
    return lines


def say_summary(experiment: Experiment, plan: TrainingPlan, fitted: Fitted) -> None:
    """The summary of a trained run, on stdout; the test values and the results folder follow it."""
    seconds = time.perf_counter() - fitted.started
    for line in summary_lines(experiment, fitted.reason, plan.monitor, plan.mode, seconds, fitted.fit_seconds):
        step(line)
