"""Search against grid: the shipped TPE search with median pruning (configs/digits/search.yaml, 16 trials) and the
exhaustive grid of the same 72-point space (configs/digits/search_grid.yaml), two runs at a time each, side by
side in one run: the best validation accuracy each found and its wall time. Target: the search within 0.5
points of the grid's best in at most 40 % of the grid's time. Writes its section of benchmarks/results.md.

    .venv/bin/python benchmarks/search.py
"""
from __future__ import annotations

import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from report import header, markdown_table, write_section  # noqa: E402

BIN = Path(sys.executable).parent


def run_grid(config: Path, outdir: Path) -> tuple[float, Path]:
    """Seconds of one pyrosys-grid-trainer run and its grid folder."""
    started = time.perf_counter()
    subprocess.run([str(BIN / "pyrosys-grid-trainer"), "--c", str(config), "--outdir", str(outdir)], check=True,
                   capture_output=True, text=True)
    seconds = time.perf_counter() - started
    (grid,) = outdir.glob("grid_*")
    return seconds, grid


def validation_samples(grid: Path) -> int:
    """How many samples a run of the grid validates on (one of them is 100 / this points of accuracy)."""
    (table,) = list(grid.glob("*/validation_set_agg_statistics.csv"))[:1]
    with open(table, newline="") as stream:
        return int(float(next(csv.DictReader(stream))["samples"]))


def best_accuracy(grid: Path) -> tuple[float, int, int]:
    """The best validation accuracy over a grid's runs, and how many runs completed and were pruned."""
    best, completed, pruned = 0.0, 0, 0
    with open(grid / "grid_status.csv", newline="") as stream:
        for row in csv.DictReader(stream):
            completed += row["status"] == "completed"
            pruned += row["status"] == "pruned"
            with open(Path(row["folder"]) / "validation_statistics.csv", newline="") as table:
                best = max([best, *(float(r["accuracy"]) for r in csv.DictReader(table))])
    return best, completed, pruned


def main() -> int:
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        search_seconds, search = run_grid(ROOT / "configs/digits/search.yaml", folder / "search")
        grid_seconds, grid = run_grid(ROOT / "configs/digits/search_grid.yaml", folder / "grid")
        (search_best, search_done, search_pruned), (grid_best, grid_done, _) = best_accuracy(search), \
            best_accuracy(grid)
        samples = validation_samples(grid)
    gap, share = 100 * (grid_best - search_best), search_seconds / grid_seconds
    rows = [["TPE search, median pruning (16 trials)", f"{100 * search_best:.2f} %", f"{search_seconds:.1f} s",
             f"{search_done} completed, {search_pruned} pruned"],
            ["exhaustive grid (72 runs)", f"{100 * grid_best:.2f} %", f"{grid_seconds:.1f} s",
             f"{grid_done} completed"]]
    verdict = "yes" if gap <= 0.5 and share <= 0.4 else "no"
    lines = [*header("Search against grid", "`make bench` (`python benchmarks/search.py`)")[2:], "",
             "The Digits MLP's learning rate (4 values), hidden layers (3), dropout (3) and batch size (2): "
             "configs/digits/search.yaml "
             "against configs/digits/search_grid.yaml, 12 epochs a run, validation accuracy, two runs at a time.", "",
             *markdown_table(["", "best validation accuracy", "wall time", "runs"], rows), "",
             f"The search comes within {gap:.2f} points of the grid's best in {100 * share:.0f} % of its time "
             f"(target: within 0.5 points in at most 40 %: {verdict}). The validation split holds {samples} digits: "
             f"one digit is {100 / samples:.2f} points."]
    write_section(HERE / "results.md", "Search against grid", lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
