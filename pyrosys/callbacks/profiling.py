"""The trainer's default profiler: none, at no cost per hook."""
from __future__ import annotations

import contextlib

from pytorch_lightning.profilers import PassThroughProfiler

_NOTHING = contextlib.nullcontext()


class NoProfiler(PassThroughProfiler):
    """Lightning's pass-through profiler without the context manager it makes for every hook call
    (about sixty a training step); `training.trainer.profiler: simple` (or any Lightning profiler)
    still profiles."""

    def profile(self, action_name: str) -> contextlib.nullcontext:  # type: ignore[override]
        return _NOTHING
