"""Checkpoints: written atomically, read weights-only, and checked to be PyroSys checkpoints."""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning import callbacks
from pytorch_lightning.plugins.io import TorchCheckpointIO

from pyrosys.atomic import atomic_path
from pyrosys.errors import ConfigError, RunFailed


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O that writes a temporary file and renames it, and loads weights-only."""

    def save_checkpoint(self, checkpoint: dict, path: Any, storage_options: Any = None) -> None:
        try:
            with atomic_path(path) as temporary:
                torch.save(checkpoint, temporary)
        except (OSError, RuntimeError) as error:   # a full disk, a file-size limit, a folder made read-only
            # (torch's zip writer reports a short write as a RuntimeError)
            reason = getattr(error, "strerror", None) or str(error).strip().splitlines()[0]
            raise RunFailed(f"the checkpoint {Path(path).parent.name}/{Path(path).name} could not be written "
                            f"({reason}); nothing half-written was left. Free disk space, or resume the run "
                            "from its last checkpoint somewhere writable") from None

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict:
        return read_checkpoint(path, key="checkpoint")


class ModelCheckpoint(callbacks.ModelCheckpoint):
    """Lightning's ModelCheckpoint, its state key worked out once: Lightning spells it out on every hook
    of every step (a dozen per step), and it depends only on settings fixed at construction. The class
    keeps Lightning's name, which is part of the key: checkpoints of either resume with the other."""

    @property
    def state_key(self) -> str:
        key = self.__dict__.get("_pyrosys_state_key")
        if key is None:
            key = self.__dict__["_pyrosys_state_key"] = super().state_key
        return key


def read_checkpoint(path: str | Path, key: str = "--m") -> dict:
    """A PyroSys checkpoint as plain data, or a ConfigError: missing, corrupt, pickled objects, foreign."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("the checkpoint file does not exist", file=str(path), key=key,
                          hint="Give the path of a .ckpt file, such as <experiment>/models/best.ckpt")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else "unpickling refused"
        raise ConfigError(f"the checkpoint holds objects other than tensors and plain data and was refused "
                          f"unread ({first})", file=str(path), key=key,
                          hint="Only weights-only checkpoints are loaded; re-save it from a trusted source") from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"the checkpoint is corrupt or truncated ({first})", file=str(path), key=key,
                          hint="Use another checkpoint, such as models/last.ckpt") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("pyrosys"), dict) \
            or "state_dict" not in checkpoint:
        raise ConfigError("this is not a PyroSys checkpoint (it carries no PyroSys model description)",
                          file=str(path), key=key, hint="Give a checkpoint written by pyrosys-trainer")
    return checkpoint
