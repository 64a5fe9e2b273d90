"""Resume: where an interrupted experiment starts again, and bringing its statistics back to that point."""
from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path

from pyrosys.atomic import atomic_path
from pyrosys.config import leaf_paths
from pyrosys.errors import ConfigError
from pyrosys.statistics import CSV_FILES

CONFIGURATION_FILE = "training_configuration.yaml"
RESUMABLE_CHANGES = ("training.terminal_conditions.",)


def resume_point(folder: str | Path) -> tuple[Path, dict, int]:
    """(last.ckpt, status, episode of last.ckpt) of an experiment folder, or a ConfigError saying what is missing."""
    from pyrosys.checkpoint import read_checkpoint

    folder = Path(folder)
    for name in (CONFIGURATION_FILE, "status.json", "models/last.ckpt"):
        if not (folder / name).is_file():
            raise ConfigError(f"this is not an experiment that can be resumed: it has no {name}", file=str(folder),
                              key="--resume", hint="Name an experiment folder written by pyrosys-trainer")
    checkpoint = read_checkpoint(folder / "models" / "last.ckpt", key="--resume")
    return folder / "models" / "last.ckpt", json.loads((folder / "status.json").read_text()), \
        int(checkpoint["global_step"])


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
