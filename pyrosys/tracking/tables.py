"""The statistics tables: their CSV files and the spread columns of the aggregate tables, named in one
place. Light on purpose (no torch): the MLflow helper, the plots and the grid's tables read them."""
from __future__ import annotations

import csv
from pathlib import Path

# table -> CSV file of the experiment folder (DESIGN's layout)
CSV_FILES = {"training": "training_statistics.csv", "training_agg": "training_set_agg_statistics.csv",
             "validation": "validation_statistics.csv", "validation_agg": "validation_set_agg_statistics.csv",
             "testing": "testing_statistics.csv"}

# a test's whole-set statistics (testing_<time>/), and with --n their mean and std over the repeats
TESTING_SUMMARY, TESTING_REPEATS = "testing_set_agg_statistics.yaml", "testing_repeats.yaml"

# the aggregate tables' per-batch spread of each statistic: <name>_mean, _std, _min, _max
SPREAD = ("_mean", "_std", "_min", "_max")


def read_rows(path: Path) -> list[dict[str, str]]:
    """A CSV file's rows as dictionaries; none when the file does not exist (yet)."""
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))
