"""What a run says as it goes and the summary it ends with (workers/pipeline/console.py), read from one
short in-process training run's console, stdout and stderr together as a terminal shows them."""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
import yaml

from pyrosys.tracking.tables import read_rows
from pyrosys.workers import trainer
from pyrosys.workers.pipeline.console import best_validation, split_size



@pytest.fixture(scope="module")
def console(tmp_path_factory, two_epoch_digits) -> tuple[str, Path]:
    """A two-epoch Digits MLP trained in this process, without a terminal: its console and its folder."""
    root = tmp_path_factory.mktemp("console")
    (root / "exp.yaml").write_text(two_epoch_digits)
    text = io.StringIO()
    with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
        assert trainer.main(["--c", str(root / "exp.yaml"), "--outdir", str(root / "out")]) == 0
    (folder,) = [path.parent for path in (root / "out").glob("*/*/*/status.json")]
    return text.getvalue(), folder


def test_the_summary_holds_the_folder_the_stop_the_best_validation_the_model_and_the_test_values(console):
    text, folder = console
    rows = read_rows(folder / "validation_statistics.csv")
    best = min(rows, key=lambda row: float(row["loss"]))        # the first of equals, as min() keeps it
    tested = yaml.safe_load(next(folder.glob("testing_*/testing_set_agg_statistics.yaml")).read_text())
    lines = text.splitlines()
    start = lines.index(f"[pyrosys] summary of {folder}")
    assert lines[start + 1].startswith("[pyrosys]   stopped: epoch_limit (2 epochs); ")
    assert lines[start + 2] == (f"[pyrosys]   best: epoch {best['epoch']}, episode {best['episode']} "
                                f"(lowest val_loss): val_loss {float(best['loss']):.6g}  "
                                f"val_accuracy {float(best['accuracy']):.6g}")
    assert lines[start + 3] == "[pyrosys]   model: models/best (bundle), models/best.ckpt"
    assert lines[start + 4] == (f"[pyrosys] test loss: {tested['loss']:.6f}  test accuracy: "
                                f"{tested['accuracy']:.6f}")
    assert lines[start + 5:] == [f"[pyrosys] results: {folder}"]
    seconds = re.search(r"; ([0-9.]+) s in all, ([0-9.]+) s of it training", lines[start + 1])
    assert 0 <= float(seconds.group(2)) <= float(seconds.group(1))     # a tenth of a second: a short fit may show 0.0
    record = yaml.safe_load((folder / "status.json").read_text())
    assert abs(float(seconds.group(2)) - record["fit_seconds"]) <= 0.051 and record["fit_seconds"] > 0    # the fit


def test_each_step_is_said_when_it_starts(console):
    text, _ = console
    steps = ["[pyrosys] loading components: problem Digits, model MLP",
             "[pyrosys] building the problem Digits and the model MLP",
             "[pyrosys] experiment folder: ", "INFO: validation: ", "INFO: training ended: epoch_limit",
             "INFO: testing models/best.ckpt on the test split (270 samples)", "[pyrosys] summary of ",
             "[pyrosys] test loss: ", "[pyrosys] results: "]
    places = [text.find(step) for step in steps]
    assert -1 not in places and places == sorted(places), dict(zip(steps, places))


def test_without_a_terminal_the_console_has_plain_lines_and_no_bar(console):
    text, _ = console
    assert "\r" not in text and "\x1b" not in text and "it/s" not in text
    assert len(re.findall(r"INFO: validation: episode \d+ {2}epoch \d+ {2}loss ", text)) == 2


@pytest.mark.parametrize("mode, expected", [("min", 1), ("max", 2)])
def test_the_best_validation_row_is_the_first_of_the_best_values(mode, expected):
    rows = [{"episode": str(10 * i), "epoch": str(i), "loss": loss} for i, loss in enumerate(["0.5", "0.2", "0.9",
                                                                                              "0.2", "nan", "0.9"])]
    assert best_validation(rows, "val_loss", mode)["episode"] == str(10 * expected)
    assert best_validation(rows[4:5], "val_loss", mode) is None


def test_a_split_is_told_in_samples_or_for_generated_problems_in_batches():
    from pyrosys.problems.recall import SerialRecall
    from pyrosys.problems.scikit_learn import Digits

    digits = Digits.create({"batch_size": 100}, {"test": {"split": "test"}})
    digits.setup()
    assert split_size(digits, "test") == "270 samples"
    recall = SerialRecall.create({"batch_size": 4, "episodes": 7})
    recall.setup()
    assert split_size(recall, "test") == "7 batches"
