"""The progress bar on a terminal (pyrosys/callbacks/progress.py): epochs from 1, the running training loss
and the last validation values on Lightning's TQDM bar."""
from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import sys
import termios
import time
from pathlib import Path

import pytest
import torch

from pyrosys.callbacks.progress import epoch_description, validation_values

BIN = Path(sys.executable).parent


def test_the_bar_counts_epochs_from_one_out_of_the_limit():
    assert epoch_description(0, 10) == "epoch 1/10"
    assert epoch_description(9, 10) == "epoch 10/10"
    assert epoch_description(4, -1) == "epoch 5"          # no epoch limit (an episode limit stops the run)


def test_the_bar_shows_the_validation_values_val_loss_first_and_nothing_else():
    metrics = {"train_loss": torch.tensor(0.9), "val_accuracy": torch.tensor(0.75), "val_loss": torch.tensor(0.5)}
    assert list(validation_values(metrics).items()) == [("val_loss", 0.5), ("val_accuracy", 0.75)]


def test_the_run_gets_the_bar_only_when_it_shows_one_and_no_configured_callback_is_a_bar():
    from pytorch_lightning.callbacks import TQDMProgressBar

    from pyrosys.callbacks.progress import TrainingBar
    from pyrosys.workers.pipeline.build import bar

    assert [type(b) for b in bar({"enable_progress_bar": True}, [])] == [TrainingBar]
    assert bar({"enable_progress_bar": False}, []) == []
    assert bar({"enable_progress_bar": True}, [TQDMProgressBar()]) == []


def terminal_output(argv: list[str], cwd: Path, timeout: float = 300) -> tuple[int, str]:
    """Run a command under a pseudo-terminal 120 columns wide, as a user's terminal would; its exit status
    and everything it wrote."""
    pid, fd = pty.fork()
    if pid == 0:                                           # the child: the command, on the terminal
        os.chdir(cwd)
        os.execv(argv[0], argv)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    chunks, deadline = [], time.monotonic() + timeout
    while select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
        try:
            data = os.read(fd, 65536)
        except OSError:                                    # the child closed the terminal: it ended
            break
        if not data:
            break
        chunks.append(data)
    if time.monotonic() >= deadline:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.integration
def test_on_a_terminal_the_bar_shows_the_loss_and_the_validation_values_and_the_run_ends_with_a_summary(
        tmp_path, two_epoch_digits):
    (tmp_path / "exp.yaml").write_text(two_epoch_digits)
    code, output = terminal_output([str(BIN / "pyrosys-trainer"), "--c", "exp.yaml"], tmp_path)
    assert code == 0, output[-3000:]
    bars = [part for part in re.split(r"[\r\n]", output) if part.startswith("epoch 2/2: 100%")]
    assert bars, output[-3000:]
    numbers = re.search(r"loss=([0-9.e-]+), val_loss=([0-9.e-]+), val_accuracy=([0-9.e-]+)\]$", bars[-1])
    assert numbers, bars[-1]
    assert 0 < float(numbers.group(1)) < 5 and 0 < float(numbers.group(2)) < 5 and 0 <= float(numbers.group(3)) <= 1
    assert "INFO: validation:" not in output                # the bar replaces the plain lines on a terminal
    assert re.search(r"\[pyrosys\] {3}best: epoch \d+, episode \d+ \(lowest val_loss\): val_loss ", output)
    assert "[pyrosys] test loss: " in output and "[pyrosys] results: " in output
