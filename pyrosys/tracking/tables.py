"""The statistics tables' shape: the spread columns of the aggregate tables, and reading rows back.
Light on purpose (no torch): the MLflow helper, the plots and the grid's tables read them. Their
file names belong to the experiment folder (`pyrosys.folders.experiment.CSV_FILES`)."""
from __future__ import annotations

import csv
from pathlib import Path

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
