"""The experiment folder: one per run, `<outdir>/<Problem>/<Model>/<time>[_<tag>]/`.

`Experiment` owns every file and folder name of that layout (DESIGN's "Experiments" section), and
`TestingFolder` those of a `testing_<time>/` inside it; every writer and reader asks them for paths.
Light on purpose (no torch): the grid's process, the analyzer and resume read folders through it.
"""
from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from pyrosys.atomic import write_text_atomic
from pyrosys.errors import ConfigError

# statistics table -> its CSV file (the testing table lives in a testing folder)
CSV_FILES = {"training": "training_statistics.csv", "training_agg": "training_set_agg_statistics.csv",
             "validation": "validation_statistics.csv", "validation_agg": "validation_set_agg_statistics.csv",
             "testing": "testing_statistics.csv"}
LOGGERS = ("pyrosys", "pytorch_lightning", "lightning", "lightning.pytorch")
# a run in one of these states goes on from its last checkpoint when its grid resumes ("running": its
# process died without a word)
RESUMABLE_STATES = ("running", "interrupted")
# names the experiment folder to a multi-process (DDP) run's other processes, which train into it
HANDOVER_ENV = "PYROSYS_EXPERIMENT_DIR"
# a search trial's run (set by the grid's job): JSON {storage, study, trial_id, number, pruner}
TRIAL_ENV = "PYROSYS_TRIAL"
# a search trial run by Ray Tune (set by the trainable): JSON {folder}; its validations are reported to Tune
TUNE_ENV = "PYROSYS_TUNE"
# a run on Ray Train's workers (set by its worker function): JSON {folder_file, use_gpu}; validations reported to Ray
RAY_TRAIN_ENV = "PYROSYS_RAY_TRAIN"
TUNE_METRIC = "objective"        # the name under which that run reports its monitored validation statistic


SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]{0,254}")


def safe_name(value: str | None, flag: str) -> str | None:
    """A name given for a folder (--run-name, --savetag) as one plain path component, or a ConfigError:
    nothing a user names may write outside --outdir."""
    if value is None:
        return None
    if not SAFE_NAME.fullmatch(value) or value in (".", ".."):
        raise ConfigError(f"{value!r} cannot name a folder: it must be one plain name (letters, digits and . _ + = -, "
                          "starting with a letter or digit; no '/', no '..')", file="the command line", key=flag,
                          hint="Use --outdir to choose where experiments go, and a plain name here")
    return value


def timestamp() -> str:
    """The folder-name time stamp, YYYYmmdd_HHMMSS."""
    return dt.datetime.now().strftime("%Y%m%d_%H%M%S")


def now_iso() -> str:
    """The local time with its offset, to the second: what status files record."""
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
    """Experiment folders at or under `root` (a status file beside a saved configuration), in name
    order; MLflow's artifact copies and testing folders are not experiments."""
    root = Path(root)
    found = []
    for status in sorted(root.rglob(Experiment.STATUS)):
        inside = status.parent.relative_to(root).parts
        if "mlflow" not in inside and not any(part.startswith(TestingFolder.PREFIX) for part in inside) \
                and Experiment(status.parent).configuration_file.is_file():
            found.append(status.parent)
    return found


class QuietFileHandler(logging.FileHandler):
    """The run's log file: a record that cannot be written (a full disk) is dropped, without the
    traceback logging would print; the console says what matters."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        pass


class TestingFolder:
    """One test of a model, `testing_<time>/` (or `repeat_<i>/` inside one): its files by name."""

    __test__ = False                      # not a pytest test class, whatever its name says
    PREFIX = "testing_"
    STATISTICS = CSV_FILES["testing"]
    SUMMARY = "testing_set_agg_statistics.yaml"   # the whole-set statistics
    REPEATS = "testing_repeats.yaml"              # with --n: mean and std over the repeats
    CONFIGURATION = "testing_configuration.yaml"
    CONFUSION_CSV, CONFUSION_PNG = "confusion_matrix.csv", "confusion_matrix.png"
    PER_PROTEIN = "testing_per_protein.csv"       # residue tasks: one row of statistics per test protein

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    @classmethod
    def create(cls, parent: Path, name: str | None = None) -> TestingFolder:
        """A fresh `parent/testing_<time>/` (or `parent/<name>/`)."""
        return cls(create_unique_folder(Path(parent), name or f"{cls.PREFIX}{timestamp()}"))

    def repeat(self, index: int) -> TestingFolder:
        """The folder of the index-th of several tests (`repeat_<index>/`)."""
        return TestingFolder.create(self.folder, f"repeat_{index}")

    @property
    def statistics_file(self) -> Path:
        return self.folder / self.STATISTICS

    @property
    def summary_file(self) -> Path:
        return self.folder / self.SUMMARY

    @property
    def repeats_file(self) -> Path:
        return self.folder / self.REPEATS

    @property
    def configuration_file(self) -> Path:
        return self.folder / self.CONFIGURATION

    @property
    def confusion_files(self) -> tuple[Path, Path]:
        return self.folder / self.CONFUSION_CSV, self.folder / self.CONFUSION_PNG

    @property
    def per_protein_file(self) -> Path:
        return self.folder / self.PER_PROTEIN

    def result_file(self) -> Path:
        """What a grid's table reads: the repeats' summary when there is one, else the whole-set summary."""
        return self.repeats_file if self.repeats_file.is_file() else self.summary_file


class Experiment:
    """The folder of one run: its file names, its status.json (running, then completed or failed), and
    its log file. The constructor only stores the folder; `create` and `reopen` touch the disk."""

    CONFIGURATION = "training_configuration.yaml"
    STATUS = "status.json"
    LOG = "pyrosys.log"
    DESCRIPTION = "description.json"
    MLFLOW_RUN = "mlflow_run.json"
    CURVES = "curves.png"
    TENSORBOARD = "tensorboard"
    MODELS = "models"
    BEST, LAST, BUNDLE = "best.ckpt", "last.ckpt", "best"
    GRID_TESTING_LOG = "grid_testing.log"

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.status: dict[str, Any] = {}
        self._held: Any = None

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
        experiment.status = experiment.read_status()
        return experiment

    # -- names --------------------------------------------------------------------------------------

    @property
    def configuration_file(self) -> Path:
        return self.folder / self.CONFIGURATION

    @property
    def status_file(self) -> Path:
        return self.folder / self.STATUS

    @property
    def log_file(self) -> Path:
        return self.folder / self.LOG

    @property
    def description_file(self) -> Path:
        return self.folder / self.DESCRIPTION

    @property
    def mlflow_run_file(self) -> Path:
        return self.folder / self.MLFLOW_RUN

    @property
    def curves_file(self) -> Path:
        return self.folder / self.CURVES

    @property
    def tensorboard_dir(self) -> Path:
        return self.folder / self.TENSORBOARD

    @property
    def models_dir(self) -> Path:
        return self.folder / self.MODELS

    @property
    def best_checkpoint(self) -> Path:
        return self.models_dir / self.BEST

    @property
    def last_checkpoint(self) -> Path:
        return self.models_dir / self.LAST

    @property
    def bundle_dir(self) -> Path:
        return self.models_dir / self.BUNDLE

    @property
    def grid_testing_log(self) -> Path:
        return self.folder / self.GRID_TESTING_LOG

    def csv(self, table: str) -> Path:
        """The CSV file of a training or validation statistics table (see CSV_FILES)."""
        return self.folder / CSV_FILES[table]

    def testing_folders(self) -> list[TestingFolder]:
        """The tests of this experiment, oldest first."""
        found = [path for path in self.folder.glob(f"{TestingFolder.PREFIX}*") if path.is_dir()]
        return [TestingFolder(path) for path in sorted(found, key=lambda p: p.stat().st_mtime)]

    @staticmethod
    def holding(checkpoint: str | Path) -> Path:
        """The experiment folder a checkpoint belongs to (its models/ folder's parent), or the
        checkpoint's own folder for a checkpoint kept elsewhere."""
        folder = Path(checkpoint).resolve().parent
        return folder.parent if folder.name == Experiment.MODELS else folder

    # -- status and log ------------------------------------------------------------------------------

    def read_status(self) -> dict[str, Any]:
        """status.json as written last (a ConfigError when it is missing or unreadable)."""
        try:
            return json.loads(self.status_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ConfigError(f"the status file cannot be read ({error})", file=str(self.status_file),
                              hint="Name an experiment folder written by pyrosys-trainer") from None

    def state(self) -> str | None:
        """The status word (running, completed, failed), or None when there is no readable status file."""
        try:
            return self.read_status().get("status")
        except ConfigError:
            return None

    def write_status(self, **fields: Any) -> None:
        """Update status.json with `fields`: atomically, or, on a disk too full for the temporary file,
        in place (a status file is one small block, which its own truncation frees), so that even a
        run that failed for want of space leaves a true status."""
        self.status.update(fields)
        text = json.dumps(self.status, indent=2, default=str) + "\n"
        try:
            write_text_atomic(self.status_file, text)
        except OSError as error:
            if error.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            with open(self.status_file, "w", encoding="utf-8") as stream:
                stream.write(text)

    def read_mlflow_run(self) -> dict | None:
        """The MLflow run this experiment logs to (mlflow_run.json), or None when it has none readable."""
        try:
            run = json.loads(self.mlflow_run_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return run if isinstance(run, dict) else None

    def hold(self) -> None:
        """Become the one writer of this folder (a lock on its log file, released when the process
        ends); a second writer, such as a second --resume of the same experiment, is refused."""
        stream = open(self.log_file, "a", encoding="utf-8")     # noqa: SIM115 - held until release()
        try:
            fcntl.flock(stream, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            stream.close()
            holder = self._writer()
            raise ConfigError("another process is writing this experiment" + (f" ({holder})" if holder else ""),
                              file=str(self.folder), key="--resume",
                              hint="Wait for it to end (or stop it), then resume") from None
        self._held = stream

    def release(self) -> None:
        """Stop being this folder's writer."""
        if self._held is not None:
            self._held.close()
            self._held = None

    def _writer(self) -> str:
        """Who holds the folder, as its description.json tells: process and command."""
        try:
            described = json.loads(self.description_file.read_text(encoding="utf-8"))
            return f"process {described['pid']} on {described['host']}: {' '.join(described['command'])}"
        except (OSError, ValueError, KeyError, TypeError):
            return ""

    def start_logging(self, level: str = "INFO") -> logging.Handler:
        """Send PyroSys's and Lightning's log records to pyrosys.log in the folder."""
        handler = QuietFileHandler(self.log_file, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(level)
        for name in LOGGERS:
            logger = logging.getLogger(name)
            logger.addHandler(handler)
            if logger.level == logging.NOTSET or logger.level > logging.getLevelName(level):
                logger.setLevel(level)
        return handler

    @staticmethod
    def stop_logging(handler: logging.Handler) -> None:
        """Detach and close the handler `start_logging` made."""
        for name in LOGGERS:
            logging.getLogger(name).removeHandler(handler)
        handler.close()
