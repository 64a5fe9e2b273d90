"""A traceback is kept only for errors in code: PyroSys's own bugs (with a line asking to report them and
status "failed" with reason "bug: ..."), or a component's own code (named, not blamed on PyroSys)."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

from pyrosys.tracking import plots
from pyrosys.workers import trainer
from pyrosys.workers.pipeline import record

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
QUICK = ["training.trainer.enable_progress_bar=false", "logging.tensorboard=null", "logging.mlflow=null",
         "training.terminal_conditions.episode_limit=3"]


def test_a_pyrosys_bug_keeps_its_traceback_asks_for_a_report_and_is_recorded_as_a_bug(tmp_path, monkeypatch, capsys):
    # PyroSys's own plotting code is handed what it never should be: the error rises inside PyroSys
    monkeypatch.setattr(record, "plot_curves", lambda experiment, *args: plots.plot_curves(None, *args))
    argv = ["--c", str(CONFIGS / "digits/mlp.yaml"), "--outdir", str(tmp_path), "--run-name", "bug", "--set", *QUICK]
    assert trainer.main(argv) == 1
    error = capsys.readouterr().err
    assert "Traceback" in error and "This is a bug in PyroSys: please report it" in error, error[-3000:]
    status = json.loads((tmp_path / "bug" / "status.json").read_text())
    assert status["status"] == "failed" and status["reason"].startswith("bug: AttributeError"), status


def test_an_error_in_a_component_s_own_code_names_the_place_and_is_not_called_a_pyrosys_bug(tmp_path, capsys,
                                                                                         monkeypatch):
    (tmp_path / "broken_lab.py").write_text(textwrap.dedent('''
        import pytorch_lightning as pl

        class Broken(pl.Callback):
            """A user's callback with a bug of its own."""
            def on_train_batch_end(self, *args) -> None:
                raise ValueError("the lab's callback is broken")
        '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    argv = ["--c", str(CONFIGS / "digits/mlp.yaml"), "--outdir", str(tmp_path / "out"), "--run-name", "lab",
            "--set", *QUICK, "training.callbacks=[{_target_: broken_lab.Broken}]"]
    assert trainer.main(argv) == 1
    error = capsys.readouterr().err
    assert "broken_lab.py" in error and "component's own code" in error and "bug in PyroSys" not in error
    status = json.loads((tmp_path / "out" / "lab" / "status.json").read_text())
    assert status["status"] == "failed" and status["reason"] == "ValueError: the lab's callback is broken"
