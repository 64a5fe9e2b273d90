"""Predict: raw inputs as the problem read them (FASTA, CSV, TSV, NPY) -> the fields a trained model
reads -> one row of predictions per sample. A model's data definitions carry what turns raw data into
what it was trained on (vocabulary, standardisation statistics, pixel scale): no training/use skew.
Inputs that hold no samples (nothing, a single number) or a value that is missing, NaN or infinite are
refused naming the file and the row, and so are outputs that are not finite: no prediction comes from NaN."""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pyrosys.errors import ConfigError
from pyrosys.objectives import RESIDUE_TASKS
from pyrosys.problems.protein import TERM_SEPARATOR, read_sequence_file, token_ids

TABLE_SUFFIXES = (".csv", ".tsv", ".tab")
FLOAT32_MAX = float(np.finfo(np.float32).max)     # models read float32: larger values become infinite
MULTILABEL_THRESHOLD = 0.5                          # a term is predicted at this probability or above


def read_inputs(path: Path, definitions: dict, sequence_column: str) -> tuple[list[str], dict]:
    """Sample ids and the model's input fields, encoded from a raw file as the problem would."""
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise ConfigError(f"the input file {what}", file=str(path), key="--input")
    inputs = definitions["inputs"]
    kind, suffix = inputs.get("kind"), path.suffix.lower()
    if kind == "tokens":
        return _sequences(path, inputs, sequence_column)
    if suffix == ".npy":
        ids, values = _array(path, inputs)
    elif suffix in TABLE_SUFFIXES and kind == "vector":
        ids, values = _table(path, inputs)
    else:
        raise ConfigError(f"a model reading {kind} inputs cannot take a {suffix or 'suffix-less'} file",
                          file=str(path), key="--input",
                          hint="Give tokens as FASTA/CSV/TSV, vectors as CSV/TSV/NPY, images and sequences as NPY")
    _check_shape(path, inputs, values)
    if "standardize" in inputs:
        values = (values - np.asarray(inputs["standardize"]["mean"], dtype=np.float32)) / np.asarray(
            inputs["standardize"]["std"], dtype=np.float32)
    if "scale" in inputs:
        values = values / float(inputs["scale"])
    return ids, {"inputs": torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))}


def _sequences(path: Path, inputs: dict, sequence_column: str) -> tuple[list[str], dict]:
    """Amino-acid sequences from FASTA, CSV or TSV, as token ids and padding masks."""
    records = read_sequence_file(path, sequence_column, label_column=None)
    if not records:
        raise ConfigError("the file holds no sequences", file=str(path), key="--input")
    ids = token_ids(records, path, int(inputs["shape"][0]))
    return [r.identifier for r in records], {"inputs": ids, "masks": ids != 0}


def _array(path: Path, inputs: dict) -> tuple[list[str], np.ndarray]:
    """An NPY array of samples along its first axis (images given without their channel get one)."""
    try:
        values = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise ConfigError(f"the array cannot be read ({error})", file=str(path), key="--input") from None
    if values.dtype.kind not in "biuf":
        raise ConfigError(f"the array holds {values.dtype} values, not real numbers", file=str(path), key="--input")
    if values.ndim == 0 or len(values) == 0:
        what = "a single number (a 0-d array)" if values.ndim == 0 else f"no samples (shape {list(values.shape)})"
        raise ConfigError(f"the array holds {what}", file=str(path), key="--input",
                          hint="Give one sample per entry along the first axis, e.g. images of shape [N, 8, 8]")
    with np.errstate(over="ignore"):                # too large for float32: infinite, refused below
        values = values.astype(np.float32)
    finite = np.isfinite(values.reshape(len(values), -1)).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ConfigError(f"the sample at index {bad[0]} (of {len(values)}, along the first axis) holds NaN, "
                          f"infinite or too large values ({len(bad)} such samples)", file=str(path), key="--input",
                          hint="Remove or fill those samples: a model's answer to NaN is no answer")
    shape = list(inputs["shape"])
    if inputs.get("kind") == "image" and values.ndim == len(shape) and shape[0] == 1:
        values = values[:, None]
    return [str(i) for i in range(len(values))], values


def _table(path: Path, inputs: dict) -> tuple[list[str], np.ndarray]:
    """A CSV or TSV table of feature columns (and an optional id column), every value a finite number."""
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    try:
        with open(path, encoding="utf-8", newline="") as stream:
            reader = csv.DictReader(stream, delimiter=delimiter)
            rows = [(reader.line_num, row) for row in reader]
            header = list(reader.fieldnames or [])
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ConfigError(f"the table cannot be read ({error})", file=str(path), key="--input") from None
    columns = inputs.get("feature_names") or inputs.get("columns") or [c for c in header if c != "id"]
    missing = [c for c in columns if c not in header]
    if missing:
        raise ConfigError(f"the table lacks the feature column {missing[0]!r} (and {len(missing) - 1} more)",
                          file=str(path), key="--input", hint="Give the columns the model was trained on")
    if not rows:
        raise ConfigError("the table holds a header but no rows", file=str(path), key="--input")
    values = np.array([[_number(path, line, row, column) for column in columns] for line, row in rows],
                      dtype=np.float32)
    return [row.get("id") or str(i) for i, (_, row) in enumerate(rows)], values


def _number(path: Path, line: int, row: dict, column: str) -> float:
    """One feature of a table row as a finite number, or a ConfigError naming the line and the column."""
    where = f"{path}, line {line}"
    if None in row:
        raise ConfigError(f"the row has {len(row) - 1 + len(row[None])} values, the header {len(row) - 1}",
                          file=where, key="--input", hint="Every row gives one value per header column")
    text = row[column]
    if text is None or not text.strip():
        raise ConfigError(f"the row lacks a value for the column {column!r}", file=where, key="--input",
                          hint="Every row gives one value per header column; fill or remove the row")
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"the column {column!r} holds {text!r}, not a number", file=where, key="--input") from None
    if not math.isfinite(value) or abs(value) > FLOAT32_MAX:
        raise ConfigError(f"the column {column!r} holds {text!r}, not a finite float32 number", file=where,
                          key="--input",
                          hint="Remove or fill the row: a model's answer to NaN or infinity is no answer")
    return value


def _check_shape(path: Path, inputs: dict, values: np.ndarray) -> None:
    """Refuse samples whose shape is not the one the model reads."""
    kind = inputs.get("kind")
    expected = [d for d in inputs["shape"] if d is not None]
    observed = list(values.shape[1:])[-len(expected):] if expected else []
    if kind in ("vector", "image") and list(values.shape[1:]) != list(inputs["shape"]):
        raise ConfigError(f"the inputs have shape {list(values.shape[1:])}, the model reads {inputs['shape']}",
                          file=str(path), key="--input")
    if kind == "sequence" and observed != expected:
        raise ConfigError(f"the sequences have {observed} features per step, the model reads {expected}",
                          file=str(path), key="--input")


def prediction_rows(model: Any, ids: list[str], fields: dict, source: str | None = None) -> list[dict]:
    """One row per sample: the prediction, class probabilities for classifiers, the terms scored at least 0.5
    (`;`-joined) and every term's probability for multilabel models, codes for autoencoders.
    Outputs that are not finite are refused (naming the model `source` and the samples), never ranked."""
    with torch.no_grad():
        outputs = model.predict(**fields)
    model.predictions_done()
    finite = torch.isfinite(outputs.reshape(len(ids), -1)).all(dim=1) if len(ids) else torch.ones(0, dtype=torch.bool)
    if not bool(finite.all()):
        bad = [ids[i] for i in torch.nonzero(~finite).flatten().tolist()]
        raise ConfigError(f"the model gives NaN or infinite outputs for {len(bad)} of {len(ids)} samples (the first: "
                          f"{bad[0]!r}), from finite inputs", file=source, key="--m",
                          hint="Its weights are damaged or the inputs are far outside what it was trained on")
    targets = model.data_definitions.get("targets", {})
    if model.task in RESIDUE_TASKS:
        return residue_rows(model, ids, fields, outputs)
    rows = [{"id": identifier} for identifier in ids]
    if model.task == "classification":
        probabilities = outputs.softmax(dim=-1)
        classes = targets.get("classes") or [str(i) for i in range(probabilities.shape[-1])]
        for row, values in zip(rows, probabilities.tolist()):
            row["prediction"] = classes[max(range(len(values)), key=values.__getitem__)]
            row.update({f"p_{name}": round(p, 6) for name, p in zip(classes, values)})
    elif model.task == "multilabel":
        terms = targets.get("terms") or [str(i) for i in range(outputs.shape[-1])]
        for row, values in zip(rows, outputs.sigmoid().tolist()):
            row["prediction"] = TERM_SEPARATOR.join(t for t, p in zip(terms, values) if p >= MULTILABEL_THRESHOLD)
            row.update({f"p_{name}": round(p, 6) for name, p in zip(terms, values)})
    elif model.task == "regression":
        values = outputs.reshape(len(ids), -1)
        if "standardize" in targets:
            values = values * torch.tensor(targets["standardize"]["std"]) + torch.tensor(targets["standardize"]["mean"])
        for row, value in zip(rows, values.tolist()):
            row.update({"prediction": value[0]} if len(value) == 1 else
                       {f"prediction_{i}": v for i, v in enumerate(value)})
    elif model.task == "sequence":
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


def residue_rows(model: Any, ids: list[str], fields: dict, outputs: torch.Tensor) -> list[dict]:
    """One row per residue of every sequence: id, position (1-based), residue, the predicted label with the
    probability of each class (residue classification) or the value on the label scale (residue regression)."""
    targets = model.data_definitions["targets"]
    vocabulary = model.data_definitions["inputs"]["vocabulary"]
    if model.task == "residue_classification":
        probabilities = outputs.softmax(dim=-1)
        classes = targets.get("classes") or [str(i) for i in range(probabilities.shape[-1])]
        answers = [{"prediction": classes[int(p.argmax())], **{f"p_{name}": round(float(v), 6)
                                                              for name, v in zip(classes, p.tolist())}}
                   for p in probabilities.reshape(-1, probabilities.shape[-1])]
    else:
        values = outputs.double()
        if "standardize" in targets:
            values = values * targets["standardize"]["std"][0] + targets["standardize"]["mean"][0]
        answers = [{"prediction": value} for value in values.reshape(-1).tolist()]
    rows, width = [], fields["inputs"].shape[1]
    for row, (identifier, tokens, keep) in enumerate(zip(ids, fields["inputs"].tolist(), fields["masks"].tolist())):
        rows.extend({"id": identifier, "position": position + 1, "residue": vocabulary[token],
                     **answers[row * width + position]}
                    for position, (token, kept) in enumerate(zip(tokens, keep)) if kept)
    return rows
