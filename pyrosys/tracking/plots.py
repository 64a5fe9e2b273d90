"""Plots written at the end of runs: learning curves and, for classifiers, a confusion matrix.

Each picture is built as a matplotlib Figure by a function of the run's rows (which tests read through
the Figure's axes), then written atomically. Epochs count from 1, as the statistics tables count them.
"""
from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from pyrosys.atomic import atomic_path  # noqa: E402
from pyrosys.folders.experiment import Experiment  # noqa: E402
from pyrosys.tracking.tables import best_index, monitored, read_rows  # noqa: E402

Rows = Sequence[Mapping[str, Any]]


def validation_epochs(training: Rows, validation: Rows) -> list[float]:
    """Where each validation lies in epochs: its episode over the episodes of an epoch (a validation inside
    an epoch at its fraction, one at an epoch's end on the epoch's number); the epoch column without an
    epoch's training aggregate to measure an epoch by."""
    if training and int(training[0]["epoch"]) > 0:
        per_epoch = float(training[0]["episode"]) / int(training[0]["epoch"])
        return [float(row["episode"]) / per_epoch for row in validation]
    return [float(row["epoch"]) for row in validation]


def curves_figure(training: Rows, validation: Rows, metric: str | None, title: str,
                  monitor: tuple[str, str] = ("loss", "min"), testing: Mapping[str, Any] | None = None) -> Figure:
    """The curves Figure: a panel per statistic (loss, the main metric, the monitor), training epoch means
    and validations over whole-number epochs, the monitor's best validation marked, the test value drawn."""
    panels = ["loss"] + ([metric] if metric and metric != "loss" else [])
    if validation and monitor[0] in validation[0] and monitor[0] not in panels:
        panels.append(monitor[0])
    positions = validation_epochs(training, validation)
    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for axis, name in zip(axes[0], panels):
        if training and f"{name}_mean" in training[0]:
            axis.plot([int(r["epoch"]) for r in training], [float(r[f"{name}_mean"]) for r in training],
                      marker="o", label="training (epoch mean)")
        if validation and name in validation[0]:
            values = [float(r[name]) for r in validation]
            axis.plot(positions, values, marker="s", label="validation")
            if name == monitor[0]:
                best = best_index(values, monitor[1])
                axis.plot([positions[best]], [values[best]], linestyle="none", marker="*", markersize=16,
                          color="tab:red", label=f"best: epoch {validation[best]['epoch']}")
                axis.annotate(f"{values[best]:.4g}", (positions[best], values[best]), textcoords="offset points",
                              xytext=(6, 8), color="tab:red")
        if testing and isinstance(testing.get(name), (int, float)):
            axis.axhline(float(testing[name]), linestyle="--", color="tab:green",
                         label=f"test: {float(testing[name]):.4g}")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set(xlabel="epoch", ylabel=name, title=name)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def experiment_curves(experiment: Experiment, metric: str | None, title: str,
                      testing: Mapping[str, Any] | None = None) -> Figure:
    """The curves Figure of an experiment folder: its tables, its monitor, and the test values given (else
    its status's, once it has been tested)."""
    testing = testing if testing is not None else experiment.read_status().get("testing")
    return curves_figure(read_rows(experiment.csv("training_agg")), read_rows(experiment.csv("validation")),
                         metric, title, monitored(experiment), testing)


def plot_curves(experiment: Experiment, metric: str | None, title: str,
                testing: Mapping[str, Any] | None = None) -> Path:
    """curves.png: the experiment's learning curves (see `experiment_curves`)."""
    return save_figure(experiment_curves(experiment, metric, title, testing), experiment.curves_file, dpi=100)


def _cell_characters(size: float) -> int:
    """How many characters of a `size`-point font a confusion cell's width (0.6 inch) holds."""
    return max(4, int(0.6 * 72 / (0.6 * size)))


def _stagger(axis: Any, labels: Sequence[str], size: float) -> None:
    """Upright column labels wider than their cell: every other one a row of labels lower, so that
    neighbours never overlap."""
    if max((len(line) for label in labels for line in label.split("\n")), default=0) <= _cell_characters(size):
        return
    depth = max(label.count("\n") + 1 for label in labels)
    for tick in axis.xaxis.get_major_ticks()[1::2]:
        tick.set_pad(3.5 + 1.25 * size * depth)


def _matrix_panel(axis: Any, values: np.ndarray, labels: Sequence[str], form: str, heading: str,
                  size: float, top: float) -> Any:
    """One heat map of a confusion figure (colours from 0 to `top`), its values written in, class names
    upright on both axes."""
    image = axis.imshow(values, cmap="Blues", vmin=0, vmax=top or 1)
    axis.set_xticks(range(len(labels)), labels=labels, rotation=0, fontsize=size)
    axis.set_yticks(range(len(labels)), labels=labels, fontsize=size)
    _stagger(axis, labels, size)
    axis.set(xlabel="predicted class", ylabel="true class", title=heading)
    for (i, j), value in np.ndenumerate(values):
        axis.text(j, i, form.format(value), ha="center", va="center", fontsize=size,
                  color="white" if value > top / 2 else "black")
    return image


def confusion_figure(matrix: Sequence[Sequence[int]], classes: Sequence[str], title: str) -> Figure:
    """The confusion Figure: counts beside the matrix normalised per true class (rows sum to 1), the
    accuracy in the title; class names upright, wrapped to their cell, readable up to ~20 classes."""
    counts = np.asarray(matrix, dtype=float).reshape(len(classes), len(classes))
    totals = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    correct, total = float(np.trace(counts)), float(counts.sum())
    side = max(4.0, 0.6 * len(classes) + 1.5)                      # inches: 0.6 a class (a cell) at least
    size = 10.0 if len(classes) <= 8 else 8.0 if len(classes) <= 24 else 6.0
    labels = [textwrap.fill(str(name), _cell_characters(size), break_long_words=False) for name in classes]
    figure, axes = plt.subplots(1, 2, figsize=(2 * side + 2, side + 1))
    for axis, values, form, heading, top in ((axes[0], counts, "{:.0f}", "counts", counts.max(initial=0.0)),
                                             (axes[1], normalised, "{:.2f}", "normalised per true class", 1.0)):
        image = _matrix_panel(axis, values, labels, form, heading, size, float(top))
        figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04)
    accuracy = correct / total if total else float("nan")
    figure.suptitle(f"{title}\naccuracy {accuracy:.2%} ({correct:.0f} of {total:.0f})")
    figure.tight_layout()
    return figure


def plot_confusion(matrix: Sequence[Sequence[int]], classes: Sequence[str], path: str | Path, title: str) -> Path:
    """A confusion-matrix PNG: true classes in rows, predicted classes in columns, counts and row shares."""
    return save_figure(confusion_figure(matrix, classes, title), Path(path), dpi=100)


def save_figure(figure: Any, path: Path, dpi: int) -> Path:
    """Write a figure as a PNG atomically (a process killed mid-write leaves no truncated picture), and
    close it."""
    try:
        with atomic_path(path) as temporary:
            figure.savefig(temporary, format="png", dpi=dpi)
    finally:
        plt.close(figure)
    return path
