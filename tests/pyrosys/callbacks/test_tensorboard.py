"""TensorBoard levels 0/1/2: the event files are read back."""
from __future__ import annotations

from pathlib import Path

import struct
from collections import defaultdict

import pytest
from tensorboardX.proto.event_pb2 import Event

from pyrosys.workers import trainer

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def events(run: Path) -> tuple[dict[str, list[int]], set[str]]:
    """Read the TFRecord event files back: scalar tag -> steps, and the histogram tags."""
    scalars: dict[str, list[int]] = defaultdict(list)
    histograms: set[str] = set()
    for path in sorted((run / "tensorboard").glob("events.out.tfevents.*")):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset:offset + 8])
            event = Event.FromString(data[offset + 12:offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                if value.HasField("histo"):
                    histograms.add(value.tag)
                else:
                    scalars[value.tag].append(event.step)
    return scalars, histograms


@pytest.mark.parametrize("level", [0, 1, 2])
def test_tensorboard_levels_write_statistics_then_weights_then_gradients(level, tmp_path):
    argv = ["--c", str(CONFIGS / "digits/mlp.yaml"), "--outdir", str(tmp_path), "--tensorboard", str(level),
            "--li", "5", "--set", "training.terminal_conditions.epoch_limit=2",
            "training.trainer.enable_progress_bar=false", "training.trainer.limit_train_batches=10"]
    assert trainer.main(argv) == 0
    (run,) = [status.parent for status in tmp_path.glob("*/*/*/status.json")]
    scalars, histograms = events(run)
    assert {"training/loss", "training/accuracy", "validation/loss", "training_agg/loss_mean"} <= set(scalars)
    assert scalars["training/loss"] == [1, 5, 10, 15, 20]
    weights = [t for t in histograms if t.startswith("weights/")]
    gradients = [t for t in histograms if t.startswith("gradients/")]
    assert bool(weights) == (level >= 1) and bool(gradients) == (level >= 2)


def test_tensorboard_off_writes_no_events(tmp_path):
    argv = ["--c", str(CONFIGS / "digits/mlp.yaml"), "--outdir", str(tmp_path), "--set", "logging.tensorboard=null",
            "training.terminal_conditions.epoch_limit=1", "training.trainer.enable_progress_bar=false"]
    assert trainer.main(argv) == 0
    (run,) = [status.parent for status in tmp_path.glob("*/*/*/status.json")]
    assert not (run / "tensorboard").exists()
