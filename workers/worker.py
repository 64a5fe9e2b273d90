"""The Worker base of every command: the common flags (MI-Prometheus compatible), console logging, and
the run wrapper that turns a ConfigError into one paragraph on stderr and exit status 2.

Light on purpose (no torch, no Lightning): `--help` and configuration errors answer before them.
"""
from __future__ import annotations

import argparse
import gc
import inspect
import logging
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from typing import ClassVar

from pyrosys.errors import ConfigError, Interrupted, RunFailed, origin
from pyrosys.folders import shown
from pyrosys.interruptions import INTERRUPTIONS

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def base_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The flag every worker has (--ll); workers add the groups below that they honour."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ll", dest="log_level", metavar="LEVEL", default="INFO", type=str.upper,
                        choices=LOG_LEVELS, help="log level: DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return parser


def add_configuration_flags(parser: argparse.ArgumentParser) -> None:
    """--set overrides and --print-config."""
    parser.add_argument("--set", dest="overrides", metavar="KEY=VALUE", nargs="+", action="extend", default=[],
                        help="override configuration keys, e.g. --set training.optimizer.lr=0.01 "
                             "(values are read as YAML)")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved configuration, defaults included, and exit")


def add_run_flags(parser: argparse.ArgumentParser, *, savetag: bool) -> None:
    """Where outputs go, and the device."""
    parser.add_argument("--outdir", metavar="DIR", default=None,
                        help="folder of outputs (default: ./experiments for the trainer)")
    if savetag:
        parser.add_argument("--savetag", metavar="TAG", default=None, help="suffix of the experiment folder name")
    parser.add_argument("--gpu", action="store_true", help="run on the first CUDA device")


class CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time of each record (workers may run many times in one process)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


class ProgressLines(logging.Filter):
    """Lets the plain progress lines (`pyrosys.progress`) reach the console only when no progress bar runs,
    and keeps records marked `file_only` for the run's log file."""

    show = True

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "file_only", False):      # for the run's pyrosys.log; the console says it once itself
            return False
        return self.show or not record.name.startswith("pyrosys.progress")


PROGRESS_LINES = ProgressLines()


def show_progress_lines(show: bool) -> None:
    """Plain progress lines on the console (CI, files) or not (Lightning's bar on a terminal)."""
    PROGRESS_LINES.show = show


def configure_console_logging(level: str) -> None:
    """PyroSys's own messages on stderr at the chosen level; Lightning's banners only at DEBUG."""
    for noisy in ("pytorch_lightning.utilities.rank_zero", "mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*IterableDataset. has .__len__. defined.*")
    warnings.filterwarnings("ignore", r".*isinstance\(treespec, LeafSpec\).*")
    # PyroSys models skip the per-step batch walk on the CPU on purpose (Model.transfer_batch_to_device)
    warnings.filterwarnings("ignore", ".*overridden `transfer_batch_to_device` in `LightningModule`.*")
    # epoch values come from torchmetrics, which already synchronises them across DDP processes
    warnings.filterwarnings("ignore", ".*when logging on epoch level in distributed setting.*")
    logger = logging.getLogger("pyrosys")
    if not any(getattr(h, "_pyrosys_console", False) for h in logger.handlers):
        handler = CurrentStderrHandler()
        handler.addFilter(PROGRESS_LINES)
        handler.setFormatter(logging.Formatter("[pyrosys] %(levelname)s: %(message)s"))
        handler._pyrosys_console = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(level)


REPORT = "This is a bug in PyroSys: please report it with the traceback above and the command that led to it."


def outcome(main: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> tuple[int, str]:
    """Run `main` with SIGINT and SIGTERM handled; its exit status and, when it did not complete, why.
    A ConfigError becomes one paragraph and status 2; a failed run (diverged loss, a full disk) one line
    and status 1; an interruption one line and 128 + the signal's number. Only a PyroSys bug prints a
    traceback, with a line asking to report it (status 1)."""
    try:
        with INTERRUPTIONS.installed():
            return main(args), ""
    except ConfigError as error:
        print(error.paragraph(), file=sys.stderr)
        return 2, error.paragraph()
    except RunFailed as error:
        print(f"[pyrosys] the run failed: {error}", file=sys.stderr)
        return 1, str(error)
    except Interrupted as error:
        where = f" at episode {error.episode}" if error.episode is not None else ""
        print(f"[pyrosys] {error}{where}" + (f"; --resume goes on from {shown(error.checkpoint)}" if error.checkpoint
                                              else ""), file=sys.stderr)
        return error.exit_code, f"{error}{where}"
    except KeyboardInterrupt:                       # a second Ctrl-C while the first was being handled
        print("[pyrosys] interrupted by SIGINT", file=sys.stderr)
        return 130, "interrupted by SIGINT"
    except OSError as error:                        # the user's files and disks: no traceback
        reason = f"{error.strerror or error}" + (f": {error.filename}" if error.filename else "")
        print(f"[pyrosys] the run failed: {reason}", file=sys.stderr)
        return 1, reason
    except Exception as error:  # noqa: BLE001 - a bug: its traceback, and whose it is
        traceback.print_exc()
        whose, place = origin(error)
        print(f"[pyrosys] {REPORT}" if whose == "pyrosys" else
              f"[pyrosys] the run failed in a component's own code ({place}): see the traceback above", file=sys.stderr)
        text = str(error).strip()
        reason = f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"
        return 1, ("bug: " if whose == "pyrosys" else "") + reason


def run(main: Callable[[argparse.Namespace], int], parser: argparse.ArgumentParser,
        argv: Sequence[str] | None = None) -> int:
    """Parse the flags and run `main` (see `outcome`): the console commands' exit status."""
    args = parser.parse_args(argv)
    configure_console_logging(args.log_level)
    code = outcome(main, args)[0]
    if argv is None:           # a console command, about to exit
        quick_exit()
    return code


def quick_exit() -> None:
    """Spare an exiting process the interpreter's last garbage collection, a walk over every object
    torch and Lightning made (about 1.5 s here); atexit handlers and module teardown still run, and
    PyroSys closes its files and writers itself."""
    gc.freeze()


class Worker:
    """A console command: its flags (`add_flags`) and what it does with them (`run`, an exit status).
    Commands subclass it and register it by name (`@register("worker", name=...)`), so that grid workers
    can run them in their pool processes without importing one another."""

    prog: ClassVar[str] = ""          # the console command; its --help description is the class docstring

    def add_flags(self, parser: argparse.ArgumentParser) -> None:
        """The command's own flags, beside --ll."""

    def run(self, args: argparse.Namespace) -> int:
        """Do the command's work; its exit status."""
        raise NotImplementedError

    def parser(self) -> argparse.ArgumentParser:
        """Every flag of the command."""
        result = base_parser(self.prog, inspect.getdoc(self) or "")
        self.add_flags(result)
        return result

    @classmethod
    def main(cls, argv: Sequence[str] | None = None) -> int:
        """The console command's entry point."""
        worker = cls()
        return run(worker.run, worker.parser(), argv)
