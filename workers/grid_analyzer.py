"""pyrosys-grid-analyzer: one table of every run under a folder, ranked by the monitored metric.

    pyrosys-grid-analyzer --expdir experiments/grid_<time>

Writes analysis.csv and analysis.md (per run: the swept parameters, seed, the epochs it completed and the
reason it ended, its best epoch, final training, best validation and testing statistics, seconds; ranked
within each data set) and analysis.png (a row of panels per data set: each configuration's best monitored
value, and its validation curve over epochs; repetitions of a configuration, runs that differ only by their
seeds, as mean and standard deviation). Columns keep a stable order.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import statistics
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

from pyrosys.atomic import write_text_atomic
from pyrosys.configuration.loading import leaf_paths, load_yaml, value_at
from pyrosys.errors import ConfigError
from pyrosys.execution.grid_plan import GridPlan
from pyrosys.factory import register
from pyrosys.folders import shown
from pyrosys.folders.experiment import Experiment, experiment_folders
from pyrosys.folders.grid import Grid
from pyrosys.tracking.plots import save_figure, validation_epochs
from pyrosys.tracking.search_pictures import save_study_pictures, trial_outcomes
from pyrosys.tracking.tables import best_index, monitored
from pyrosys.tracking.tables import SPREAD, read_rows
from pyrosys.workers.worker import Worker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the file backend
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

TIME_COLUMNS = ("seconds",)
SEED_KEYS = ("seed", "seed_torch", "seed_numpy")     # what repetitions of one configuration differ by
LABEL_KEYS = 3                                       # configuration keys a legend entry names at most


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


def data_set(configuration: Mapping) -> str:
    """What a run's monitored values can be ranked against: its problem (name or class) and data file."""
    problem = configuration.get("problem") or {}
    name = problem.get("name") or str(problem.get("_target_") or "").rsplit(".", 1)[-1] or "unknown problem"
    return f"{name} ({Path(str(problem['path'])).name})" if problem.get("path") else str(name)


def settings(configuration: Mapping) -> dict[str, Any]:
    """A run's configuration as dotted keys without its seeds: equal for repetitions of one configuration."""
    return {path: value_at(configuration, path) for path in leaf_paths(configuration)
            if path.rsplit(".", 1)[-1] not in SEED_KEYS}


def describe_run(folder: Path) -> dict[str, Any]:
    """One run's row: status, where and why it ended, final training, best validation, testing; its data
    set, its configuration, and its validation curve over epochs."""
    experiment = Experiment(folder)
    status = experiment.read_status()
    monitor, mode = monitored(experiment)
    configuration = load_yaml(experiment.configuration_file) if experiment.configuration_file.is_file() else {}
    row: dict[str, Any] = {"status": status.get("status", ""), "seed": status.get("seed_torch", ""),
                           "epoch": status.get("epoch", ""), "episode": status.get("episode", ""),
                           "reason": status.get("reason", ""), "monitor": f"val_{monitor}", "mode": mode,
                           "dataset": data_set(configuration), "settings": settings(configuration)}
    training = read_rows(experiment.csv("training_agg"))
    if training:
        row.update({f"train_{k}": v for k, v in _main_statistics(training[-1]).items()})
    validation = [r for r in read_rows(experiment.csv("validation")) if r.get(monitor) not in ("", None)]
    values = [float(r[monitor]) for r in validation]
    if values:
        best = best_index(values, mode)
        row.update({f"val_{k}": v for k, v in _main_statistics(validation[best]).items()})
        row["best_epoch"] = int(validation[best]["epoch"])
    row.update({f"test_{k}": v for k, v in _main_statistics(status.get("testing") or {}).items()})
    row["seconds"] = status.get("seconds", "")
    row["curve"] = list(zip(validation_epochs(training, validation), values))
    return row


def collect(expdir: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Every run under `expdir` (the grid's plan and status when there is one), and the swept keys."""
    grid = Grid(expdir)
    plan = GridPlan.read(grid) if grid.plan_file.is_file() else None
    swept_keys = plan.swept_keys if plan else []
    grid_rows = {r["run"]: r for r in read_rows(grid.status_file)}
    outcomes = trial_outcomes(grid, [base.name for base in plan.bases]) if plan and plan.search else {}
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
        if run.trial is not None:                   # a search's trial: its number, state and objective
            row.update(trial=run.trial, **outcomes.get((run.study, run.trial), {}))
        rows.append(row)
        seen.update(attempt.resolve() for attempt in grid.attempt_folders(run.name))   # retried runs' first tries
        if folder:
            seen.add(folder.resolve())
    for folder in experiment_folders(expdir):                       # experiments outside a grid plan
        if folder.resolve() in seen:
            continue
        rows.append({"run": str(folder.relative_to(expdir)), **describe_run(folder)})
    return rows, swept_keys


def _ranked_value(row: Mapping[str, Any]) -> float | None:
    """A completed run's monitored value, signed so that lower is better; None for a run not to rank."""
    value = row.get(row.get("monitor", ""), None)
    good = row.get("status") == "completed" and isinstance(value, float) and math.isfinite(value)
    return (-value if row.get("mode") == "max" else value) if good else None


def rank(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ranks within each data set (and monitor): only runs of one data set compare. In each, completed
    runs first, best monitored value first (per the runs' mode), then the others by name; runs that never
    started (no data set known) last."""
    def key(row: dict[str, Any]) -> tuple:
        value = _ranked_value(row)
        return (not row.get("dataset"), row.get("dataset", ""), row.get("monitor", ""), value is None,
                value if value is not None else 0.0, row["run"])

    ranked = sorted(rows, key=key)
    previous, place = None, 0
    for row in ranked:
        group = (row.get("dataset", ""), row.get("monitor", ""))
        place = place + 1 if group == previous else 1
        row["rank"], previous = place, group
    return ranked


def columns(rows: list[dict[str, Any]], swept_keys: list[str]) -> list[str]:
    """A stable column order: identity, swept parameters (and the data set, when there are several), how
    the run ended, statistics by phase, time."""
    several = len({row["dataset"] for row in rows if row.get("dataset")}) > 1
    fixed = ["rank", "run", "trial", "state", "status", *swept_keys, "objective", *(["dataset"] if several else []),
             "seed", "epoch",
             "best_epoch", "episode", "reason", "monitor"]
    present = {k for row in rows for k in row}
    by_phase = [sorted(k for k in present if k.startswith(prefix)) for prefix in ("train_", "val_", "test_")]
    return [c for c in fixed if c in present or c in swept_keys] + [c for group in by_phase for c in group] \
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


def configurations(rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[tuple[str, list[dict]]]]:
    """The ranked runs that have a curve, per data set and monitor, grouped per configuration (repetitions,
    runs differing only by their seeds, together), each named by the settings that tell it from the others
    of its data set; configurations best first (by the mean over their runs)."""
    groups: dict[tuple[str, str], dict[str, list[dict]]] = {}
    for row in rows:
        if row.get("curve") and row.get("dataset"):
            identity = json.dumps(row["settings"], sort_keys=True, default=str)
            groups.setdefault((row["dataset"], row["monitor"]), {}).setdefault(identity, []).append(row)
    named = {}
    for panel, members in groups.items():
        differing = _differing([runs[0]["settings"] for runs in members.values()])
        order = sorted(members.values(), key=_mean_rank_value)
        named[panel] = [(_label(runs[0], differing), runs) for runs in order]
    return named


def _differing(configurations: list[dict[str, Any]]) -> list[str]:
    """The keys whose values are not the same in every configuration, component names first; a component's
    other keys only where they differ between configurations of the same class (LeNet5's channels against
    MLP's say nothing the names do not)."""
    def varies(key: str, among: list[dict[str, Any]]) -> bool:
        return len({json.dumps(configuration.get(key), default=str) for configuration in among}) > 1

    keys = {key for configuration in configurations for key in configuration}
    differing = [key for key in keys if varies(key, configurations)]
    names = {key.rpartition(".")[0] for key in differing if key.endswith(".name")}
    kept = []
    for key in differing:
        section = key.rpartition(".")[0]
        if section in names and not key.endswith(".name"):
            by_class: dict[str, list[dict[str, Any]]] = {}
            for configuration in configurations:
                by_class.setdefault(str(configuration.get(f"{section}.name")), []).append(configuration)
            if not any(varies(key, among) for among in by_class.values()):
                continue
        kept.append(key)
    return sorted(kept, key=lambda key: (not key.endswith(".name"), key))


def _mean_rank_value(runs: list[dict]) -> float:
    """A configuration's place: the mean of its runs' signed monitored values (lower is better)."""
    values = [value for value in map(_ranked_value, runs) if value is not None]
    return statistics.fmean(values) if values else math.inf


def _label(row: Mapping[str, Any], differing: list[str]) -> str:
    """A configuration's legend entry: the settings that tell it from the others (model name when alone)."""
    if not differing:
        return str(row["settings"].get("model.name") or row["run"])
    shown = [str(row["settings"].get(key)) if key.endswith(".name")
             else f"{'.'.join(key.split('.')[-2:])}={row['settings'].get(key)}" for key in differing[:LABEL_KEYS]]
    return ", ".join(shown) + (", ..." if len(differing) > LABEL_KEYS else "")


def _spread(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0


def _draw_configurations(bars: Any, curves: Any, monitor: str, runs_of: list[tuple[str, list[dict]]]) -> None:
    """One data set's panels: each configuration's best value (mean with a bar of one std, and every run as
    a dot) ranked top down, and its validation curve over epochs (mean line, band of one std) in the same colour."""
    colours = plt.get_cmap("tab10" if len(runs_of) <= 10 else "tab20")
    for place, (label, runs) in enumerate(runs_of):
        colour = colours(place % colours.N)
        best = [r[monitor] for r in runs if isinstance(r.get(monitor), float)]
        if best:
            mean, std = _spread(best)
            bars.errorbar([mean], [place], xerr=[std], fmt="D", color=colour, markersize=8, capsize=5)
            bars.plot(best, [place] * len(best), "o", color="black", markersize=3, alpha=0.6)
        at: dict[float, list[float]] = {}
        for run in runs:
            for epoch, value in run["curve"]:
                at.setdefault(epoch, []).append(value)
        epochs = sorted(at)
        means, stds = zip(*(_spread(at[epoch]) for epoch in epochs))
        curves.plot(epochs, means, color=colour, linewidth=1.5, label=f"{label} (n={len(runs)})")
        if len(runs) > 1:
            curves.fill_between(epochs, [m - s for m, s in zip(means, stds)], [m + s for m, s in zip(means, stds)],
                                color=colour, alpha=0.2, linewidth=0)
    bars.set_yticks(range(len(runs_of)), labels=[label for label, _ in runs_of], fontsize=7)
    bars.set_xlabel(f"best {monitor} (mean ± std; dots: runs)")
    bars.set_ylim(len(runs_of) - 0.5, -0.5)
    bars.grid(alpha=0.3, axis="x")
    curves.set(xlabel="epoch", ylabel=monitor)
    curves.xaxis.set_major_locator(MaxNLocator(integer=True))
    curves.grid(alpha=0.3)
    curves.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)   # beside the curves


def analysis_figure(rows: list[dict[str, Any]], title: str) -> Figure:
    """analysis.png's Figure: a row of two panels per data set (and monitor), runs ranked and coloured only
    against the runs of their data set; configurations' repetitions as mean and std."""
    panels = configurations(rows)
    figure, axes = plt.subplots(max(1, len(panels)), 2, figsize=(15, 4.5 * max(1, len(panels))), squeeze=False,
                                layout="constrained")        # room for the configurations' names and the legends
    for (bars, curves), ((dataset, monitor), runs_of) in zip(axes, panels.items()):
        _draw_configurations(bars, curves, monitor, runs_of)
        bars.set_title(f"{dataset}: best {monitor} per configuration (ranked)")
        curves.set_title(f"{dataset}: validation {monitor}")
    figure.suptitle(title)
    return figure


@register("worker", name="grid_analyzer")
class GridAnalyzer(Worker):
    """Tabulate and plot every run under a grid (or any) folder."""

    prog = "pyrosys-grid-analyzer"

    def run(self, args: argparse.Namespace) -> int:
        """Collect -> rank (per data set) -> tables -> picture."""
        expdir = Path(args.expdir)
        if not expdir.is_dir():
            raise ConfigError("the folder does not exist", file=str(expdir), key="--expdir")
        rows, swept_keys = collect(expdir)
        if not rows:
            raise ConfigError(f"no experiment ({Experiment.STATUS}) was found here", file=str(expdir), key="--expdir")
        rows = rank(rows)
        grid = Grid(expdir)
        write_tables(grid, rows, columns(rows, swept_keys))
        save_figure(analysis_figure(rows, f"Grid {grid.folder.name}"), grid.analysis_files[2], dpi=110)
        plan = GridPlan.read(grid) if grid.plan_file.is_file() else None
        pictures = save_study_pictures(grid, [b.name for b in plan.bases]) if plan and plan.search else []
        print(grid.analysis_files[1].read_text(), end="")
        print(f"[pyrosys-grid] analysis: {', '.join(shown(path) for path in [*grid.analysis_files, *pictures])}")
        return 0

    def add_flags(self, parser: argparse.ArgumentParser) -> None:
        """--expdir."""
        parser.add_argument("--expdir", metavar="DIR", required=True,
                            help="a grid folder (or any folder of experiments)")


main = GridAnalyzer.main

if __name__ == "__main__":
    sys.exit(main())
