"""The lines every benchmark report starts with (its title, the machine, the date, the command), and its writing out."""
from __future__ import annotations

import datetime as dt
import os
import platform
from pathlib import Path


def header(title: str, command: str) -> list[str]:
    """A report's title, then where, when and how it was measured (torch's version once imported)."""
    import sys

    torch = sys.modules.get("torch")
    versions = f"Python {platform.python_version()}" + (f", torch {torch.__version__}" if torch else "")
    return [f"# {title}", "",
            f"Measured {dt.datetime.now().isoformat(timespec='minutes')} on {platform.node()} "
            f"({os.cpu_count()} cores, {platform.platform()}), {versions}.", f"Command: {command}"]


def write_report(lines: list[str], path: Path) -> str:
    """Join a report's lines into its text (ending in a newline), write it to `path` and return it."""
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text
