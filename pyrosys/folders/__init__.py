"""The folders runs write: one Experiment per run, one Grid per grid, and resuming an experiment.
Every file and folder name of both layouts is spelt here and nowhere else; `shown` is how commands print a path."""
from __future__ import annotations

from pathlib import Path


def shown(path: str | Path) -> str:
    """A path as the user should read it in a message: relative to the working folder when it lies inside it,
    absolute otherwise, and never with '..' (a configuration's `../../predictions.csv` is shown where it is)."""
    resolved = Path(path).resolve()
    here = Path.cwd().resolve()
    if resolved == here:
        return "."
    return str(resolved.relative_to(here)) if resolved.is_relative_to(here) else str(resolved)
