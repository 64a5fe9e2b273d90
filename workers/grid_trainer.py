"""pyrosys-grid-trainer: run the experiments of a folder of configs or of a grid file, in parallel.

    pyrosys-grid-trainer --c configs/digits/grid.yaml [--max-concurrent N] [--backend local|ray]
    pyrosys-grid-trainer --resume experiments/grid_<time>

Every run is an ordinary experiment folder in `<outdir>/grid_<time>[_<tag>]/`, beside grid.yaml (the
expanded plan), grid_status.csv (each run's state and, for a failed run, why) and logs/ (each run's
console output). A run that raises, diverges or dies is marked failed at once; the others go on.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pyrosys.errors import ConfigError
from pyrosys.workers.worker import base_parser, run

# imported once by every pool worker, so that a run imports nothing heavy
PRELOAD = ("torch", "pytorch_lightning", "tensorboardX", "mlflow.tracking", "mlflow.store.tracking.sqlalchemy_store",
           "safetensors.torch", "matplotlib.pyplot",
           "pyrosys.models", "pyrosys.problems", "pyrosys.callbacks.statistics", "pyrosys.callbacks.tensorboard",
           "pyrosys.tracking.mlflow_sink", "pyrosys.callbacks.checkpoint", "pyrosys.tracking.plots", "pyrosys.workers.trainer",
           "pyrosys.workers.tester")
LOCK_FILE = "grid.lock"


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
    """Forget what the previous run left in this process (singletons, the DDP hand-over variable)."""
    from pyrosys.app_state import AppState
    from pyrosys.configuration.param_registry import ParamRegistry
    from pyrosys.workers.trainer import EXPERIMENT_ENV

    ParamRegistry.reset()
    AppState.reset()
    os.environ.pop(EXPERIMENT_ENV, None)


def call_worker(main: Any, parser: argparse.ArgumentParser, arguments: list[str], log: Path,
                threads: int) -> dict[str, Any]:
    """Run a worker's main function in this process, as its console command would, output to `log`;
    how it went: completed, or failed with the reason (a configuration error's paragraph, the
    diverged loss, an exception's last line)."""
    import torch

    from pyrosys.workers.worker import configure_console_logging, outcome

    torch.set_num_threads(max(1, int(threads)))
    fresh_process_state()
    with output_to(log):
        try:
            args = parser.parse_args(arguments)
            configure_console_logging(args.log_level)
            code, reason = outcome(main, args)
        except SystemExit as error:                      # argparse refused the flags
            code, reason = 2, f"the flags were refused (exit status {error.code})"
        except Exception as error:  # noqa: BLE001 - one run's failure must not end the grid
            text = str(error).strip()
            code, reason = 1, f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"
            traceback.print_exc()
    status = "completed" if code == 0 else "failed"
    reason = reason or ("" if code == 0 else f"exit status {code}")
    from pyrosys.app_state import AppState

    folder = AppState().experiment_dir
    fresh_process_state()
    return {"status": status, "reason": reason, "folder": str(folder) if folder else None}


def train_run(job: dict[str, Any]) -> dict[str, Any]:
    """One grid run in a pool worker (or a Ray task): the trainer, in this process."""
    from pyrosys.workers import trainer

    result = call_worker(trainer.train, trainer.parser(), job["arguments"], Path(job["log"]), job["threads"])
    status_file = Path(job["folder"]) / "status.json"
    if status_file.is_file():
        status = json.loads(status_file.read_text())
        result["seconds"] = status.get("seconds")
    return result


def grid_folder(args: argparse.Namespace) -> Path:
    """A fresh `<outdir>/grid_<time>[_<tag>]` folder."""
    from pyrosys.folders.experiment import create_unique_folder, timestamp

    return create_unique_folder(Path(args.outdir or "experiments"),
                                f"grid_{timestamp()}" + (f"_{args.savetag}" if args.savetag else ""))


@contextlib.contextmanager
def grid_lock(folder: Path) -> Iterator[None]:
    """One grid worker per grid folder: a second one is refused instead of running the same runs twice."""
    import fcntl

    with open(folder / LOCK_FILE, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            raise ConfigError(f"another grid worker is running this grid (process {lock.read().strip() or '?'})",
                              file=str(folder), key="--resume",
                              hint="Wait for it to finish, or stop it first") from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        yield


def next_attempt(run: Any, row: dict[str, Any], folder: Path) -> list[str]:
    """The trainer flags of a run's next attempt: `--resume` for an interrupted run that left a
    last.ckpt, else a fresh experiment folder (a failed attempt's folder is kept, for its logs)."""
    previous = Path(row["folder"]) if row.get("folder") else None
    if previous is not None and (previous / "models" / "last.ckpt").is_file():
        state = json.loads((previous / "status.json").read_text()).get("status") \
            if (previous / "status.json").is_file() else None
        if state == "running":                 # its process died mid-run: continue where it stopped
            return ["--resume", str(previous)]
    name = run.name
    attempt = 0
    while (folder / name).exists():
        attempt += 1
        name = f"{run.name}_{attempt}"
    return [*run.trainer_arguments(), "--outdir", str(folder), "--run-name", name]


def recheck(run: Any) -> None:
    """A run whose configuration failed to resolve is checked again (the file may have been fixed)."""
    from pyrosys.configuration.loading import load_configuration

    if run.error is None:
        return
    try:
        load_configuration(run.configs, run.overrides, run.choices)
        run.error = None
    except ConfigError as error:
        run.error = error.paragraph()


class Progress:
    """The live summary: runs done, failed, running and waiting, and an ETA, on one line per change."""

    def __init__(self, status: Any, total: int, concurrency: int) -> None:
        self.status, self.total, self.concurrency = status, total, concurrency
        self.started, self.durations = time.monotonic(), []

    def line(self, note: str = "") -> None:
        counts = self.status.counts()
        left = counts["pending"] + counts["running"]
        eta = ""
        if self.durations and left:
            mean = sum(self.durations) / len(self.durations)
            eta = f", ETA {dt.timedelta(seconds=round(mean * left / self.concurrency))}"
        print(f"[pyrosys-grid] {counts['completed']} completed, {counts['failed']} failed, {counts['running']} running, "
              f"{counts['pending']} waiting{eta}" + (f" | {note}" if note else ""), flush=True)


def now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def grid_train(args: argparse.Namespace) -> int:
    """plan -> folder -> run every run not completed (pool or Ray) -> record each at once -> summary."""
    from pyrosys.execution.grid_plan import GridPlan, GridStatus, command_line_overrides, expand

    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise ConfigError(f"--max-concurrent is at least 1, not {args.max_concurrent}", file="the command line",
                          key="--max-concurrent")
    if args.resume:
        folder = Path(args.resume)
        plan = GridPlan.read(folder)
    else:
        if not args.config:
            raise ConfigError("no grid was given", file="the command line", key="--c",
                              hint="Name a folder of configs or a grid file with --c, or --resume GRID_DIR")
        plan = expand(args.config, command_line_overrides(args.overrides), seed=args.seed)
        folder = grid_folder(args)
        (folder / "grid.yaml").write_text(plan.to_yaml(), encoding="utf-8")
    with grid_lock(folder):
        status = GridStatus(folder, plan.runs)
        todo = [run for run in plan.runs if status.rows[run.name]["status"] != "completed"]
        for run in todo:
            recheck(run)
            if run.error:
                status.rows[run.name].update(status="failed", reason=run.error, finished=now())
        status.save()
        jobs = []
        for run in (r for r in todo if not r.error):
            arguments = next_attempt(run, status.rows[run.name], folder)
            target = arguments[arguments.index("--resume") + 1] if "--resume" in arguments else \
                str(folder / arguments[arguments.index("--run-name") + 1])
            jobs.append({"name": run.name, "folder": target, "log": str(folder / "logs" / f"{run.name}.log"),
                         "arguments": [*arguments, "--ll", args.log_level]})
            status.rows[run.name].update(status="pending", reason="", folder=target, pid="")
        status.save()
        concurrency = max(1, min(args.max_concurrent or plan.max_concurrent_runs or default_concurrency(args.gpu),
                                 max(1, len(jobs))))
        threads = max(1, (os.cpu_count() or 1) // concurrency)
        for job in jobs:
            job["threads"] = threads
        print(f"[pyrosys-grid] {folder}: {len(plan.runs)} runs, {len(jobs)} to run, {concurrency} at a time, "
              f"{threads} torch thread(s) each, backend {args.backend}", flush=True)
        progress = Progress(status, len(plan.runs), concurrency)
        progress.line()
        execute(jobs, args, concurrency, lambda event: record(event, status, progress))
        counts = status.counts()
    print(f"[pyrosys-grid] done: {counts['completed']} completed, {counts['failed']} failed; "
          f"status in {folder / 'grid_status.csv'}", flush=True)
    print(f"[pyrosys-grid] results: {folder}", flush=True)
    return 1 if counts["failed"] else 0


def default_concurrency(gpu: bool) -> int:
    """One run per core, or one per GPU when the runs use GPUs."""
    if gpu:
        gpus = visible_gpus()
        if gpus:
            return len(gpus)
    return os.cpu_count() or 1


def visible_gpus() -> list[str]:
    """The CUDA devices this machine has (without importing torch in the grid's own process)."""
    import shutil
    import subprocess

    if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        return [d for d in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if d.strip()]
    if not shutil.which("nvidia-smi"):
        return []
    listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False).stdout
    return [str(i) for i, line in enumerate(listing.splitlines()) if line.startswith("GPU ")]


def execute(jobs: list[dict], args: argparse.Namespace, concurrency: int, on_event: Any) -> None:
    """Run the jobs on the chosen backend: a local pool of long-lived processes, or Ray."""
    if not jobs:
        return
    if args.backend == "ray":
        from pyrosys.execution.ray_backend import run_on_ray

        run_on_ray("pyrosys.workers.grid_trainer:train_run", jobs, concurrency, args.address, on_event,
                   gpus_per_job=1 if args.gpu else 0)
        return
    from pyrosys.execution.process_pool import ProcessPool

    gpus = visible_gpus() if args.gpu else []
    environments = [{"CUDA_VISIBLE_DEVICES": gpus[i % len(gpus)]} for i in range(concurrency)] if gpus else None
    for job in jobs:
        if args.gpu:
            job["arguments"].append("--gpu")
    ProcessPool(concurrency, "pyrosys.workers.grid_trainer:train_run", PRELOAD, environments).run(jobs, on_event)


def record(event: Any, status: Any, progress: Progress) -> None:
    """Write one pool event to grid_status.csv at once, and say it."""
    name = event.job["name"]
    row = status.rows[name]
    if event.kind == "started":
        status.update(name, status="running", pid=event.pid or "", started=now(),
                      attempts=int(row.get("attempts") or 0) + 1, reason="")
        progress.line(f"started {name}")
        return
    if event.kind == "died":
        code = event.result
        reason = f"the run's process died (killed by signal {-code})" if isinstance(code, int) and code < 0 \
            else f"the run's process died ({code})" if isinstance(code, str) \
            else f"the run's process died (exit status {code})"
        result = {"status": "failed", "reason": reason}
    else:
        result = event.result
    progress.durations.append(event.seconds or 0.0)
    status.update(name, status=result["status"], reason=result.get("reason", ""), pid="", finished=now(),
                  seconds=round(event.seconds or 0.0, 3), folder=result.get("folder") or row.get("folder", ""))
    progress.line(f"{name} {result['status']}" + (f": {result['reason']}" if result.get("reason") else ""))


def parser() -> argparse.ArgumentParser:
    """The grid trainer's flags."""
    result = base_parser("pyrosys-grid-trainer",
                         "Train every experiment of a folder of configs or a grid file, several at a time.")
    result.add_argument("--c", "--config", dest="config", metavar="PATH", default=None,
                        help="a folder of experiment configs (recursively; _*.yaml and files without both a "
                             "problem and a model are skipped) or a grid file (grid_tasks, grid_search...)")
    result.add_argument("--resume", metavar="GRID_DIR", default=None,
                        help="run what is not completed in this grid; interrupted runs go on from last.ckpt")
    result.add_argument("--set", dest="overrides", metavar="KEY=VALUE", nargs="+", action="extend", default=[],
                        help="override configuration keys of every run, e.g. --set training.terminal_conditions."
                             "epoch_limit=3 (values are read as YAML)")
    result.add_argument("--outdir", metavar="DIR", default=None, help="where grid_<time>/ goes (default ./experiments)")
    result.add_argument("--savetag", metavar="TAG", default=None, help="suffix of the grid folder name")
    result.add_argument("--max-concurrent", type=int, default=None, metavar="N",
                        help="runs at a time (default: grid_settings.max_concurrent_runs, else one per core, "
                             "or one per GPU with --gpu)")
    result.add_argument("--backend", choices=("local", "ray"), default="local",
                        help="local: a pool of long-lived processes; ray: Ray tasks (pip install 'pyrosys[ray]')")
    result.add_argument("--address", metavar="HOST:PORT", default=None,
                        help="the Ray cluster to use (default: a local Ray instance)")
    result.add_argument("--seed", type=int, default=None,
                        help="seed of the seeds drawn for runs whose configuration has none")
    result.add_argument("--gpu", action="store_true", help="one run per GPU (CUDA_VISIBLE_DEVICES)")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of pyrosys-grid-trainer."""
    return run(grid_train, parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
