"""pyrosys-grid-tester: test the best checkpoint of every completed run under a folder, in parallel.

    pyrosys-grid-tester --expdir experiments/grid_<time> [--n N] [--max-concurrent N]

Each run gets its testing_<time>/ folder as with pyrosys-tester; the grid folder gets grid_testing.csv.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pyrosys.errors import ConfigError
from pyrosys.tracking.tables import SPREAD, TESTING_REPEATS, TESTING_SUMMARY
from pyrosys.workers.worker import base_parser, run

TESTING_FILE = "grid_testing.csv"


def completed_runs(folder: Path) -> list[Path]:
    """Experiment folders under `folder` whose run completed and left models/best.ckpt, in name order."""
    from pyrosys.folders.experiment import STATUS_FILE, experiment_folders

    runs = []
    for run in experiment_folders(folder):
        try:
            status = json.loads((run / STATUS_FILE).read_text())
        except (OSError, ValueError):
            continue
        if status.get("status") == "completed" and (run / "models" / "best.ckpt").is_file():
            runs.append(run)
    return runs


def test_run(job: dict[str, Any]) -> dict[str, Any]:
    """One run's test in a pool worker: the tester, in this process; its whole-set statistics."""
    from pyrosys.workers import tester
    from pyrosys.workers.grid_trainer import call_worker

    result = call_worker(tester.test, tester.parser(), job["arguments"], Path(job["log"]), job["threads"])
    folder = Path(job["folder"])
    tests = sorted(folder.glob("testing_*"), key=lambda p: p.stat().st_mtime)
    if result["status"] == "completed" and tests:
        from pyrosys.configuration.loading import load_yaml

        newest = tests[-1]
        summary = newest / (TESTING_REPEATS if (newest / TESTING_REPEATS).is_file() else TESTING_SUMMARY)
        values = load_yaml(summary)
        main = [k for k in values if k not in ("repeats", "batches", "samples")
                and not k.endswith(SPREAD)]
        result["statistics"] = {}
        for name in main:                      # whole-set values; with --n, their mean and std over repeats
            value = values[name]
            if isinstance(value, dict):
                result["statistics"].update({name: value["mean"], f"{name}_std": value["std"]})
            else:
                result["statistics"][name] = value
        result["folder"] = str(newest)
    return result


def grid_test(args: argparse.Namespace) -> int:
    """Find completed runs -> test each best checkpoint in the pool -> one table."""
    from pyrosys.atomic import write_text_atomic
    from pyrosys.execution.process_pool import ProcessPool
    from pyrosys.workers.grid_trainer import PRELOAD

    folder = Path(args.expdir)
    if not folder.is_dir():
        raise ConfigError("the folder does not exist", file=str(folder), key="--expdir")
    if args.n < 1:
        raise ConfigError(f"--n is a number of repeats >= 1, not {args.n}", file="the command line", key="--n")
    runs = completed_runs(folder)
    if not runs:
        raise ConfigError("no completed run with models/best.ckpt was found here", file=str(folder), key="--expdir")
    concurrency = max(1, min(args.max_concurrent or os.cpu_count() or 1, len(runs)))
    threads = max(1, (os.cpu_count() or 1) // concurrency)
    jobs = [{"name": str(run.relative_to(folder)), "folder": str(run), "threads": threads,
             "log": str(run / "grid_testing.log"),
             "arguments": ["--m", str(run / "models" / "best.ckpt"), "--n", str(args.n), "--ll", args.log_level]}
            for run in runs]
    results: dict[str, dict] = {}

    def record(event: Any) -> None:
        if event.kind == "started":
            return
        result = event.result if event.kind == "finished" else \
            {"status": "failed", "reason": f"the test's process died ({event.result})"}
        results[event.job["name"]] = result
        print(f"[pyrosys-grid] tested {len(results)}/{len(jobs)}: {event.job['name']} {result['status']}"
              + (f": {result['reason']}" if result.get("reason") else ""), flush=True)

    print(f"[pyrosys-grid] testing {len(jobs)} runs of {folder}, {concurrency} at a time", flush=True)
    ProcessPool(concurrency, "pyrosys.workers.grid_tester:test_run", PRELOAD).run(jobs, record)
    names = sorted({k for r in results.values() for k in r.get("statistics", {})})
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["run", "status", "reason", *names, "folder"])
    for job in jobs:
        result = results.get(job["name"], {"status": "failed", "reason": "not run"})
        statistics = result.get("statistics", {})
        writer.writerow([job["name"], result["status"], result.get("reason", ""),
                         *(f"{statistics[n]:.6g}" if n in statistics else "" for n in names), result.get("folder", "")])
    write_text_atomic(folder / TESTING_FILE, text.getvalue())
    failed = sum(r["status"] != "completed" for r in results.values())
    print(f"[pyrosys-grid] tested {len(jobs) - failed} runs, {failed} failed; table in {folder / TESTING_FILE}")
    return 1 if failed else 0


def parser() -> argparse.ArgumentParser:
    """The grid tester's flags."""
    result = base_parser("pyrosys-grid-tester", "Test the best checkpoint of every completed run under a folder.")
    result.add_argument("--expdir", metavar="DIR", required=True, help="a grid folder (or any folder of experiments)")
    result.add_argument("--n", type=int, default=1, metavar="N", help="test each run N times (mean and std)")
    result.add_argument("--max-concurrent", type=int, default=None, metavar="N",
                        help="tests at a time (default: one per core)")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of pyrosys-grid-tester."""
    return run(grid_test, parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
