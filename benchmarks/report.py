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
    """Join a report's lines into its text (ending in a newline), write it to `path` and return it; the sections
    other benchmarks keep in the same file (`write_section`) stay at its end."""
    kept = path.read_text().split(SECTION_START, 1) if path.is_file() else []
    text = "\n".join(lines) + "\n" + (SECTION_START + kept[1] if len(kept) == 2 else "")
    path.write_text(text)
    return text


SECTION_START = "\n<!-- sections written by other benchmarks: "


def write_section(path: Path, title: str, lines: list[str]) -> None:
    """Put a benchmark's own section (`## title` and `lines`) at the end of a report, replacing its earlier one."""
    text = path.read_text() if path.is_file() else ""
    marker = f"<!-- section: {title} -->"
    if SECTION_START not in text:
        text = text.rstrip("\n") + "\n" + SECTION_START + "each between its markers -->\n"
    if marker in text:
        before, rest = text.split(marker, 1)
        text = before + rest.split(marker, 1)[1].lstrip("\n")
    path.write_text(text.rstrip("\n") + "\n\n" + "\n".join([marker, f"## {title}", *lines, marker]) + "\n")


def markdown_table(head: list[str], rows: list[list[str]]) -> list[str]:
    """Rows under a head as the lines of a Markdown table."""
    return ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |",
            *("| " + " | ".join(row) + " |" for row in rows)]
