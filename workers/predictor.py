"""pyrosys-predictor: predictions of a trained model for a CSV, FASTA or NPY file, with no trainer.

    pyrosys-predictor --m experiments/Digits/LeNet5/<time>/models/best --input images.npy --output out.csv

Inputs are raw data, as the problem read them (see `pyrosys.workers.pipeline.predict`). The build and
predict steps import torch, so they are imported inside `Predictor.run`: --help answers before them.
An --output that cannot take the predictions (a folder, an unwritable place, the input itself) is
refused before anything is loaded.
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import tempfile
from pathlib import Path

from pyrosys.atomic import write_text_atomic
from pyrosys.configuration.loading import load_yaml
from pyrosys.errors import ConfigError, did_you_mean
from pyrosys.factory import register
from pyrosys.folders import shown
from pyrosys.workers.pipeline.console import say_loading_model
from pyrosys.workers.worker import Worker

PREDICT_KEYS = ("model", "input", "output", "sequence_column")


@register("worker", name="predictor")
class Predictor(Worker):
    """Predict with a trained model (bundle or checkpoint), no trainer."""

    prog = "pyrosys-predictor"

    def run(self, args: argparse.Namespace) -> int:
        """Settings -> load -> read -> predict -> write."""
        settings(args)
        check_output(args)
        if args.output:         # stdout is free (not the predictions) and stderr kept for a refusal's paragraph
            say_loading_model(args.model)
        from pyrosys.workers.pipeline.build import load_model            # torch from here on
        from pyrosys.workers.pipeline.predict import prediction_rows, read_inputs

        model = load_model(args.model)
        ids, fields = read_inputs(Path(args.input), model.data_definitions, args.sequence_column)
        rows = prediction_rows(model, ids, fields, source=args.model)
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(rows[0]) if rows else ["id"])
        writer.writeheader()
        writer.writerows(rows)
        if args.output:
            write_text_atomic(args.output, text.getvalue())
            print(f"[pyrosys] {len(rows)} predictions written to {shown(args.output)}", file=sys.stderr)
        else:
            sys.stdout.write(text.getvalue())
        return 0

    def add_flags(self, parser: argparse.ArgumentParser) -> None:
        """--m, --input, --output, --sequence-column, --c."""
        parser.add_argument("--m", "--model", dest="model", metavar="CHECKPOINT_OR_BUNDLE", default=None,
                            help="a model bundle folder (<experiment>/models/best) or a checkpoint (.ckpt)")
        parser.add_argument("--input", default=None, metavar="FILE", help="raw inputs: CSV, TSV, FASTA or NPY")
        parser.add_argument("--output", metavar="FILE", default=None, help="CSV of predictions (default: stdout)")
        parser.add_argument("--sequence-column", default=None, help="tables of sequences: the sequence column")
        parser.add_argument("--c", "--config", dest="config", metavar="FILE", default=None,
                            help="a YAML file whose 'predict:' section gives model, input, output (flags win)")


def settings(args: argparse.Namespace) -> None:
    """Fill the flags not given from a `--c` file's `predict:` section (paths relative to that file)."""
    if args.config:
        data = load_yaml(args.config)
        section = data.get("predict") or {}
        if set(data) - {"predict"} or not isinstance(section, dict):
            raise ConfigError("a predictor configuration holds one section, 'predict:'", file=args.config,
                              key=next(iter(set(data) - {"predict"}), "predict"))
        for key, value in section.items():
            if key not in PREDICT_KEYS:
                raise ConfigError("is not a predictor setting", file=args.config, key=f"predict.{key}",
                                  hint=did_you_mean(key, PREDICT_KEYS))
            if getattr(args, key) is None:        # paths from the file's folder, resolved: no '..' shown later
                path = (Path(args.config).parent / str(value)).resolve()
                setattr(args, key, value if key == "sequence_column" else str(path))
    for key in ("model", "input"):
        if getattr(args, key) is None:
            flag = "--m" if key == "model" else "--input"
            raise ConfigError(f"no {key} was given", file=args.config or "the command line", key=flag,
                              hint=f"Give {flag}, or predict.{key} in a --c file")
    args.sequence_column = args.sequence_column or "sequence"


def check_output(args: argparse.Namespace) -> None:
    """Refuse an --output the predictions cannot be written to, before the model is loaded: a folder, the
    input or the model itself, a place under a file, or a folder that takes no new file."""
    if args.output is None:
        return
    output, where = Path(args.output), args.config or "the command line"
    if args.output.endswith(("/", os.sep)) or output.is_dir():
        raise ConfigError(f"--output names a folder ({args.output}), not a file", file=where, key="--output",
                          hint="Name the CSV file to write, e.g. predictions.csv")
    for flag, other in (("--input", args.input), ("--m", args.model)):
        if output.exists() and Path(other).exists() and output.resolve() == Path(other).resolve():
            raise ConfigError(f"--output is the {flag} file ({args.output}): it would be overwritten", file=where,
                              key="--output", hint="Name another file for the predictions")
    folder = output.absolute().parent
    while not folder.exists() and folder != folder.parent:      # missing folders are made when writing
        folder = folder.parent
    try:
        if not folder.is_dir():
            raise NotADirectoryError(f"{folder} is a file, not a folder")
        handle, probe = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".probe", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise ConfigError(f"--output {args.output} cannot be written ({error.strerror or error})", file=where,
                          key="--output", hint="Name a file in a folder you can write to") from None


main = Predictor.main

if __name__ == "__main__":
    sys.exit(main())
