"""A real full disk (a small tmpfs mounted by the test): the run fails with one line, no traceback, and
the status it leaves is true ("failed", with the reason), although the disk has no room left for it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
BIN = Path(sys.executable).parent


@pytest.fixture
def small_disk(tmp_path):
    """A 300 KB tmpfs at tmp_path/disk; the test is skipped where this process may not mount one."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (the other full-disk trials use RLIMIT_FSIZE)")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(disk)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"this machine refuses to mount a tmpfs here ({mounted.stderr.strip()})")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


@pytest.mark.slow
def test_a_run_on_a_full_disk_fails_with_one_line_and_a_true_status(small_disk):
    done = subprocess.run([str(BIN / "pyrosys-trainer"), "--c", str(CONFIGS / "digits/mlp.yaml"),
                           "--outdir", str(small_disk / "out"), "--set", "training.trainer.enable_progress_bar=false",
                           "logging.mlflow=null", "training.terminal_conditions.epoch_limit=30"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "[pyrosys] the run failed:" in done.stderr
    (status_file,) = (small_disk / "out").glob("Digits/MLP/*/status.json")
    status = json.loads(status_file.read_text())
    assert status["status"] == "failed" and ("could not be written" in status["reason"]
                                             or "No space left" in status["reason"])
    assert not list(status_file.parent.rglob("*.tmp"))                 # nothing half-written left
