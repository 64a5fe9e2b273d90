"""pyrosys-grid-trainer: run the experiments of a folder of configs or of a grid file, in parallel.

    pyrosys-grid-trainer --c configs/digits/grid.yaml [--max-concurrent N] [--backend local|ray]
    pyrosys-grid-trainer --resume experiments/grid_<time>

Every run is an ordinary experiment folder in `<outdir>/grid_<time>[_<tag>]/`, beside grid.yaml (the
expanded plan), grid_status.csv (each run's state and, for a failed run, why) and logs/ (each run's
console output). A run that raises, diverges or dies is marked failed at once; the others go on. The
runs are the trainer's, in a pool of long-lived processes (see pipeline.jobs); this process itself
imports neither torch nor Lightning.
"""
from __future__ import annotations

import argparse
import datetime as dt
import functools
import os
import shutil
import subprocess
import sys
import time
from typing import Any

from pyrosys.atomic import write_text_atomic
from pyrosys.configuration.loading import load_configuration
from pyrosys.errors import ConfigError
from pyrosys.execution.grid_plan import MAX_RUNS, GridPlan, GridRun, command_line_overrides, expand, trial_run
from pyrosys.execution.process_pool import ProcessPool
from pyrosys.execution.search import Search
from pyrosys.execution.search_plan import SearchSpec
from pyrosys.execution.study import optuna_module
from pyrosys.factory import register
from pyrosys.folders import shown
from pyrosys.folders.experiment import RESUMABLE_STATES, Experiment, now_iso, safe_name
from pyrosys.folders.grid import Grid, GridStatus
from pyrosys.workers.pipeline.jobs import PRELOAD, TRAIN_JOB, say_starting
from pyrosys.workers.pipeline.resolve import check_configuration_keys
from pyrosys.workers.worker import Worker


@register("worker", name="grid_trainer")
class GridTrainer(Worker):
    """Train every experiment of a folder of configs or a grid file, several at a time."""

    prog = "pyrosys-grid-trainer"

    def run(self, args: argparse.Namespace) -> int:
        """plan -> folder -> run every run not completed (pool or Ray) -> record each at once -> summary."""
        if args.max_concurrent is not None and args.max_concurrent < 1:
            raise ConfigError(f"--max-concurrent is at least 1, not {args.max_concurrent}", file="the command line",
                              key="--max-concurrent")
        if args.backend == "ray":          # Ray installed and its cluster answering, before anything is written
            from pyrosys.execution.tune_backend import check_ray
            check_ray(args.address)
        grid, plan = open_grid(args)
        if plan.search is not None:
            return run_search(grid, plan, args)
        with grid.lock():
            status = GridStatus(grid, plan.runs)
            jobs = plan_jobs(grid, plan, status, args.log_level)
            concurrency = max(1, min(args.max_concurrent or plan.max_concurrent_runs or default_concurrency(args.gpu),
                                     max(1, len(jobs))))
            threads = max(1, (os.cpu_count() or 1) // concurrency)
            for job in jobs:
                job["threads"] = threads
            print(f"[pyrosys-grid] {shown(grid.folder)}: {len(plan.runs)} runs, {len(jobs)} to run, "
                  f"{concurrency} at a time, {threads} torch thread(s) each, backend {args.backend}", flush=True)
            progress = Progress(status, len(plan.runs), concurrency)
            progress.line()
            execute(jobs, args, concurrency, lambda event: record(event, status, progress))
            counts = status.counts()
        print(f"[pyrosys-grid] done: {counts['completed']} completed, {counts['failed']} failed; "
              f"status in {shown(grid.status_file)}", flush=True)
        print(f"[pyrosys-grid] results: {shown(grid.folder)}", flush=True)
        return 1 if counts["failed"] else 0

    def add_flags(self, parser: argparse.ArgumentParser) -> None:
        """--c, --resume, --set, --outdir, --savetag, --max-concurrent, --backend, --address, --seed, --gpu, --yes."""
        parser.add_argument("--c", "--config", dest="config", metavar="PATH", default=None,
                            help="a folder of experiment configs (recursively; _*.yaml and files without both a "
                                 "problem and a model are skipped) or a grid file (grid_tasks, grid_search...)")
        parser.add_argument("--resume", metavar="GRID_DIR", default=None,
                            help="run what is not completed in this grid; interrupted runs go on from last.ckpt")
        parser.add_argument("--set", dest="overrides", metavar="KEY=VALUE", nargs="+", action="extend", default=[],
                            help="override configuration keys of every run, e.g. --set training.terminal_conditions."
                                 "epoch_limit=3 (values are read as YAML)")
        parser.add_argument("--outdir", metavar="DIR", default=None,
                            help="where grid_<time>/ goes (default ./experiments)")
        parser.add_argument("--savetag", metavar="TAG", default=None, help="suffix of the grid folder name")
        parser.add_argument("--max-concurrent", type=int, default=None, metavar="N",
                            help="runs at a time (default: grid_settings.max_concurrent_runs, else one per core, "
                                 "or one per GPU with --gpu)")
        parser.add_argument("--backend", choices=("local", "ray"), default="local",
                            help="local: a pool of long-lived processes; ray: Ray tasks, or for a search a Ray Tune "
                                 "experiment per study (pip install 'pyrosys[ray]')")
        parser.add_argument("--address", metavar="HOST:PORT", default=None,
                            help="the Ray cluster to use (default: a local Ray instance)")
        parser.add_argument("--seed", type=int, default=None,
                            help="seed of the seeds drawn for runs whose configuration has none")
        parser.add_argument("--gpu", action="store_true", help="one run per GPU (CUDA_VISIBLE_DEVICES)")
        parser.add_argument("--yes", action="store_true",
                            help=f"run a grid of more than {MAX_RUNS:,} runs (or its grid_settings.max_runs)")


def open_grid(args: argparse.Namespace) -> tuple[Grid, GridPlan]:
    """The grid folder and its plan: read back (--resume), or expanded and written into a new folder."""
    if args.resume:
        grid = Grid(args.resume)
        plan = GridPlan.read(grid)
        if plan.search is not None:
            from pyrosys.execution.tune_backend import check_backend
            check_backend(grid, args.backend)
        if plan.search is not None and args.config:    # the search as given again: the same, or refused
            check_same_search(plan, expand(args.config, command_line_overrides(args.overrides), seed=args.seed),
                              args.config)
        return grid, plan
    if not args.config:
        raise ConfigError("no grid was given", file="the command line", key="--c",
                          hint="Name a folder of configs or a grid file with --c, or --resume GRID_DIR")
    plan = expand(args.config, command_line_overrides(args.overrides), seed=args.seed, allow_large=args.yes)
    if plan.search is not None:
        check_search_space(plan)
        if args.backend == "ray":
            from pyrosys.execution.tune_backend import check_search
            check_search(SearchSpec(**plan.search), plan.source)
    grid = Grid.create(args.outdir or "experiments", safe_name(args.savetag, "--savetag"))
    write_text_atomic(grid.plan_file, plan.to_yaml())
    return grid, plan


def run_search(grid: Grid, plan: GridPlan, args: argparse.Namespace) -> int:
    """A search: trials asked as workers free up (or by Ray Tune), each run recorded at once and told to its
    study; the grid exits 1 when a trial's run failed."""
    with grid.lock():
        status = GridStatus(grid, plan.runs)
        spec = SearchSpec(**plan.search)
        total = spec.budget() * spec.repetitions * len(plan.bases)
        concurrency = max(1, min(args.max_concurrent or plan.max_concurrent_runs or default_concurrency(args.gpu),
                                 total))
        threads = max(1, (os.cpu_count() or 1) // concurrency)
        tail = ["--ll", args.log_level, *(["--gpu"] if args.gpu else [])]
        directions = {base.name: validation_mode(base) for base in plan.bases}
        print(f"[pyrosys-grid] {shown(grid.folder)}: a {spec.sampler} search of {spec.trials} trials x "
              f"{len(plan.bases)} stud{'y' if len(plan.bases) == 1 else 'ies'}, {concurrency} run(s) at a time, "
              f"{threads} torch thread(s) each, backend {args.backend}; studies in {shown(grid.study_file)}",
              flush=True)
        progress = Progress(status, total, concurrency)
        if args.backend == "ray":
            from pyrosys.execution.tune_backend import run_on_tune    # Ray Tune only for --backend ray
            run_on_tune(grid, plan, status, functools.partial(trial_job, str(grid.folder.resolve()), tail, threads),
                        TRAIN_JOB, directions, concurrency, args.address, lambda event: record(event, status, progress),
                        gpus_per_trial=1 if args.gpu else 0)
        else:
            run_local_search(grid, plan, status, directions, concurrency, threads, tail, progress)
        counts = status.counts()
    print(f"[pyrosys-grid] done: {counts['completed']} completed, {counts['pruned']} pruned, {counts['failed']} "
          f"failed; status in {shown(grid.status_file)}", flush=True)
    print(f"[pyrosys-grid] results: {shown(grid.folder)}", flush=True)
    return 1 if counts["failed"] else 0


def run_local_search(grid: Grid, plan: GridPlan, status: GridStatus, directions: dict[str, str], concurrency: int,
                     threads: int, tail: list[str], progress: Progress) -> None:
    """A search on the pool of long-lived processes: trials asked from the studies as workers free up."""
    def make_job(run: GridRun) -> dict[str, Any]:
        job = run_job(grid, run, status.rows[run.name], threads, tail)
        status.rows[run.name].update(status="pending", reason="", folder=job["folder"], pid="")
        return job

    search = Search(grid, plan, status, make_job, directions)

    def on_event(event: Any) -> None:
        record(event, status, progress)
        if event.kind != "started":
            search.finished(event.job, status.rows[event.job["name"]])

    say_starting(concurrency)
    ProcessPool(concurrency, TRAIN_JOB, PRELOAD, None).run(search.next_job, on_event)


def trial_job(grid_folder: str, tail: list[str], threads: int, run: GridRun) -> dict[str, Any]:
    """A search trial's job where Ray Tune runs it: its run's next attempt in the grid folder (a run that was
    interrupted goes on from its last.ckpt), flags `tail` added."""
    grid = Grid(grid_folder)
    folder = grid.folder / run.name
    return run_job(grid, run, {"folder": str(folder) if folder.is_dir() else ""}, threads, tail)


def run_job(grid: Grid, run: GridRun, row: dict[str, Any], threads: int, tail: list[str]) -> dict[str, Any]:
    """The job of a search run's next attempt (see next_attempt), its status row `row`, flags `tail` added."""
    target, arguments = next_attempt(run, row, grid)
    return {"name": run.name, "folder": target, "log": str(grid.log_of(run.name)), "threads": threads,
            "arguments": [*arguments, *tail]}


def validation_mode(run: GridRun) -> str:
    """min or max: the direction of a run's monitored validation statistic."""
    tree = load_configuration(run.configs, run.overrides, run.choices).tree
    return str((tree.get("validation") or {}).get("mode", "min"))


def check_search_space(plan: GridPlan) -> None:
    """Every space key of a search names a configuration key its runs accept, at both ends of its range (or
    its first and last choices): checked before any trial, a misspelt key with the nearest one."""
    spec = SearchSpec(**plan.search)
    optuna_module()                                   # installed, or refused with the pip command
    for base in plan.bases:
        for end in (0, -1):
            values = {key: entry["choices"][end] if "choices" in entry else entry["high" if end else "low"]
                      for key, entry in spec.space.items()}
            run = trial_run(base, values, 0, 0, 1)
            try:
                configuration = load_configuration(run.configs, run.overrides, run.choices)
                check_configuration_keys(configuration)
            except ConfigError as error:
                key = next((k for k in spec.space if error.key and (error.key == k or error.key.startswith(k + "."))),
                           None)
                if key is None:
                    raise
                raise ConfigError(f"{error.message} (with {key}: {values[key]!r})", file=plan.source,
                                  key=f"search.space.{key}", hint=error.hint) from None


def check_same_search(plan: GridPlan, given: GridPlan, source: str) -> None:
    """Refuse resuming a search with another search or other runs than the grid's, listing what differs."""
    changes = [f"search.{key}: {plan.search.get(key)!r} -> {value!r}" for key, value in (given.search or {}).items()
               if plan.search.get(key) != value]
    old = [(b.configs, b.overrides, b.choices) for b in plan.bases]
    if old != [(b.configs, b.overrides, b.choices) for b in given.bases]:
        changes.append("its tasks or grid_search differ")
    if given.search is None:
        changes.append("the file has no search")
    if changes:
        raise ConfigError("the grid file's search differs from the one this grid ran: " + "; ".join(changes),
                          file=source, key="search",
                          hint="Resume without --c (the grid keeps its search), or start a new grid")


def plan_jobs(grid: Grid, plan: GridPlan, status: GridStatus, log_level: str) -> list[dict[str, Any]]:
    """The jobs of every run not completed yet; runs whose configuration still fails are failed at once."""
    todo = [run for run in plan.runs if status.rows[run.name]["status"] != "completed"]
    for run in todo:
        recheck(run)
        if run.error:
            status.rows[run.name].update(status="failed", reason=run.error, finished=now_iso())
    jobs = []
    for run in (r for r in todo if not r.error):
        target, arguments = next_attempt(run, status.rows[run.name], grid)
        jobs.append({"name": run.name, "folder": target, "log": str(grid.log_of(run.name)),
                     "arguments": [*arguments, "--ll", log_level]})
        status.rows[run.name].update(status="pending", reason="", folder=target, pid="")
    status.save()
    return jobs


def next_attempt(run: GridRun, row: dict[str, Any], grid: Grid) -> tuple[str, list[str]]:
    """The folder and trainer flags of a run's next attempt: `--resume` for a run that was interrupted or
    whose process died, and left a last.ckpt; else a fresh experiment folder (a failed attempt's folder is
    kept, for its logs)."""
    previous = Experiment(row["folder"]) if row.get("folder") else None
    if previous is not None and not previous.folder.resolve().is_relative_to(grid.folder.resolve()):
        previous = None                  # a folder read from grid_status.csv is followed only inside the grid
    if previous is not None and previous.last_checkpoint.is_file() and previous.state() in RESUMABLE_STATES:
        return str(previous.folder), ["--resume", str(previous.folder)]
    name = grid.free_run_name(run.name)
    return str(grid.folder / name), [*run.trainer_arguments(), "--outdir", str(grid.folder), "--run-name", name]


def recheck(run: GridRun) -> None:
    """A run whose configuration failed to resolve is checked again (the file may have been fixed)."""
    if run.error is None:
        return
    try:
        load_configuration(run.configs, run.overrides, run.choices)
        run.error = None
    except ConfigError as error:
        run.error = error.paragraph()


class Progress:
    """The live summary: runs done, failed, running and waiting, and an ETA, on one line per change."""

    def __init__(self, status: GridStatus, total: int, concurrency: int) -> None:
        self.status, self.total, self.concurrency = status, total, concurrency
        self.started, self.durations = time.monotonic(), []

    def line(self, note: str = "") -> None:
        """Say where the grid stands."""
        counts = self.status.counts()
        left = max(0, self.total - counts["completed"] - counts["pruned"] - counts["failed"])
        eta = ""
        if self.durations and left:
            mean = sum(self.durations) / len(self.durations)
            eta = f", ETA {dt.timedelta(seconds=round(mean * left / self.concurrency))}"
        pruned = f"{counts['pruned']} pruned, " if counts["pruned"] else ""
        print(f"[pyrosys-grid] {counts['completed']} completed, {pruned}{counts['failed']} failed, "
              f"{counts['running']} running, {counts['pending']} waiting{eta}" + (f" | {note}" if note else ""),
              flush=True)


def default_concurrency(gpu: bool) -> int:
    """One run per core, or one per GPU when the runs use GPUs."""
    if gpu:
        gpus = visible_gpus()
        if gpus:
            return len(gpus)
    return os.cpu_count() or 1


def visible_gpus() -> list[str]:
    """The CUDA devices this machine has (without importing torch in the grid's own process)."""
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
        from pyrosys.execution.ray_backend import run_on_ray     # Ray only for --backend ray

        run_on_ray(TRAIN_JOB, jobs, concurrency, args.address, on_event, gpus_per_job=1 if args.gpu else 0)
        return
    gpus = visible_gpus() if args.gpu else []
    environments = [{"CUDA_VISIBLE_DEVICES": gpus[i % len(gpus)]} for i in range(concurrency)] if gpus else None
    for job in jobs:
        if args.gpu:
            job["arguments"].append("--gpu")
    say_starting(min(concurrency, len(jobs)))
    ProcessPool(concurrency, TRAIN_JOB, PRELOAD, environments).run(jobs, on_event)


def record(event: Any, status: GridStatus, progress: Progress) -> None:
    """Write one pool event to grid_status.csv at once, and say it."""
    name = event.job["name"]
    row = status.rows[name]
    if event.kind == "started":
        status.update(name, status="running", pid=event.pid or "", started=now_iso(),
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
    status.update(name, status=result["status"], reason=result.get("reason", ""), pid="", finished=now_iso(),
                  seconds=round(event.seconds or 0.0, 3), folder=result.get("folder") or row.get("folder", ""))
    progress.line(f"{name} {result['status']}" + (f": {result['reason']}" if result.get("reason") else ""))


def parser() -> argparse.ArgumentParser:
    """The grid trainer's flags."""
    return GridTrainer().parser()


main = GridTrainer.main

if __name__ == "__main__":
    sys.exit(main())
