"""Provenance: what a run was made from (versions, git state of its configs, host) for description.json."""
from __future__ import annotations

import getpass
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

import pytorch_lightning
import torch

import pyrosys


def git_state(folder: str | Path) -> dict | None:
    """The commit and dirty flag of the git checkout holding `folder`, or None outside one."""
    def git(*args: str) -> str | None:
        try:
            result = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return result.stdout.strip() if result.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None
    return {"commit": commit, "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def versions() -> dict[str, str]:
    """Versions of Python, PyroSys and the libraries that shape a run's numbers."""
    return {"python": platform.python_version(), "pyrosys": pyrosys.__version__, "torch": torch.__version__,
            "pytorch_lightning": pytorch_lightning.__version__}


def user() -> str:
    """The login name the run was started by (empty where the system knows none, e.g. a bare container)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def description(configuration_files: list[str], seeds: dict) -> dict:
    """The self-description of a run at its start."""
    return {"command": sys.argv, "versions": versions(), "host": socket.gethostname(), "user": user(),
            "pid": os.getpid(), "platform": platform.platform(), "configuration_files": configuration_files,
            "git": git_state(Path(configuration_files[0]).parent) if configuration_files else None,
            "seeds": seeds}
