"""The grid folder: `<outdir>/grid_<time>[_<tag>]/`, with the expanded plan, one status row per run,
each run's console log, the lock that keeps one grid worker per folder, and the grid's tables.

`Grid` owns every file and folder name of that layout; the runs themselves are ordinary experiment
folders inside it (see `Experiment`).
"""
from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pyrosys.atomic import write_text_atomic
from pyrosys.errors import ConfigError
from pyrosys.folders.experiment import create_unique_folder, timestamp

STATUS_COLUMNS = ("run", "status", "reason", "folder", "seed", "pid", "started", "finished", "seconds",
                  "attempts")
STATES = ("pending", "running", "completed", "pruned", "failed")     # pruned: a search stopped the run early


class Grid:
    """The folder of one grid and its file names. The constructor only stores the folder."""

    PREFIX = "grid_"
    PLAN = "grid.yaml"
    STATUS = "grid_status.csv"
    LOCK = "grid.lock"
    LOGS = "logs"
    TESTING = "grid_testing.csv"
    ANALYSIS = ("analysis.csv", "analysis.md", "analysis.png")
    STUDY = "optuna.db"               # a search's Optuna studies (SQLite): optuna-dashboard sqlite:///<grid>/optuna.db
    SEARCH_PLOTS = ("search_history.png", "search_importances.png", "search_parallel.png")
    TUNE = "tune"                     # a search on Ray Tune: Tune's experiment folder (Tuner.restore reads it)

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    @classmethod
    def create(cls, outdir: str | Path, tag: str | None = None) -> Grid:
        """A fresh `<outdir>/grid_<time>[_<tag>]` folder."""
        return cls(create_unique_folder(Path(outdir), f"{cls.PREFIX}{timestamp()}" + (f"_{tag}" if tag else "")))

    @classmethod
    def holding(cls, run_folder: str | Path) -> Grid | None:
        """The grid a run's experiment folder belongs to (its parent holds a grid plan), or None."""
        parent = Path(run_folder).resolve().parent
        return cls(parent) if (parent / cls.PLAN).is_file() else None

    @property
    def plan_file(self) -> Path:
        return self.folder / self.PLAN

    @property
    def status_file(self) -> Path:
        return self.folder / self.STATUS

    @property
    def testing_file(self) -> Path:
        return self.folder / self.TESTING

    @property
    def analysis_files(self) -> tuple[Path, Path, Path]:
        """analysis.csv, analysis.md and analysis.png."""
        csv_file, markdown, picture = (self.folder / name for name in self.ANALYSIS)
        return csv_file, markdown, picture

    @property
    def study_file(self) -> Path:
        return self.folder / self.STUDY

    @property
    def study_url(self) -> str:
        """The SQLAlchemy URL Optuna opens the studies with."""
        return f"sqlite:///{self.study_file.resolve()}"

    def search_plots(self, study: str, several: bool) -> list[Path]:
        """The pictures of a study's search (prefixed with the study's name when the grid holds several)."""
        return [self.folder / (f"{study}_{name}" if several else name) for name in self.SEARCH_PLOTS]

    @property
    def tune_folder(self) -> Path:
        """Where a search on Ray Tune keeps its Tune experiments (one per study); its existence says the grid
        ran on Tune."""
        return self.folder / self.TUNE

    def log_of(self, run: str) -> Path:
        """The console output of one run."""
        return self.folder / self.LOGS / f"{run}.log"

    def attempt_folders(self, name: str) -> Iterator[Path]:
        """The folders a run has had so far: `name`, then `name_1`, `name_2`... one per retry."""
        attempt, folder = 0, self.folder / name
        while folder.exists():
            yield folder
            attempt += 1
            folder = self.folder / f"{name}_{attempt}"

    def free_run_name(self, name: str) -> str:
        """`name`, or `name_1`, `name_2`... when an earlier attempt's folder has it."""
        taken = sum(1 for _ in self.attempt_folders(name))
        return f"{name}_{taken}" if taken else name

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One grid worker per grid folder: a second one is refused instead of running the same runs twice."""
        with open(self.folder / self.LOCK, "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.seek(0)
                raise ConfigError(f"another grid worker is running this grid (process {lock.read().strip() or '?'})",
                                  file=str(self.folder), key="--resume",
                                  hint="Wait for it to finish, or stop it first") from None
            lock.seek(0)
            lock.truncate()
            lock.write(str(os.getpid()))
            lock.flush()
            yield


class GridStatus:
    """grid_status.csv: one row per run (pending, running, completed, pruned, failed), rewritten atomically."""

    def __init__(self, grid: Grid, runs: Sequence[Any]) -> None:
        self.path = grid.status_file
        self.rows: dict[str, dict[str, Any]] = {run.name: {"run": run.name, "status": "pending", "attempts": 0,
                                                           "seed": "" if run.seed is None else run.seed}
                                                for run in runs}
        if self.path.is_file():
            with open(self.path, newline="", encoding="utf-8") as stream:
                for row in csv.DictReader(stream):
                    if row["run"] in self.rows:
                        self.rows[row["run"]].update({k: v for k, v in row.items() if v not in ("", None)})

    def add(self, run: Any) -> None:
        """A row for a run planned while the grid goes (a search's trial), pending, unless the file has it."""
        self.rows.setdefault(run.name, {"run": run.name, "status": "pending", "attempts": 0,
                                        "seed": "" if run.seed is None else run.seed})

    def update(self, name: str, **fields: Any) -> None:
        """Change one run's row and write the file at once."""
        self.rows[name].update(fields)
        self.save()

    def save(self) -> None:
        """Write every row, atomically."""
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=STATUS_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in self.rows.values():
            writer.writerow({column: row.get(column, "") for column in STATUS_COLUMNS})
        write_text_atomic(self.path, text.getvalue())

    def counts(self) -> dict[str, int]:
        """How many runs are in each state."""
        result = dict.fromkeys(STATES, 0)
        for row in self.rows.values():
            result[row["status"]] = result.get(row["status"], 0) + 1
        return result
