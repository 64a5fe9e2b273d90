"""pyrosys-grid-analyzer: one table of every run under a folder, ranked by the monitored metric.

    pyrosys-grid-analyzer --expdir experiments/grid_<time>

Writes analysis.csv and analysis.md (per run: the swept parameters, seed, the epoch and the reason it
ended, final training, best validation and testing statistics, seconds) and analysis.png (the
monitored metric per run, and the validation curves overlaid). Columns keep a stable order.
"""
from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from pathlib import Path
from typing import Any

import matplotlib

from pyrosys.atomic import write_text_atomic
from pyrosys.configuration.loading import load_yaml
from pyrosys.errors import ConfigError
from pyrosys.execution.grid_plan import GridPlan
from pyrosys.factory import register
from pyrosys.folders import shown
from pyrosys.folders.experiment import Experiment, experiment_folders
from pyrosys.folders.grid import Grid
from pyrosys.tracking.plots import save_figure
from pyrosys.tracking.tables import SPREAD, read_rows
from pyrosys.workers.worker import Worker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the file backend

TIME_COLUMNS = ("seconds",)


def _main_statistics(row: dict[str, Any]) -> dict[str, float]:
    """A row's own statistics (loss, metrics), without bookkeeping and spread columns."""
    skip = {"episode", "epoch", "batch", "batches", "samples", "size", "learning_rate", "batch_time",
            "samples_per_second"}
    result = {}
    for key, value in row.items():
        if key in skip or key.endswith(SPREAD) or value in ("", None):
            continue
        try:
            result[key] = float(value)
        except (TypeError, ValueError):
            continue
    return result


def _monitor(experiment: Experiment) -> tuple[str, str]:
    """The run's monitored validation statistic (val_loss -> loss) and its mode."""
    path = experiment.configuration_file
    validation = (load_yaml(path).get("validation") or {}) if path.is_file() else {}
    monitor = str(validation.get("monitor", "val_loss"))
    return monitor.removeprefix("val_"), str(validation.get("mode", "min"))


def describe_run(folder: Path) -> dict[str, Any]:
    """One run's row: status, where and why it ended, final training, best validation, testing."""
    experiment = Experiment(folder)
    status = experiment.read_status()
    monitor, mode = _monitor(experiment)
    row: dict[str, Any] = {"status": status.get("status", ""), "seed": status.get("seed_torch", ""),
                           "epoch": status.get("epoch", ""), "episode": status.get("episode", ""),
                           "reason": status.get("reason", ""), "monitor": f"val_{monitor}", "mode": mode}
    training = read_rows(experiment.csv("training_agg"))
    if training:
        row.update({f"train_{k}": v for k, v in _main_statistics(training[-1]).items()})
    validation = read_rows(experiment.csv("validation"))
    values = [float(r[monitor]) for r in validation if r.get(monitor) not in ("", None)]
    if values:
        best = (min if mode == "min" else max)(range(len(values)), key=values.__getitem__)
        row.update({f"val_{k}": v for k, v in _main_statistics(validation[best]).items()})
        row["best_epoch"] = int(validation[best]["epoch"])
    row.update({f"test_{k}": v for k, v in _main_statistics(status.get("testing") or {}).items()})
    row["seconds"] = status.get("seconds", "")
    row["curve"] = values
    return row


def collect(expdir: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Every run under `expdir` (the grid's plan and status when there is one), and the swept keys."""
    grid = Grid(expdir)
    plan = GridPlan.read(grid) if grid.plan_file.is_file() else None
    swept_keys = plan.swept_keys if plan else []
    grid_rows = {r["run"]: r for r in read_rows(grid.status_file)}
    rows, seen = [], set()
    for run in plan.runs if plan else []:
        entry = grid_rows.get(run.name, {})
        folder = Path(entry["folder"]) if entry.get("folder") else None
        row = describe_run(folder) if folder and Experiment(folder).status_file.is_file() else \
            {"status": entry.get("status", "pending"), "seed": run.seed if run.seed is not None else "",
             "reason": entry.get("reason") or run.error or "", "curve": []}
        if entry.get("status") == "failed":         # the grid's word wins (a killed run's folder says running)
            row.update(status="failed", reason=entry.get("reason") or row.get("reason", ""))
        row.update({"run": run.name, **{key: run.swept.get(key, "") for key in swept_keys}})
        rows.append(row)
        if folder:
            seen.add(folder.resolve())
    for folder in experiment_folders(expdir):                       # experiments outside a grid plan
        if folder.resolve() in seen:
            continue
        rows.append({"run": str(folder.relative_to(expdir)), **describe_run(folder)})
    return rows, swept_keys


def rank(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Completed runs first, best monitored value first (per the runs' mode), then the others by name."""
    def key(row: dict[str, Any]) -> tuple:
        value = row.get(row.get("monitor", ""), None)
        good = row.get("status") == "completed" and isinstance(value, float) and math.isfinite(value)
        sign = -1.0 if row.get("mode") == "max" else 1.0
        return (0 if good else 1, sign * value if good else 0.0, row["run"])

    ranked = sorted(rows, key=key)
    for index, row in enumerate(ranked, start=1):
        row["rank"] = index
    return ranked


def columns(rows: list[dict[str, Any]], swept_keys: list[str]) -> list[str]:
    """A stable column order: identity, swept parameters, how the run ended, statistics by phase, time."""
    fixed = ["rank", "run", "status", *swept_keys, "seed", "epoch", "best_epoch", "episode", "reason", "monitor"]
    present = {k for row in rows for k in row}
    statistics = [sorted(k for k in present if k.startswith(prefix)) for prefix in ("train_", "val_", "test_")]
    return [c for c in fixed if c in present or c in swept_keys] + [c for group in statistics for c in group] \
        + [c for c in TIME_COLUMNS if c in present]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)


def write_tables(grid: Grid, rows: list[dict[str, Any]], order: list[str]) -> None:
    """analysis.csv and analysis.md: one row per run, in `order`'s columns."""
    table, markdown, _ = grid.analysis_files
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(order)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in order])
    write_text_atomic(table, text.getvalue())
    lines = [f"# Grid analysis: {grid.folder.name}", "", "| " + " | ".join(order) + " |",
             "|" + "|".join(" --- " for _ in order) + "|"]
    lines += ["| " + " | ".join(_cell(row.get(c)).replace("|", "/") for c in order) + " |" for row in rows]
    write_text_atomic(markdown, "\n".join(lines) + "\n")


def plot(grid: Grid, rows: list[dict[str, Any]]) -> None:
    """The monitored metric per run (bars) and the validation curves overlaid."""
    monitor = next((r["monitor"] for r in rows if r.get("monitor")), "val_loss")
    figure, (bars, curves) = plt.subplots(1, 2, figsize=(13, 5))
    shown = [r for r in rows if isinstance(r.get(monitor), float)]
    bars.barh([r["run"] for r in shown][::-1], [r[monitor] for r in shown][::-1], color="tab:blue")
    bars.set_xlabel(f"best {monitor}")
    bars.set_title(f"{monitor} per run (ranked)")
    bars.tick_params(axis="y", labelsize=7)
    for row in rows:
        if row.get("curve"):
            curves.plot(range(1, len(row["curve"]) + 1), row["curve"], label=row["run"], linewidth=1)
    curves.set_xlabel("validation")
    curves.set_ylabel(monitor)
    curves.set_title("validation curves")
    if any(r.get("curve") for r in rows):
        curves.legend(fontsize=6, loc="best")
    figure.suptitle(f"Grid {grid.folder.name}")
    figure.tight_layout()
    save_figure(figure, grid.analysis_files[2], dpi=110)


@register("worker", name="grid_analyzer")
class GridAnalyzer(Worker):
    """Tabulate and plot every run under a grid (or any) folder."""

    prog = "pyrosys-grid-analyzer"

    def run(self, args: argparse.Namespace) -> int:
        """Collect -> rank -> tables -> plot."""
        expdir = Path(args.expdir)
        if not expdir.is_dir():
            raise ConfigError("the folder does not exist", file=str(expdir), key="--expdir")
        rows, swept_keys = collect(expdir)
        if not rows:
            raise ConfigError(f"no experiment ({Experiment.STATUS}) was found here", file=str(expdir), key="--expdir")
        rows = rank(rows)
        grid = Grid(expdir)
        write_tables(grid, rows, columns(rows, swept_keys))
        plot(grid, rows)
        print(grid.analysis_files[1].read_text(), end="")
        print(f"[pyrosys-grid] analysis: {', '.join(shown(path) for path in grid.analysis_files)}")
        return 0

    def add_flags(self, parser: argparse.ArgumentParser) -> None:
        """--expdir."""
        parser.add_argument("--expdir", metavar="DIR", required=True,
                            help="a grid folder (or any folder of experiments)")


main = GridAnalyzer.main

if __name__ == "__main__":
    sys.exit(main())
