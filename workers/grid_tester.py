"""pyrosys-grid-tester: test the best checkpoint of every completed run under a folder, in parallel.

    pyrosys-grid-tester --expdir experiments/grid_<time> [--n N] [--max-concurrent N]

Each run gets its testing_<time>/ folder as with pyrosys-tester; the grid folder gets grid_testing.csv.
The tests run in a pool of long-lived processes, each running the tester (see pipeline.jobs).
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import sys
from pathlib import Path
from typing import Any

from pyrosys.atomic import write_text_atomic
from pyrosys.errors import ConfigError
from pyrosys.execution.process_pool import ProcessPool
from pyrosys.factory import register
from pyrosys.folders import shown
from pyrosys.folders.experiment import Experiment, experiment_folders
from pyrosys.folders.grid import Grid
from pyrosys.workers.pipeline.jobs import PRELOAD, TEST_JOB, say_starting
from pyrosys.workers.worker import Worker


@register("worker", name="grid_tester")
class GridTester(Worker):
    """Test the best checkpoint of every completed run under a folder."""

    prog = "pyrosys-grid-tester"

    def run(self, args: argparse.Namespace) -> int:
        """Find completed runs -> test each best checkpoint in the pool -> one table."""
        grid = Grid(args.expdir)
        if not grid.folder.is_dir():
            raise ConfigError("the folder does not exist", file=str(grid.folder), key="--expdir")
        if args.n < 1:
            raise ConfigError(f"--n is a number of repeats >= 1, not {args.n}", file="the command line", key="--n")
        runs = completed_runs(grid.folder)
        if not runs:
            raise ConfigError(f"no completed run with {Experiment.MODELS}/{Experiment.BEST} was found here",
                              file=str(grid.folder), key="--expdir")
        concurrency = max(1, min(args.max_concurrent or os.cpu_count() or 1, len(runs)))
        threads = max(1, (os.cpu_count() or 1) // concurrency)
        jobs = [{"name": str(run.folder.relative_to(grid.folder)), "folder": str(run.folder), "threads": threads,
                 "log": str(run.grid_testing_log), "arguments": ["--m", str(run.best_checkpoint), "--n", str(args.n),
                                                                 "--ll", args.log_level]}
                for run in runs]
        results: dict[str, dict] = {}
        print(f"[pyrosys-grid] testing {len(jobs)} runs of {shown(grid.folder)}, {concurrency} at a time", flush=True)
        say_starting(concurrency)
        ProcessPool(concurrency, TEST_JOB, PRELOAD).run(jobs, lambda event: record(event, results, len(jobs)))
        write_text_atomic(grid.testing_file, table(jobs, results))
        failed = sum(r["status"] != "completed" for r in results.values())
        print(f"[pyrosys-grid] tested {len(jobs) - failed} runs, {failed} failed; table in {shown(grid.testing_file)}")
        return 1 if failed else 0

    def add_flags(self, parser: argparse.ArgumentParser) -> None:
        """--expdir, --n, --max-concurrent."""
        parser.add_argument("--expdir", metavar="DIR", required=True,
                            help="a grid folder (or any folder of experiments)")
        parser.add_argument("--n", type=int, default=1, metavar="N", help="test each run N times (mean and std)")
        parser.add_argument("--max-concurrent", type=int, default=None, metavar="N",
                            help="tests at a time (default: one per core)")


def completed_runs(folder: Path) -> list[Experiment]:
    """Experiments under `folder` whose run completed and left models/best.ckpt, in name order."""
    runs = [Experiment(run) for run in experiment_folders(folder)]
    return [run for run in runs if run.state() == "completed" and run.best_checkpoint.is_file()]


def record(event: Any, results: dict[str, dict], total: int) -> None:
    """Keep one pool event's result, and say it."""
    if event.kind == "started":
        return
    result = event.result if event.kind == "finished" else \
        {"status": "failed", "reason": f"the test's process died ({event.result})"}
    results[event.job["name"]] = result
    print(f"[pyrosys-grid] tested {len(results)}/{total}: {event.job['name']} {result['status']}"
          + (f": {result['reason']}" if result.get("reason") else ""), flush=True)


def table(jobs: list[dict], results: dict[str, dict]) -> str:
    """grid_testing.csv: one row per run, its status and whole-set statistics."""
    names = sorted({k for r in results.values() for k in r.get("statistics", {})})
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["run", "status", "reason", *names, "folder"])
    for job in jobs:
        result = results.get(job["name"], {"status": "failed", "reason": "not run"})
        statistics = result.get("statistics", {})
        writer.writerow([job["name"], result["status"], result.get("reason", ""),
                         *(f"{statistics[n]:.6g}" if n in statistics else "" for n in names), result.get("folder", "")])
    return text.getvalue()


main = GridTester.main

if __name__ == "__main__":
    sys.exit(main())
