"""Atomic file writes: write a temporary file beside the target, then rename it over the target.
Light on purpose (no `tempfile`, which pulls in shutil and the compression modules): the experiment
folder, and so the configuration step, use it."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _new_temporary(target: Path) -> Path:
    """A new empty file `.<target name>.<random>.tmp` beside the target, created exclusively."""
    while True:
        path = target.parent / f".{target.name}.{os.urandom(6).hex()}.tmp"
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            return path
        except FileExistsError:
            continue


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it replaces the target in one rename."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = _new_temporary(target)
    try:
        yield temporary
        with open(temporary, "rb") as stream:
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def write_text_atomic(target: str | Path, text: str) -> None:
    """Replace `target` with `text` so that readers see the old or the new content, never half."""
    with atomic_path(target) as temporary:
        temporary.write_text(text, encoding="utf-8")
