"""pyrosys-predictor: predictions of a trained model for a CSV, FASTA or NPY file, with no trainer.

    pyrosys-predictor --m experiments/Digits/LeNet5/<time>/models/best --input images.npy --output out.csv

Inputs are raw data, as the problem read them: a model's data definitions carry what turns them into
what it was trained on (vocabulary, standardisation statistics, pixel scale), so there is no skew
between training and use.
"""
from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pyrosys.errors import ConfigError
from pyrosys.workers.worker import base_parser, run

FASTA_SUFFIXES = (".fasta", ".fa", ".faa", ".fas")


def load_model(path: str) -> Any:
    """A model from a bundle folder or a PyroSys checkpoint, in evaluation mode."""
    from pyrosys.callbacks.checkpoint import read_checkpoint
    from pyrosys.factory import resolve
    from pyrosys.models.model import BUNDLE_FILE, Model, load_weights

    location = Path(path)
    if location.is_dir():
        if not (location / BUNDLE_FILE).is_file():
            raise ConfigError("this folder is not a model bundle (it has no model.yaml)", file=path, key="--m",
                              hint="Name <experiment>/models/best or a .ckpt file")
        return Model.load(location)
    checkpoint = read_checkpoint(location)
    description = checkpoint["pyrosys"]["model"]
    model_cls = resolve({"_target_": description.get("class")}, "model", file=path, key="pyrosys.model.class")
    model = model_cls.create(description.get("params"), description.get("data_definitions"))
    load_weights(model, checkpoint["state_dict"], path)
    return model.eval()


def _table(path: Path) -> tuple[list[str], list[dict]]:
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    with open(path, encoding="utf-8", newline="") as stream:
        reader = csv.DictReader(stream, delimiter=delimiter)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def read_inputs(path: Path, definitions: dict, sequence_column: str) -> tuple[list[str], dict]:
    """Sample ids and the model's input fields, encoded from a raw file as the problem would."""
    import numpy as np
    import torch

    if not path.is_file():
        raise ConfigError("the input file does not exist", file=str(path), key="--input")
    inputs = definitions["inputs"]
    kind, suffix = inputs.get("kind"), path.suffix.lower()
    if kind == "tokens":
        from pyrosys.problems.protein import encode, read_fasta, read_table

        if suffix in FASTA_SUFFIXES:
            records = read_fasta(path, "label")
        else:
            records = read_table(path, sequence_column, None, None)
        if not records:
            raise ConfigError("the file holds no sequences", file=str(path), key="--input")
        length = int(inputs["shape"][0])
        ids = torch.zeros(len(records), length, dtype=torch.long)
        for row, record in enumerate(records):
            tokens = encode(record, path, length)
            ids[row, :len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        return [r.identifier for r in records], {"inputs": ids, "masks": ids != 0}
    if suffix == ".npy":
        try:
            values = np.load(path, allow_pickle=False).astype(np.float32)
        except (OSError, ValueError) as error:
            raise ConfigError(f"the array cannot be read ({error})", file=str(path), key="--input") from None
        shape = [d for d in inputs["shape"]]
        if kind == "image" and values.ndim == len(shape) and shape[0] == 1:
            values = values[:, None]
        ids = [str(i) for i in range(len(values))]
    elif suffix in (".csv", ".tsv", ".tab") and kind == "vector":
        header, rows = _table(path)
        columns = inputs.get("feature_names") or inputs.get("columns") or [c for c in header if c != "id"]
        missing = [c for c in columns if c not in header]
        if missing:
            raise ConfigError(f"the table lacks the feature column {missing[0]!r} (and {len(missing) - 1} more)",
                              file=str(path), key="--input", hint="Give the columns the model was trained on")
        try:
            values = np.array([[float(row[c]) for c in columns] for row in rows], dtype=np.float32)
        except ValueError as error:
            raise ConfigError(f"a feature is not a number ({error})", file=str(path), key="--input") from None
        ids = [row.get("id") or str(i) for i, row in enumerate(rows)]
    else:
        raise ConfigError(f"a model reading {kind} inputs cannot take a {suffix or 'suffix-less'} file",
                          file=str(path), key="--input",
                          hint="Give tokens as FASTA/CSV/TSV, vectors as CSV/TSV/NPY, images and sequences as NPY")
    expected = [d for d in inputs["shape"] if d is not None]
    observed = list(values.shape[1:])[-len(expected):] if expected else []
    if kind in ("vector", "image") and list(values.shape[1:]) != list(inputs["shape"]):
        raise ConfigError(f"the inputs have shape {list(values.shape[1:])}, the model reads {inputs['shape']}",
                          file=str(path), key="--input")
    if kind == "sequence" and observed != expected:
        raise ConfigError(f"the sequences have {observed} features per step, the model reads {expected}",
                          file=str(path), key="--input")
    if "standardize" in inputs:
        values = (values - np.asarray(inputs["standardize"]["mean"], dtype=np.float32)) / np.asarray(
            inputs["standardize"]["std"], dtype=np.float32)
    if "scale" in inputs:
        values = values / float(inputs["scale"])
    return ids, {"inputs": torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))}


def prediction_rows(model: Any, ids: list[str], fields: dict) -> list[dict]:
    """One row per sample: the prediction, class probabilities for classifiers, codes for autoencoders."""
    import torch

    with torch.no_grad():
        outputs = model.predict(**fields)
    targets = model.data_definitions.get("targets", {})
    task = model.task
    rows = [{"id": identifier} for identifier in ids]
    if task == "classification":
        probabilities = outputs.softmax(dim=-1)
        classes = targets.get("classes") or [str(i) for i in range(probabilities.shape[-1])]
        for row, values in zip(rows, probabilities.tolist()):
            row["prediction"] = classes[max(range(len(values)), key=values.__getitem__)]
            row.update({f"p_{name}": round(p, 6) for name, p in zip(classes, values)})
    elif task == "regression":
        values = outputs.reshape(len(ids), -1)
        if "standardize" in targets:
            values = values * torch.tensor(targets["standardize"]["std"]) + torch.tensor(targets["standardize"]["mean"])
        for row, value in zip(rows, values.tolist()):
            if len(value) == 1:
                row["prediction"] = value[0]
            else:
                row.update({f"prediction_{i}": v for i, v in enumerate(value)})
    elif task == "sequence":
        for row, steps in zip(rows, (outputs > 0).int().tolist()):
            row["prediction"] = " ".join("".join(map(str, bits)) for bits in steps)
    else:                                                       # autoencoding: codes and reconstruction error
        with torch.no_grad():
            codes = model.encode(fields["inputs"])
        errors = (outputs - fields["inputs"]).pow(2).reshape(len(ids), -1).mean(dim=1)
        for row, code, error in zip(rows, codes.tolist(), errors.tolist()):
            row["reconstruction_mse"] = error
            row.update({f"code_{i}": value for i, value in enumerate(code)})
    return rows


PREDICT_KEYS = ("model", "input", "output", "sequence_column")


def settings(args: argparse.Namespace) -> None:
    """Fill the flags not given from a `--c` file's `predict:` section (paths relative to that file)."""
    from pyrosys.configuration.loading import load_yaml
    from pyrosys.errors import did_you_mean

    section: dict = {}
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
            if getattr(args, key) is None:
                setattr(args, key, value if key == "sequence_column" else str(Path(args.config).parent / str(value)))
    for key in ("model", "input"):
        if getattr(args, key) is None:
            flag = "--m" if key == "model" else "--input"
            raise ConfigError(f"no {key} was given", file=args.config or "the command line", key=flag,
                              hint=f"Give {flag}, or predict.{key} in a --c file")
    args.sequence_column = args.sequence_column or "sequence"


def predict(args: argparse.Namespace) -> int:
    """Load -> read -> predict -> write."""
    from pyrosys.atomic import write_text_atomic

    settings(args)
    model = load_model(args.model)
    ids, fields = read_inputs(Path(args.input), model.data_definitions, args.sequence_column)
    rows = prediction_rows(model, ids, fields)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]) if rows else ["id"])
    writer.writeheader()
    writer.writerows(rows)
    if args.output:
        write_text_atomic(args.output, text.getvalue())
        print(f"[pyrosys] {len(rows)} predictions written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text.getvalue())
    return 0


def parser() -> argparse.ArgumentParser:
    """The predictor's flags."""
    result = base_parser("pyrosys-predictor", "Predict with a trained model (bundle or checkpoint), no trainer.")
    result.add_argument("--m", "--model", dest="model", metavar="CHECKPOINT_OR_BUNDLE", default=None,
                        help="a model bundle folder (<experiment>/models/best) or a checkpoint (.ckpt)")
    result.add_argument("--input", default=None, metavar="FILE", help="raw inputs: CSV, TSV, FASTA or NPY")
    result.add_argument("--output", metavar="FILE", default=None, help="CSV of predictions (default: stdout)")
    result.add_argument("--sequence-column", default=None, help="tables of sequences: the sequence column")
    result.add_argument("--c", "--config", dest="config", metavar="FILE", default=None,
                        help="a YAML file whose 'predict:' section gives model, input, output (flags win)")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of pyrosys-predictor."""
    return run(predict, parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
