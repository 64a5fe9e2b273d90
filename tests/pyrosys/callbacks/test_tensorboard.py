"""TensorBoard levels 0/1/2: the event files are read back."""
from __future__ import annotations

from pathlib import Path

import struct
from collections import defaultdict

import pytest
from tensorboardX.proto.event_pb2 import Event
from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData

from pyrosys.workers import trainer

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def records(run: Path) -> list[Event]:
    """The events of a run's TFRecord event files, in order."""
    found = []
    for path in sorted((run / "tensorboard").glob("events.out.tfevents.*")):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset:offset + 8])
            found.append(Event.FromString(data[offset + 12:offset + 12 + length]))
            offset += 12 + length + 4
    return found


def events(run: Path) -> tuple[dict[str, list[int]], set[str]]:
    """Scalar tag -> steps, and the histogram tags."""
    scalars: dict[str, list[int]] = defaultdict(list)
    histograms: set[str] = set()
    for event in records(run):
        for value in event.summary.value:
            if value.HasField("histo"):
                histograms.add(value.tag)
            elif value.HasField("simple_value"):
                scalars[value.tag].append(event.step)
    return scalars, histograms


def plugin_values(run: Path, plugin: str) -> list:
    """The summary values a TensorBoard plugin reads (text, hparams)."""
    return [value for event in records(run) for value in event.summary.value
            if value.metadata.plugin_data.plugin_name == plugin]


def check_configuration_and_hparams(run: Path, scalars: dict[str, list[int]]) -> None:
    """The resolved configuration as text, the run in HParams with its final metrics, each scalar once."""
    (text,) = plugin_values(run, "text")
    assert text.tag.startswith("configuration") and "    model:" in text.tensor.string_val[0].decode()
    data = [HParamsPluginData.FromString(v.metadata.plugin_data.content) for v in plugin_values(run, "hparams")]
    experiment = next(d.experiment for d in data if d.HasField("experiment"))
    session = next(d.session_start_info for d in data if d.HasField("session_start_info"))
    assert session.hparams["model.name"].string_value == "MLP"
    assert session.hparams["training.terminal_conditions.epoch_limit"].number_value == 2
    metrics = {m.name.tag for m in experiment.metric_infos}
    assert {"test/loss", "test/accuracy", "validation/loss", "validation/accuracy"} == metrics
    assert metrics <= set(scalars) and scalars["test/loss"] == [20]
    # validation_agg repeats no validation value: its own columns only
    assert "validation_agg/loss" not in scalars and "validation_agg/loss_std" in scalars
    assert all(len(steps) == len(set(steps)) for steps in scalars.values())


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
    if level == 0:
        check_configuration_and_hparams(run, scalars)


def test_tensorboard_off_writes_no_events(tmp_path):
    argv = ["--c", str(CONFIGS / "digits/mlp.yaml"), "--outdir", str(tmp_path), "--set", "logging.tensorboard=null",
            "training.terminal_conditions.epoch_limit=1", "training.trainer.enable_progress_bar=false"]
    assert trainer.main(argv) == 0
    (run,) = [status.parent for status in tmp_path.glob("*/*/*/status.json")]
    assert not (run / "tensorboard").exists()
