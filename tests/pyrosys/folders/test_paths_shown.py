"""How commands print a path: relative to the working folder inside it, absolute outside, never with '..'."""
from __future__ import annotations

import argparse

from pyrosys.folders import shown
from pyrosys.workers import predictor


def test_a_path_is_shown_resolved_relative_to_the_working_folder_or_absolute(tmp_path, monkeypatch):
    (tmp_path / "lab" / "config").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert shown("lab/config/../../predictions.csv") == "predictions.csv"
    assert shown(tmp_path / "lab" / "config" / ".." / "runs") == "lab/runs"
    assert shown(".") == "."
    monkeypatch.chdir(tmp_path / "lab" / "config")
    assert shown("../../predictions.csv") == str(tmp_path.resolve() / "predictions.csv")


def test_predict_section_paths_are_resolved_from_their_file(tmp_path, monkeypatch, write):
    config = write("lab/config/predict.yaml", "predict: {model: ../../runs/best, input: ../../samples.csv, "
                                              "output: ../../predictions.csv}\n")
    monkeypatch.chdir(tmp_path)
    args = argparse.Namespace(config=str(config.relative_to(tmp_path)), model=None, input=None, output=None,
                              sequence_column=None)
    predictor.settings(args)
    assert (args.model, args.input, args.output) == tuple(str(tmp_path.resolve() / name)
                                                          for name in ("runs/best", "samples.csv", "predictions.csv"))
    assert shown(args.output) == "predictions.csv"
