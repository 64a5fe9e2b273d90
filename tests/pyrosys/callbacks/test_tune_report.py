"""TuneReport: a Ray Tune trial's run reports each validation to Tune; a stop Tune signals inside the report ends
the run as pruned (its reason said), not interrupted or failed."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from pyrosys.callbacks.terminal_conditions import stop_reason
from pyrosys.callbacks.tune_report import REPORTS, TuneReport
from pyrosys.folders.experiment import TUNE_ENV


def fake_trainer(value: float) -> SimpleNamespace:
    return SimpleNamespace(sanity_checking=False, is_global_zero=True,
                           callback_metrics={"val_loss": torch.tensor(value)}, global_step=40,
                           should_stop=False, callbacks=[], interrupted=False, current_epoch=1)


def test_each_validation_is_reported_and_a_stop_inside_the_report_prunes_the_run(monkeypatch, tmp_path):
    tune = pytest.importorskip("ray.tune")
    reported = []

    def report(metrics):
        reported.append(metrics)
        if len(reported) == 2:
            raise SystemExit(0)              # what Tune's session does when the scheduler stopped the trial

    monkeypatch.setattr(tune, "report", report)
    monkeypatch.setenv(TUNE_ENV, json.dumps({"folder": str(tmp_path)}))
    (callback,) = TuneReport.from_environment("val_loss")
    trainer = fake_trainer(0.5)
    callback.on_validation_end(trainer, None)
    assert reported == [{"objective": 0.5, "validation": 1, "episode": 40, "folder": str(tmp_path)}]
    assert not trainer.should_stop and callback.reason() is None
    callback.on_validation_end(trainer, None)
    assert trainer.should_stop and REPORTS[str(tmp_path)] == 2
    trainer.callbacks = [callback]
    assert stop_reason(trainer, 5, None).startswith("pruned (Tune's scheduler stopped it: val_loss 0.5 at validation 2")


def test_a_run_outside_tune_has_no_such_callback(monkeypatch):
    monkeypatch.delenv(TUNE_ENV, raising=False)
    assert TuneReport.from_environment("val_loss") == []
