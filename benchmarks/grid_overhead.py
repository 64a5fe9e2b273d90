"""Grid: 8 short Digits runs (benchmarks/digits_grid.yaml) with the default concurrency versus
--max-concurrent 1, and the per-run overhead of the pool versus a fresh process per run.

    .venv/bin/python benchmarks/grid_overhead.py

Per-run overhead = the wall time of a run as its launcher sees it minus the run's own time
(`seconds` in its status.json: fit, test and record). Writes benchmarks/grid_overhead.md.
"""
from __future__ import annotations

import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import header, write_report

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
GRID = ROOT / "benchmarks" / "digits_grid.yaml"     # the shipped Digits experiments, at their own lengths


def grid(outdir: Path, *flags: str) -> tuple[float, list[float], float]:
    """Wall seconds of a whole grid, each run's overhead in the pool, and the sum of the runs' wall times."""
    started = time.perf_counter()
    subprocess.run([str(BIN / "pyrosys-grid-trainer"), "--c", str(GRID), "--outdir", str(outdir), *flags],
                   check=True, capture_output=True)
    wall = time.perf_counter() - started
    (folder,) = outdir.glob("grid_*")
    with open(folder / "grid_status.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    overheads = [float(row["seconds"]) - json.loads((Path(row["folder"]) / "status.json").read_text())["seconds"]
                 for row in rows]
    return wall, overheads, sum(float(row["seconds"]) for row in rows)


def fresh_processes(outdir: Path, runs: int) -> list[float]:
    """The same kind of run (the grid's first), each in a fresh pyrosys-trainer process."""
    from pyrosys.execution.grid_plan import expand

    overheads = []
    for index, run in enumerate(expand(GRID).runs[:runs]):
        started = time.perf_counter()
        subprocess.run([str(BIN / "pyrosys-trainer"), *run.trainer_arguments(), "--outdir", str(outdir),
                        "--run-name", f"run{index}", "--set", "training.trainer.enable_progress_bar=false"],
                       check=True, capture_output=True)
        wall = time.perf_counter() - started
        overheads.append(wall - json.loads((outdir / f"run{index}" / "status.json").read_text())["seconds"])
    return overheads


def measure(pairs: int = 5) -> dict:
    """Both grids in `pairs` alternated pairs (a grid's wall time spreads by several per cent from one
    run to the next here, so the pairs' ratios are judged), and the fresh-process runs."""
    one, default = [], []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        for pair in range(pairs):
            one.append(grid(scratch / f"one{pair}", "--max-concurrent", "1"))
            default.append(grid(scratch / f"default{pair}"))
        fresh = fresh_processes(scratch / "fresh", 3)
    concurrency = os.cpu_count() or 1
    median = statistics.median
    one_wall, default_wall = median(w for w, _, _ in one), median(w for w, _, _ in default)
    one_runs, default_runs = median(r for _, _, r in one), median(r for _, _, r in default)
    # what neither mode can share out: start-up of the grid and its pool, before and after the runs
    return {"pairs": pairs, "speedup": median(o[0] / d[0] for o, d in zip(one, default)),
            "speedups": [o[0] / d[0] for o, d in zip(one, default)],
            "one_wall": one_wall, "one_overheads": [v for _, overheads, _ in one for v in overheads],
            "default_wall": default_wall, "default_overheads": [v for _, overheads, _ in default for v in overheads],
            "fresh": fresh, "one_runs": one_runs, "default_runs": default_runs,
            "one_fixed": median(w - r for w, _, r in one),
            "default_fixed": median(w - r / concurrency for w, _, r in default)}


def main() -> int:
    m = measure()
    one_wall, one_overheads, default_wall = m["one_wall"], m["one_overheads"], m["default_wall"]
    default_overheads, fresh = m["default_overheads"], m["fresh"]
    pool = statistics.median(one_overheads)
    lines = [*header("Grid: concurrency and per-run overhead", "`python benchmarks/grid_overhead.py`"), "",
             f"`{GRID.relative_to(ROOT)}`: 8 short Digits runs: the shipped LeNet5 "
             f"(40 epochs) and MLP (30 epochs) experiments x 2 learning rates x 2 repetitions; {m['pairs']} "
             "alternated pairs of grids.", "", "| | seconds |", "| --- | --- |",
             f"| grid, `--max-concurrent 1` (median) | {one_wall:.2f} |",
             f"| grid, default concurrency ({os.cpu_count()}) (median) | {default_wall:.2f} |",
             f"| speed-up, median of the pairs' ratios | **{m['speedup']:.2f}x** (target at least 1.6x; pairs: "
             + ", ".join(f"{v:.2f}" for v in m["speedups"]) + ") |",
             f"| per-run overhead in the pool (median of {len(one_overheads)}, one at a time) | **{pool:.3f}** (target under 0.5) |",
             f"| per-run overhead in the pool, default concurrency (median of {len(default_overheads)}) | "
             f"{statistics.median(default_overheads):.3f} |",
             f"| per-run overhead of a fresh `pyrosys-trainer` process (median of {len(fresh)}) | {statistics.median(fresh):.3f} |",
             f"| time outside the runs (grid and pool start-up, first-run imports), one at a time | {m['one_fixed']:.2f} |",
             f"| the same, default concurrency (wall minus the runs' wall times / {os.cpu_count()}) | {m['default_fixed']:.2f} |",
             f"| the runs' own wall times, summed: one at a time / default concurrency | {m['one_runs']:.2f} / {m['default_runs']:.2f} |",
             "", "Per-run overhead: the run's wall time seen by its launcher minus its own time (`seconds` in "
             "status.json: fit, test, record). The first run of a pool also pays the imports its problem needs "
             "(scikit-learn for Digits)."]
    print(write_report(lines, ROOT / "benchmarks" / "grid_overhead.md"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
