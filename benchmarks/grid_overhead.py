"""Grid: 8 short Digits runs (configs/digits/grid.yaml) with the default concurrency versus
--max-concurrent 1, and the per-run overhead of the pool versus a fresh process per run.

    .venv/bin/python benchmarks/grid_overhead.py

Per-run overhead = the wall time of a run as its launcher sees it minus the run's own time
(`seconds` in its status.json: fit, test and record). Writes benchmarks/grid_overhead.md.
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
GRID = ROOT / "configs" / "digits" / "grid.yaml"
EPOCHS = 20                    # each run a few seconds, as short experiments go; grid.yaml itself says 5
LONGER = ["--set", f"training.terminal_conditions.epoch_limit={EPOCHS}"]


def grid(outdir: Path, *flags: str) -> tuple[float, list[float]]:
    """Wall seconds of a whole grid, and each run's overhead in the pool."""
    started = time.perf_counter()
    subprocess.run([str(BIN / "pyrosys-grid-trainer"), "--c", str(GRID), "--outdir", str(outdir), *LONGER, *flags],
                   check=True, capture_output=True)
    wall = time.perf_counter() - started
    (folder,) = outdir.glob("grid_*")
    with open(folder / "grid_status.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    overheads = [float(row["seconds"]) - json.loads((Path(row["folder"]) / "status.json").read_text())["seconds"]
                 for row in rows]
    return wall, overheads


def fresh_processes(outdir: Path, runs: int) -> list[float]:
    """The same kind of run (the grid's first), each in a fresh pyrosys-trainer process."""
    from pyrosys.grid import expand

    overheads = []
    for index, run in enumerate(expand(GRID, LONGER[1:]).runs[:runs]):
        started = time.perf_counter()
        subprocess.run([str(BIN / "pyrosys-trainer"), *run.trainer_arguments(), "--outdir", str(outdir),
                        "--run-name", f"run{index}", "--set", "training.trainer.enable_progress_bar=false"],
                       check=True, capture_output=True)
        wall = time.perf_counter() - started
        overheads.append(wall - json.loads((outdir / f"run{index}" / "status.json").read_text())["seconds"])
    return overheads


def measure() -> dict:
    """Both grids and the fresh-process runs."""
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        one_wall, one_overheads = grid(scratch / "one", "--max-concurrent", "1")
        default_wall, default_overheads = grid(scratch / "default")
        fresh = fresh_processes(scratch / "fresh", 4)
    return {"one_wall": one_wall, "one_overheads": one_overheads, "default_wall": default_wall,
            "default_overheads": default_overheads, "fresh": fresh}


def main() -> int:
    m = measure()
    one_wall, one_overheads, default_wall = m["one_wall"], m["one_overheads"], m["default_wall"]
    default_overheads, fresh = m["default_overheads"], m["fresh"]
    speedup = one_wall / default_wall
    pool = statistics.median(one_overheads)
    lines = ["# Grid: concurrency and per-run overhead", "",
             f"Measured {dt.date.today()} on {platform.node()} ({os.cpu_count()} cores, {platform.platform()}), "
             f"Python {platform.python_version()}.", f"Command: `python benchmarks/grid_overhead.py`", "",
             f"`{GRID.relative_to(ROOT)}`: 8 short Digits runs (2 models x 2 learning rates x 2 repetitions), "
             f"each for {EPOCHS} epochs (`{' '.join(LONGER)}`).",
             "", "| | seconds |", "| --- | --- |",
             f"| grid, `--max-concurrent 1` | {one_wall:.2f} |",
             f"| grid, default concurrency ({os.cpu_count()}) | {default_wall:.2f} |",
             f"| speed-up | **{speedup:.2f}x** (target at least 1.6x) |",
             f"| per-run overhead in the pool (median of 8, one at a time) | **{pool:.3f}** (target under 0.5) |",
             f"| per-run overhead in the pool, default concurrency (median of 8) | {statistics.median(default_overheads):.3f} |",
             f"| per-run overhead of a fresh `pyrosys-trainer` process (median of {len(fresh)}) | {statistics.median(fresh):.3f} |",
             "", "Per-run overhead: the run's wall time seen by its launcher minus its own time (`seconds` in "
             "status.json: fit, test, record). Pool overheads, one at a time: "
             + ", ".join(f"{v:.3f}" for v in one_overheads) + "."]
    text = "\n".join(lines) + "\n"
    (ROOT / "benchmarks" / "grid_overhead.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
