"""The checkpoint callback and the trainer's default profiler: Lightning's, minus their per-step costs."""
from __future__ import annotations

from pytorch_lightning import callbacks
from pytorch_lightning.profilers import SimpleProfiler

from pyrosys.callbacks.checkpoint import ModelCheckpoint
from pyrosys.callbacks.profiling import NoProfiler


def test_the_checkpoint_callback_keeps_lightning_s_state_key_so_earlier_checkpoints_resume():
    settings = {"dirpath": "models", "filename": "best", "monitor": "val_loss", "mode": "min", "save_last": True}
    ours = ModelCheckpoint(**settings)
    assert ours.state_key == callbacks.ModelCheckpoint(**settings).state_key
    assert ours.state_key is ours.state_key                      # worked out once


def test_no_profiler_profiles_nothing_and_a_chosen_profiler_still_profiles():
    profiler = NoProfiler()
    with profiler.profile("[Callback]x.on_train_batch_end") as inside:
        assert inside is None
    assert profiler.summary() == ""
    simple = SimpleProfiler()
    with simple.profile("action"):
        pass
    assert "action" in simple.recorded_durations
