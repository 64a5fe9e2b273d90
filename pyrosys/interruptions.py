"""Interruptions: SIGINT (Ctrl-C) and SIGTERM (what schedulers send) stop a command as `Interrupted`,
never as a traceback. During a fit the stop waits for the end of the batch under way (see
`pyrosys.callbacks.interruption`), so that nothing is left half-done; a second signal, or one outside
a fit, stops at once. Light: the workers install it before torch is imported.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

from pyrosys.errors import Interrupted

SIGNALS = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


class Interruptions:
    """The process's signal handlers for a command's duration, and what was asked of them."""

    def __init__(self) -> None:
        self.requested: int | None = None      # the signal received while a fit defers it
        self.deferring = False                 # inside a fit: wait for the end of the batch

    def handle(self, signum: int, _frame: Any) -> None:
        """Stop now, or (inside a fit, the first time) at the end of the batch under way."""
        if self.deferring and self.requested is None:
            self.requested = signum
            return
        raise interrupted(signum)

    @contextlib.contextmanager
    def installed(self) -> Iterator[Interruptions]:
        """Handle SIGINT and SIGTERM while the block runs (main thread only; elsewhere a no-op)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        saved = {signum: signal.signal(signum, self.handle) for signum in SIGNALS}
        try:
            yield self
        finally:
            self.requested, self.deferring = None, False
            for signum, handler in saved.items():
                signal.signal(signum, handler)


INTERRUPTIONS = Interruptions()


def interrupted(signum: int, episode: int | None = None, checkpoint: str | None = None) -> Interrupted:
    """The exception a signal becomes: exit status 128 + its number."""
    return Interrupted(SIGNALS.get(signum, f"signal {signum}"), 128 + int(signum), episode, checkpoint)
