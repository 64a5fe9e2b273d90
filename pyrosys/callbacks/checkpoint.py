"""Checkpoints: written atomically, read weights-only, checked against their records' CRC-32s, and checked to
be PyroSys checkpoints."""
from __future__ import annotations

import pickle
import re
import zipfile
import zlib
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
    """A PyroSys checkpoint as plain data, or a ConfigError: missing, corrupt or damaged, pickled objects,
    foreign, or with weights that are not a mapping of names to tensors."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("the checkpoint file does not exist", file=str(path), key=key,
                          hint="Give the path of a .ckpt file, such as <experiment>/models/best.ckpt")
    checkpoint = _load(path, key)
    _check_records(path, key)
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("pyrosys"), dict) \
            or "state_dict" not in checkpoint:
        raise ConfigError("this is not a PyroSys checkpoint (it carries no PyroSys model description)",
                          file=str(path), key=key, hint="Give a checkpoint written by pyrosys-trainer")
    state = checkpoint["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise ConfigError("the checkpoint's 'state_dict' is not a mapping of names to tensors", file=str(path),
                          key="state_dict", hint="The checkpoint is damaged; use another, such as models/last.ckpt")
    return checkpoint


def _load(path: Path, key: str) -> Any:
    """torch.load, weights-only; whatever it raises on a foreign or damaged file becomes a ConfigError."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = _unpickler_reason(error)
        if not re.search(r"GLOBAL |unrecognized function|Can only create new object|must be imported", reason):
            raise _corrupt(path, key, reason) from None
        raise ConfigError(f"the checkpoint holds objects other than tensors and plain data and was refused "
                          f"unread ({reason})", file=str(path), key=key,
                          hint="Only weights-only checkpoints are loaded; re-save it from a trusted source") from None
    except Exception as error:  # noqa: BLE001 - garbage makes the unpickler raise anything (IndexError, KeyError...)
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise _corrupt(path, key, f"{type(error).__name__}: {first}" if first else type(error).__name__) from None


def _unpickler_reason(error: pickle.UnpicklingError) -> str:
    """What torch's weights-only unpickler objected to, without the advice torch wraps around it."""
    body = str(error).split("Check the documentation of torch.load")[0].strip()
    last = body.splitlines()[-1].strip() if body else "unpickling refused"
    return last.split("WeightsUnpickler error: ")[-1].split(". Please use")[0].strip() or "unpickling refused"


def _corrupt(path: Path, key: str, reason: str) -> ConfigError:
    """The refusal of a checkpoint whose bytes are not what torch wrote."""
    return ConfigError(f"the checkpoint is corrupt or truncated ({reason})", file=str(path), key=key,
                       hint="Use another checkpoint, such as models/last.ckpt")


def _check_records(path: Path, key: str) -> None:
    """Refuse a checkpoint whose bytes changed since it was written: torch's zip format keeps a CRC-32 of
    every record (tensors included), checked here on reading, so that writing, at every validation, costs
    nothing more. Records written without one (torch's CRC option off) are not checked."""
    if not zipfile.is_zipfile(path):           # torch's legacy format carries no checksums
        return
    try:
        with zipfile.ZipFile(path) as archive:
            for record in archive.infolist():
                if record.CRC == 0 and record.file_size > 0:
                    continue
                with archive.open(record) as stream:      # zipfile compares the CRC-32 at the record's end
                    while stream.read(1 << 24):
                        pass
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error) as error:
        raise _corrupt(path, key, f"damaged bytes: {error}") from None
