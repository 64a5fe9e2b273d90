"""Every file a worker writes is written atomically: a write that dies half-way (a kill, a full disk)
leaves the old file or none, never a truncated one: pictures included."""
from __future__ import annotations

import json

import matplotlib.figure
import pytest

from pyrosys.tracking.plots import plot_confusion
from pyrosys.workers import grid_analyzer


def half_written(self, target, *args, **kwargs):
    """A savefig that dies after writing part of its file."""
    with open(target, "wb") as stream:
        stream.write(b"\x89PNG half a picture")
    raise OSError(28, "No space left on device")


def test_a_picture_that_fails_half_way_leaves_no_truncated_file(tmp_path, monkeypatch):
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", half_written)
    with pytest.raises(OSError):
        plot_confusion([[1, 0], [0, 1]], ["a", "b"], tmp_path / "confusion_matrix.png", "title")
    assert list(tmp_path.iterdir()) == []


def test_the_analyzer_killed_mid_plot_leaves_no_zero_byte_picture(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "training_configuration.yaml").write_text("validation: {monitor: val_loss, mode: min}\n")
    (run / "status.json").write_text(json.dumps({"status": "completed", "seed_torch": 1, "epoch": 1}))
    (run / "validation_statistics.csv").write_text("episode,epoch,loss\n10,0,0.5\n20,1,0.4\n")
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", half_written)
    assert grid_analyzer.main(["--expdir", str(tmp_path)]) == 1
    assert "No space left on device" in capsys.readouterr().err
    assert not (tmp_path / "analysis.png").exists() and not list(tmp_path.glob(".*.tmp"))
    assert (tmp_path / "analysis.csv").is_file()                      # the tables, written before, are whole
