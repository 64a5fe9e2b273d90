"""Experiment folders: one per run, `<outdir>/<Problem>/<Model>/<time>[_<tag>]/`, with a status file."""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
from pathlib import Path
from typing import Any

from pyrosys.atomic import write_text_atomic
from pyrosys.errors import ConfigError

STATUS_FILE = "status.json"
LOG_FILE = "pyrosys.log"


def timestamp() -> str:
    """The folder-name time stamp, YYYYmmdd_HHMMSS."""
    return dt.datetime.now().strftime("%Y%m%d_%H%M%S")


def now_iso() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def create_unique_folder(parent: Path, name: str) -> Path:
    """Make `parent/name`, or `name_1`, `name_2`... when another run took it in the same second."""
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"the output folder cannot be created ({error.strerror})", file=str(parent),
                          key="--outdir", hint="Choose a writable folder with --outdir") from None
    if not os.access(parent, os.W_OK):
        raise ConfigError("the output folder is not writable", file=str(parent), key="--outdir",
                          hint="Choose a writable folder with --outdir")
    for attempt in range(1000):
        folder = parent / (name if attempt == 0 else f"{name}_{attempt}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise ConfigError("no free experiment folder name", file=str(parent), key="--outdir")


def experiment_folders(root: str | Path) -> list[Path]:
    """Experiment folders at or under `root` (a status.json beside a training_configuration.yaml), in
    name order; MLflow's artifact copies and testing_* folders are not experiments."""
    root = Path(root)
    found = []
    for status in sorted(root.rglob(STATUS_FILE)):
        inside = status.parent.relative_to(root).parts
        if "mlflow" not in inside and not any(part.startswith("testing_") for part in inside) \
                and (status.parent / "training_configuration.yaml").is_file():
            found.append(status.parent)
    return found


class Experiment:
    """The folder of one run and its status.json (running, then completed or failed)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.status: dict[str, Any] = {}

    @classmethod
    def create(cls, outdir: str | Path, problem: str, model: str, tag: str | None = None) -> Experiment:
        """A fresh experiment folder under `outdir/<problem>/<model>/`."""
        name = timestamp() + (f"_{tag}" if tag else "")
        return cls(create_unique_folder(Path(outdir) / problem / model, name))

    @classmethod
    def create_named(cls, outdir: str | Path, name: str) -> Experiment:
        """A fresh experiment folder `outdir/<name>` (grid runs), `<name>_1`... when it is taken."""
        return cls(create_unique_folder(Path(outdir), name))

    @classmethod
    def reopen(cls, folder: str | Path) -> Experiment:
        """An existing experiment folder, its status.json read back (to resume it)."""
        experiment = cls(Path(folder))
        experiment.status = json.loads((experiment.folder / STATUS_FILE).read_text())
        return experiment

    @property
    def models_dir(self) -> Path:
        return self.folder / "models"

    def write_status(self, **fields: Any) -> None:
        """Update status.json atomically with `fields`."""
        self.status.update(fields)
        write_text_atomic(self.folder / STATUS_FILE, json.dumps(self.status, indent=2, default=str) + "\n")

    def start_logging(self, level: str = "INFO") -> logging.Handler:
        """Send PyroSys's and Lightning's log records to pyrosys.log in the folder."""
        handler = logging.FileHandler(self.folder / LOG_FILE, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(level)
        for name in ("pyrosys", "pytorch_lightning", "lightning", "lightning.pytorch"):
            logger = logging.getLogger(name)
            logger.addHandler(handler)
            if logger.level == logging.NOTSET or logger.level > logging.getLevelName(level):
                logger.setLevel(level)
        return handler

    @staticmethod
    def stop_logging(handler: logging.Handler) -> None:
        for name in ("pyrosys", "pytorch_lightning", "lightning", "lightning.pytorch"):
            logging.getLogger(name).removeHandler(handler)
        handler.close()
