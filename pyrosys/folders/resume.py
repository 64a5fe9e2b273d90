"""Resume: where an interrupted experiment starts again, and bringing its statistics back to that point."""
from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path

from pyrosys.atomic import atomic_path
from pyrosys.configuration.loading import leaf_paths
from pyrosys.errors import ConfigError
from pyrosys.tracking.tables import CSV_FILES

CONFIGURATION_FILE = "training_configuration.yaml"
RESUMABLE_CHANGES = ("training.terminal_conditions.",)


def resume_point(folder: str | Path) -> tuple[Path, dict, int]:
    """(checkpoint, status, its episode) where an experiment goes on: models/last.ckpt, or models/best.ckpt
    when that one is newer (a run killed at its first validation, between writing best and last); a
    ConfigError says what is missing."""
    from pyrosys.callbacks.checkpoint import read_checkpoint

    folder = Path(folder)
    for name in (CONFIGURATION_FILE, "status.json"):
        if not (folder / name).is_file():
            raise ConfigError(f"this is not an experiment that can be resumed: it has no {name}", file=str(folder),
                              key="--resume", hint="Name an experiment folder written by pyrosys-trainer")
    candidates = [folder / "models" / name for name in ("last.ckpt", "best.ckpt") if (folder / "models" / name).is_file()]
    if not candidates:
        raise ConfigError("this experiment has no checkpoint to go on from (models/last.ckpt): it stopped before "
                          "its first validation", file=str(folder), key="--resume",
                          hint="Start it again with --c and its training_configuration.yaml")
    steps = [(int(read_checkpoint(path, key="--resume")["global_step"]), -index, path)
             for index, path in enumerate(candidates)]
    step, _, path = max(steps)
    return path, json.loads((folder / "status.json").read_text()), step


def _value(tree: Mapping, path: str) -> object:
    node: object = tree
    for key in path.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return "(absent)"
        node = node[key]
    return node


def configuration_changes(saved: Mapping, given: Mapping) -> list[str]:
    """'key: old -> new' for every leaf that differs, terminal conditions excepted."""
    changes = []
    for path in sorted(set(leaf_paths(saved)) | set(leaf_paths(given))):
        if path.startswith(RESUMABLE_CHANGES):
            continue
        old, new = _value(saved, path), _value(given, path)
        if old != new:
            changes.append(f"{path}: {old!r} -> {new!r}")
    return changes


def truncate_statistics(folder: str | Path, episode: int) -> None:
    """Drop the rows an interrupted run wrote after `episode` (they are trained again), atomically per file."""
    folder = Path(folder)
    for table, name in CSV_FILES.items():
        path = folder / name
        if table == "testing" or not path.is_file():
            continue
        with open(path, newline="", encoding="utf-8") as stream:
            reader = csv.DictReader(stream)
            header, rows = reader.fieldnames or [], [r for r in reader if int(r["episode"]) <= episode]
        with atomic_path(path) as temporary, open(temporary, "w", newline="", encoding="utf-8") as stream:
            writer = csv.DictWriter(stream, fieldnames=header)
            writer.writeheader()
            writer.writerows(rows)
