"""The statistics tables' shape: the spread columns of the aggregate tables, and reading rows back.
Light on purpose (no torch): the MLflow helper, the plots and the grid's tables read them. Their
file names belong to the experiment folder (`pyrosys.folders.experiment.CSV_FILES`)."""
from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from pyrosys.configuration.loading import load_yaml
from pyrosys.folders.experiment import Experiment

# the aggregate tables' per-batch spread of each statistic: <name>_mean, _std, _min, _max
SPREAD = ("_mean", "_std", "_min", "_max")


def copies_validation(table: str, name: str) -> bool:
    """Whether a column of validation_agg repeats the validation table's value (its loss and metrics over
    the whole split are the validation row itself); its counts and spread are its own."""
    return table == "validation_agg" and name not in ("batches", "samples") and not name.endswith(SPREAD)


def read_rows(path: Path) -> list[dict[str, str]]:
    """A CSV file's rows as dictionaries; none when the file does not exist (yet)."""
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def monitored(experiment: Experiment) -> tuple[str, str]:
    """The run's monitored validation statistic as its validation column (val_loss -> loss) and its mode."""
    path = experiment.configuration_file
    validation = (load_yaml(path).get("validation") or {}) if path.is_file() else {}
    return str(validation.get("monitor", "val_loss")).removeprefix("val_"), str(validation.get("mode", "min"))


def best_index(values: Sequence[float], mode: str) -> int:
    """The position of the best value (the first of equals), lowest for mode min, highest for max."""
    return (max if mode == "max" else min)(range(len(values)), key=values.__getitem__)


def best_validation(experiment: Experiment) -> float | None:
    """The run's monitored validation statistic at its best validation (by its mode), or None before any."""
    column, mode = monitored(experiment)
    rows = read_rows(experiment.csv("validation"))
    values = [float(row[column]) for row in rows if row.get(column) not in ("", None)]
    return values[best_index(values, mode)] if values else None
