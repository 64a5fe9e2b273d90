"""Plots written at the end of runs: learning curves and, for classifiers, a confusion matrix."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from pyrosys.atomic import atomic_path  # noqa: E402
from pyrosys.folders.experiment import Experiment  # noqa: E402
from pyrosys.tracking.tables import read_rows  # noqa: E402


def plot_curves(experiment: Experiment, metric: str | None, title: str) -> Path:
    """curves.png: training (epoch means) and validation loss, and the main metric, per epoch."""
    training = read_rows(experiment.csv("training_agg"))
    validation = read_rows(experiment.csv("validation"))
    panels = [("loss", "loss")] + ([(metric, metric)] if metric else [])
    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for axis, (name, label) in zip(axes[0], panels):
        if training and f"{name}_mean" in training[0]:
            axis.plot([int(r["epoch"]) + 1 for r in training], [float(r[f"{name}_mean"]) for r in training],
                      marker="o", label="training (epoch mean)")
        if validation and name in validation[0]:
            # validations inside an epoch count as fractions of it
            axis.plot([float(r["episode"]) / max(1.0, float(training[0]["episode"]) if training else 1.0)
                       for r in validation], [float(r[name]) for r in validation], marker="s", label="validation")
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        axis.set_title(label)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    return save_figure(figure, experiment.curves_file, dpi=100)


def plot_confusion(matrix: Sequence[Sequence[int]], classes: Sequence[str], path: str | Path, title: str) -> Path:
    """A confusion-matrix PNG: true classes in rows, predicted classes in columns, counts written in."""
    size = max(4.0, 0.5 * len(classes) + 2)
    figure, axis = plt.subplots(figsize=(size, size))
    image = axis.imshow(matrix, cmap="Blues")
    axis.set_xticks(range(len(classes)), labels=classes, rotation=45, ha="right")
    axis.set_yticks(range(len(classes)), labels=classes)
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    axis.set_title(title)
    peak = max((max(row) for row in matrix), default=0)
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            axis.text(j, i, str(count), ha="center", va="center", color="white" if count > peak / 2 else "black")
    figure.colorbar(image, ax=axis, fraction=0.046)
    figure.tight_layout()
    return save_figure(figure, Path(path), dpi=100)


def save_figure(figure: Any, path: Path, dpi: int) -> Path:
    """Write a figure as a PNG atomically (a process killed mid-write leaves no truncated picture), and
    close it."""
    try:
        with atomic_path(path) as temporary:
            figure.savefig(temporary, format="png", dpi=dpi)
    finally:
        plt.close(figure)
    return path
