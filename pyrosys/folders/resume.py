"""Resume: where an interrupted experiment starts again, and bringing its statistics back to that point."""
from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pyrosys.atomic import atomic_path
from pyrosys.configuration.loading import leaf_paths, value_at
from pyrosys.errors import ConfigError
from pyrosys.folders.experiment import Experiment
from pyrosys.folders.grid import Grid

RESUMABLE_CHANGES = ("training.terminal_conditions.", "training.backend", "training.ray.")   # what, not where
ABSENT = "(absent)"


@dataclass
class ResumePoint:
    """Where an interrupted experiment goes on: the checkpoint, its episode, and the configuration the
    run was trained with (as the checkpoint carries it, which no edit of the folder's files changes)."""

    checkpoint: Path
    episode: int
    configuration: dict


def resume_point(experiment: Experiment) -> ResumePoint:
    """Where an experiment goes on: models/last.ckpt, or models/best.ckpt when that one is newer (a run
    killed at its first validation, between writing best and last); a ConfigError says what is missing
    or unreadable."""
    from pyrosys.callbacks.checkpoint import read_checkpoint    # torch: only once a run resumes

    if Grid(experiment.folder).plan_file.is_file():
        raise ConfigError("this is a grid folder, not an experiment", file=str(experiment.folder), key="--resume",
                          hint=f"Resume a grid with pyrosys-grid-trainer --resume {experiment.folder}")
    for path in (experiment.configuration_file, experiment.status_file):
        if not path.is_file():
            raise ConfigError(f"this is not an experiment that can be resumed: it has no {path.name}",
                              file=str(experiment.folder), key="--resume",
                              hint="Name an experiment folder written by pyrosys-trainer")
    candidates = [path for path in (experiment.last_checkpoint, experiment.best_checkpoint) if path.is_file()]
    if not candidates:
        raise ConfigError(f"this experiment has no checkpoint to go on from ({Experiment.MODELS}/{Experiment.LAST}): "
                          "it stopped before its first validation", file=str(experiment.folder), key="--resume",
                          hint=f"Start it again with --c and its {Experiment.CONFIGURATION}")
    read = [(read_checkpoint(path, key="--resume"), path) for path in candidates]
    steps = [(int(checkpoint.get("global_step", -1)), -index, path, checkpoint)
             for index, (checkpoint, path) in enumerate(read)]
    step, _, path, checkpoint = max(steps, key=lambda item: item[:2])
    configuration = checkpoint["pyrosys"].get("configuration")
    if step < 0 or not isinstance(configuration, dict):
        raise ConfigError("the checkpoint carries no training position or configuration to go on from",
                          file=str(path), key="--resume", hint="Start the experiment again")
    return ResumePoint(path, step, configuration)


def configuration_changes(saved: Mapping, given: Mapping) -> list[str]:
    """'key: old -> new' for every leaf that differs, terminal conditions excepted."""
    changes = []
    for path in sorted(set(leaf_paths(saved)) | set(leaf_paths(given))):
        if path.startswith(RESUMABLE_CHANGES):
            continue
        old, new = value_at(saved, path, ABSENT), value_at(given, path, ABSENT)
        if old != new:
            changes.append(f"{path}: {old!r} -> {new!r}")
    return changes


def clear_interrupted_writes(experiment: Experiment) -> None:
    """Remove a checkpoint's temporary file that a kill left behind mid-write."""
    for stale in experiment.models_dir.glob(".*.tmp"):
        stale.unlink()


def truncate_statistics(experiment: Experiment, episode: int) -> None:
    """Drop the rows an interrupted run wrote after `episode` (they are trained again), and a last row a
    kill cut short, atomically per file; a damaged row before it is refused, naming file and line."""
    for table in ("training", "training_agg", "validation", "validation_agg"):
        path = experiment.csv(table)
        if not path.is_file():
            continue
        header, rows = _complete_rows(path)
        kept = [row for row in rows if int(row["episode"]) <= episode]
        with atomic_path(path) as temporary, open(temporary, "w", newline="", encoding="utf-8") as stream:
            writer = csv.DictWriter(stream, fieldnames=header)
            writer.writeheader()
            writer.writerows(kept)


def _complete_rows(path: Path) -> tuple[list[str], list[dict]]:
    """A statistics table's header and whole rows: a last line without its newline (the row a kill cut
    short) is left out; any other row that is not whole is a ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"the statistics table cannot be read ({error})", file=str(path), key="--resume",
                          hint="Restore the file, or start the experiment again") from None
    if not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]
    reader = csv.DictReader(text.splitlines(keepends=True))
    header = list(reader.fieldnames or [])
    rows = []
    for line, row in enumerate(reader, start=2):
        if "episode" not in row or None in row.values() or None in row or not str(row["episode"]).isdigit():
            raise ConfigError(f"line {line}: the row is damaged ({','.join(map(str, row.values()))[:80]!r})",
                              file=str(path), key="--resume",
                              hint="Remove the damaged row (the run goes on from its checkpoint), or start again")
        rows.append(row)
    return header, rows
