"""Jobs: a worker's run inside a grid's pool process (or a Ray task), as its console command would run,
its output sent to the run's log; what the grid records of it. The grids name the worker they run
(`trainer`, `tester`), found in the workers' registry, so that no command imports another.

Light on purpose: the grid's own process imports this module for PRELOAD without torch; the pool
processes import what PRELOAD names before their first job.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pyrosys.app_state import AppState
from pyrosys.configuration.loading import load_yaml
from pyrosys.configuration.param_registry import ParamRegistry
from pyrosys.factory import resolve
from pyrosys.folders.experiment import TRIAL_ENV, TUNE_ENV, Experiment
from pyrosys.tracking.tables import SPREAD
from pyrosys.workers.worker import configure_console_logging, outcome

# imported once by every pool worker, so that a run imports nothing heavy
PRELOAD = ("torch", "pytorch_lightning", "tensorboardX", "mlflow.tracking", "mlflow.store.tracking.sqlalchemy_store",
           "safetensors.torch", "matplotlib.pyplot",
           "pyrosys.models", "pyrosys.problems", "pyrosys.callbacks.statistics", "pyrosys.callbacks.tensorboard",
           "pyrosys.tracking.mlflow_sink", "pyrosys.callbacks.checkpoint", "pyrosys.tracking.plots",
           "pyrosys.workers.pipeline.build", "pyrosys.workers.pipeline.fit", "pyrosys.workers.pipeline.test",
           "pyrosys.workers.pipeline.record", "pyrosys.workers.trainer", "pyrosys.workers.tester")
TRAIN_JOB = "pyrosys.workers.pipeline.jobs:train_job"
TEST_JOB = "pyrosys.workers.pipeline.jobs:test_job"


def say_starting(processes: int) -> None:
    """Before a pool's first job: its processes import PRELOAD first (seconds), so say so."""
    print(f"[pyrosys-grid] starting {processes} worker process{'es' if processes > 1 else ''} (each imports torch "
          f"and Lightning once, before its first run)", flush=True)


@contextlib.contextmanager
def output_to(path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (Python's and the C level's) to `path` for a while."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a", encoding="utf-8") as stream:
        os.dup2(stream.fileno(), 1)
        os.dup2(stream.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def fresh_process_state() -> None:
    """Forget what the previous run left in this process (singletons, its trial's reporting variables)."""
    ParamRegistry.reset()
    AppState.reset()
    os.environ.pop(TRIAL_ENV, None)
    os.environ.pop(TUNE_ENV, None)


def run_worker(name: str, arguments: list[str], log: Path, threads: int,
               environment: dict[str, str] | None = None) -> dict[str, Any]:
    """Run the worker registered as `name` in this process, as its console command would, output to
    `log`; how it went: completed, or failed with the reason (a configuration error's paragraph, the
    diverged loss, an exception's last line)."""
    import torch      # the pool preloaded it

    torch.set_num_threads(max(1, int(threads)))
    fresh_process_state()
    os.environ.update(environment or {})
    worker = resolve({"name": name}, "worker")()
    with output_to(log):
        try:
            args = worker.parser().parse_args(arguments)
            configure_console_logging(args.log_level)
            code, reason = outcome(worker.run, args)
        except SystemExit as error:                      # argparse refused the flags
            code, reason = 2, f"the flags were refused (exit status {error.code})"
        except Exception as error:  # noqa: BLE001 - one run's failure must not end the grid
            text = str(error).strip()
            code, reason = 1, f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"
            traceback.print_exc()
    fresh_process_state()
    return {"status": "completed" if code == 0 else "failed",
            "reason": reason or ("" if code == 0 else f"exit status {code}")}


def train_job(job: dict[str, Any]) -> dict[str, Any]:
    """One grid run: the trainer, in this process, into the folder the grid named for it."""
    trial = job.get("trial") or {}          # a search's first repetition of a trial: reports to its study's pruner
    environment = {TRIAL_ENV: json.dumps(trial)} if "trial_id" in trial else {}
    if job.get("tune"):                                                  # a Ray Tune trial's: reports to Tune
        environment[TUNE_ENV] = json.dumps({"folder": job["folder"]})
    result = run_worker("trainer", job["arguments"], Path(job["log"]), job["threads"], environment)
    experiment = Experiment(job["folder"])
    result["folder"] = str(experiment.folder) if experiment.folder.is_dir() else None
    if experiment.status_file.is_file():
        status = experiment.read_status()
        result["seconds"] = status.get("seconds")
        if status.get("status") == "pruned" and result["status"] == "completed":
            result.update(status="pruned", reason=status.get("reason", "pruned"))
    return result


def test_job(job: dict[str, Any]) -> dict[str, Any]:
    """One run's test: the tester, in this process; the whole-set statistics of its newest test (with
    --n, their mean and std over the repeats)."""
    result = run_worker("tester", job["arguments"], Path(job["log"]), job["threads"])
    tests = Experiment(job["folder"]).testing_folders()
    if result["status"] == "completed" and tests:
        values = load_yaml(tests[-1].result_file())
        result["statistics"] = {}
        for name, value in values.items():
            if name in ("repeats", "batches", "samples") or name.endswith(SPREAD):
                continue
            if isinstance(value, dict):
                result["statistics"].update({name: value["mean"], f"{name}_std": value["std"]})
            else:
                result["statistics"][name] = value
        result["folder"] = str(tests[-1].folder)
    return result
