"""ProteinSequences: amino-acid sequences from FASTA or CSV/TSV, as padded token ids with a mask.

FASTA labels come from the header (`>P12345 label=1`); tables have a sequence column and a label
column. The 20 amino acids and the ambiguous letters X, B, Z, U, O are accepted (any case);
anything else is refused with its file, line and column.
"""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch

from pyrosys.configuration.constraints import Boolean, Integer, MappingWith, OneOf, OptionalOf, Text
from pyrosys.errors import ConfigError
from pyrosys.factory import register
from pyrosys.problems.problem import FRACTIONS, FileProblem, read_rows, read_text
from pyrosys.problems.scikit_learn import split_indices, standardise

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
AMBIGUOUS = "XBZUO"
VOCABULARY = ["<pad>", *AMINO_ACIDS, *AMBIGUOUS]
TOKEN = {letter: index for index, letter in enumerate(VOCABULARY) if index}
SPLITS = ("train", "val", "test")


class Record:
    """One sequence read from a file, with where it was found (for error messages)."""

    __slots__ = ("identifier", "label", "split", "line", "parts", "field")

    def __init__(self, identifier: str, label: str | None, split: str | None, line: int,
                 parts: list[tuple[str, int]], field: str | None = None) -> None:
        self.identifier, self.label, self.split, self.line = identifier, label, split, line
        self.parts = parts      # (text, line number) of every line holding the sequence
        self.field = field      # the table column holding the sequence; None for FASTA

    @property
    def sequence(self) -> str:
        return "".join(text for text, _ in self.parts)

    def where(self, offset: int) -> str:
        """'line L, column C' of the letter at `offset` in the sequence."""
        for text, number in self.parts:
            if offset < len(text):
                if self.field is None:
                    return f"line {number}, column {offset + 1}"
                return f"line {number}, column '{self.field}', letter {offset + 1}"
            offset -= len(text)
        return f"line {self.line}"


def read_fasta(path: Path, label_key: str) -> list[Record]:
    """Records of a FASTA file; the label is `label_key=value` in the header."""
    records: list[Record] = []
    header: tuple[str, str | None, int] | None = None
    parts: list[tuple[str, int]] = []

    def close() -> None:
        if header is not None:
            records.append(Record(header[0], header[1], None, header[2], parts))

    for number, line in enumerate(io.StringIO(read_text(path), newline=None), start=1):   # lines as open() cuts them
        line = line.strip()
        if not line:
            continue
        if line.startswith(">"):
            close()
            fields = line[1:].split()
            labels = dict(field.split("=", 1) for field in fields[1:] if "=" in field)
            header, parts = (fields[0] if fields else f"record{len(records) + 1}", labels.get(label_key), number), []
        elif header is None:
            raise ConfigError(f"line {number}: sequence data before the first '>' header", file=str(path),
                              key="problem.path", hint="A FASTA record starts with a '>identifier' line")
        else:
            parts.append((line, number))
    close()
    return records


def read_table(path: Path, sequence_column: str, label_column: str | None, split_column: str | None) -> list[Record]:
    """Records of a CSV or TSV table with a sequence column (and label and split columns)."""
    columns, rows = read_rows(path, delimiter="\t" if path.suffix.lower() in (".tsv", ".tab") else ",")
    for wanted, key in ((sequence_column, "sequence_column"), (label_column, "label_column"),
                        (split_column, "split_column")):
        if wanted is not None and wanted not in columns:
            raise ConfigError(f"the table has no column '{wanted}' (columns: {', '.join(columns) or 'none'})",
                              file=str(path), key=f"problem.{key}", hint="Name an existing column")
    return [Record(row.get("id") or f"row {number}", row[label_column] if label_column else None,
                   row[split_column] if split_column else None, number,
                   [((row[sequence_column] or "").strip(), number)], sequence_column)
            for number, row in rows]


FASTA_SUFFIXES = (".fasta", ".fa", ".faa", ".fas")


def read_sequence_file(path: Path, sequence_column: str = "sequence", label_column: str | None = "label",
                       split_column: str | None = None) -> list[Record]:
    """The records of a FASTA file (labels as `label=...` header keys) or a CSV/TSV table."""
    if path.suffix.lower() in FASTA_SUFFIXES:
        return read_fasta(path, label_column or "label")
    return read_table(path, sequence_column, label_column, split_column)


def token_ids(records: list[Record], path: Path, max_length: int) -> torch.Tensor:
    """The records' token ids, padded to `max_length` (0 is padding): how a model trained on
    ProteinSequences reads raw sequences, at training and in the predictor alike."""
    ids = torch.zeros(len(records), max_length, dtype=torch.long)
    for row, record in enumerate(records):
        tokens = encode(record, path, max_length)
        ids[row, :len(tokens)] = torch.tensor(tokens, dtype=torch.long)
    return ids


def encode(record: Record, path: Path, max_length: int) -> list[int]:
    """Token ids of a sequence (truncated to max_length), refusing letters that are not amino acids."""
    ids = []
    for offset, letter in enumerate(record.sequence.upper()):
        if letter not in TOKEN:
            raise ConfigError(f"{record.where(offset)}: '{letter}' in {record.identifier} is not an amino-acid letter",
                              file=str(path), key="problem.path",
                              hint=f"Sequences may hold {AMINO_ACIDS} and the ambiguous letters {AMBIGUOUS}")
        ids.append(TOKEN[letter])
    return ids[:max_length]


def regression_values(records: list[Record], path: Path, label_column: str) -> np.ndarray:
    """The records' labels as numbers, refusing any that is not a finite number with its line."""
    values = np.zeros(len(records))
    for row, record in enumerate(records):
        try:
            values[row] = float(str(record.label))
        except ValueError:
            values[row] = math.nan
        if not math.isfinite(values[row]):
            where = f"line {record.line}" + (f", column '{label_column}'" if record.field is not None else "")
            raise ConfigError(f"{where}: the regression label {record.label!r} of {record.identifier} is not a finite "
                              "number", file=str(path), key="problem.label_column",
                              hint="Give every sequence a numeric label, or leave the unmeasured ones out")
    return values


@register("problem")
class ProteinSequences(FileProblem):
    """Classify or regress a property of protein sequences read from FASTA, CSV or TSV."""

    @staticmethod
    def get_params() -> dict:
        return {**FileProblem.get_params(),                 # FASTA (.fasta/.fa), CSV or TSV; relative to its YAML file
                "task": "classification",     # or regression
                "sequence_column": "sequence",
                "label_column": "label",      # tables: the label column; FASTA: the header key (label=...)
                "split_column": None,         # a column holding train / val / test; null: seeded fractions
                "fractions": [0.8, 0.1, 0.1],
                "max_length": 512,            # longer sequences are truncated
                "standardize": True,          # regression targets standardised with training statistics
                "batching": None}             # null: batch_size rows padded to the data's longest; or
                                              # {by: length, max_tokens: N} (docs/proteins.md, "Batching")

    @staticmethod
    def constraints() -> dict:
        return {**FileProblem.constraints(), "task": OneOf("classification", "regression"),
                "sequence_column": Text(), "label_column": Text(),
                "split_column": OptionalOf(Text(), "seeded fractions"), "fractions": FRACTIONS,
                "max_length": Integer(low=1), "standardize": Boolean(),
                "batching": OptionalOf(MappingWith({"by": OneOf("length", "order"),
                                                    "max_tokens": OptionalOf(Integer(low=1), "batch_size rows")}),
                                       "batch_size rows padded to the data's longest")}

    @property
    def task(self) -> str:  # type: ignore[override]
        return self.params["task"]

    def splits_key(self) -> str:
        return "problem.split_column" if self.params["split_column"] else "problem.fractions"

    def labels_key(self) -> str:
        return "problem.label_column"

    def read(self) -> list[Record]:
        """Every record of the file, checked."""
        params = self.params
        if not params["path"]:
            raise ConfigError("no sequence file is named", key="problem.path",
                              hint="Set problem.path to a FASTA, CSV or TSV file")
        path = Path(params["path"])
        if not path.is_file():
            raise ConfigError("the sequence file does not exist", file=str(path), key="problem.path")
        records = read_sequence_file(path, params["sequence_column"], params["label_column"], params["split_column"])
        if not records:
            raise ConfigError("the file holds no sequences", file=str(path), key="problem.path")
        for record in records:
            if not record.sequence:
                raise ConfigError(f"line {record.line}: {record.identifier} has an empty sequence", file=str(path),
                                  key="problem.path")
            if record.label in (None, ""):
                raise ConfigError(f"line {record.line}: {record.identifier} has no label", file=str(path),
                                  key="problem.label_column", hint="Every sequence needs a label")
            if params["split_column"] and record.split not in SPLITS:
                raise ConfigError(f"line {record.line}: split value {record.split!r} is not train, val or test",
                                  file=str(path), key="problem.split_column")
        return records

    def prepare(self) -> tuple[dict[str, dict[str, torch.Tensor]], dict]:
        """Token ids, masks and targets of every split, and the data definitions."""
        params, path = self.params, Path(self.params["path"] or ".")
        records = self.read()
        inputs = token_ids(records, path, int(params["max_length"]))
        length = int((inputs != 0).sum(dim=1).max())
        inputs = inputs[:, :length].contiguous()          # padded only to the longest sequence
        self.check_batching(records, inputs)
        masks = inputs != 0
        if params["split_column"]:
            parts = [np.array([i for i, r in enumerate(records) if r.split == name], dtype=int) for name in SPLITS]
        else:
            parts = split_indices(len(records), params["fractions"], params["seed"])
        targets_definition: dict = {"shape": []}
        if self.task == "classification":
            classes = sorted({r.label for r in records})
            index = {label: i for i, label in enumerate(classes)}
            targets = torch.tensor([index[r.label] for r in records])
            targets_definition.update(dtype="int64", num_classes=len(classes), classes=classes)
        else:
            values = regression_values(records, path, params["label_column"])
            if params["standardize"]:
                values, mean, std = standardise(values, parts[0])
                targets_definition["standardize"] = {"mean": mean, "std": std}
            targets = torch.tensor(values, dtype=torch.float32)
            targets_definition["dtype"] = "float32"
        definitions = {"inputs": {"kind": "tokens", "shape": [length], "dtype": "int64", "vocabulary": VOCABULARY,
                                  "per_position": True},
                       "targets": targets_definition,
                       "masks": {"shape": [length], "dtype": "bool", "per_position": True}}
        splits = {name: {"inputs": inputs[torch.from_numpy(idx)], "targets": targets[torch.from_numpy(idx)],
                         "masks": masks[torch.from_numpy(idx)]} for name, idx in zip(SPLITS, parts)}
        return splits, definitions

    def check_batching(self, records: list[Record], inputs: torch.Tensor) -> None:
        """Refuse a `batching` that cannot cut the data: max_tokens with `by: order`, or a token budget
        smaller than the longest sequence (after max_length), which no batch could hold."""
        lengths = (inputs != 0).sum(dim=1)
        longest = int(lengths.argmax())
        for phase, params in [("problem", self.params)] + [(f"{p}.problem", v) for p, v in self.phases.items()]:
            batching, key = params.get("batching") or {}, f"{phase}.batching"
            if batching.get("max_tokens") is not None and batching.get("by", "length") == "order":
                raise ConfigError("batching by order cuts batch_size rows: it takes no max_tokens",
                                  key=f"{key}.max_tokens", hint="Remove max_tokens, or batch by: length")
            budget, size, record = batching.get("max_tokens"), int(lengths[longest]), records[longest]
            if budget is not None and budget < size:
                cut = " (after truncation to max_length)" if len(record.sequence) > size else ""
                raise ConfigError(f"line {record.line}: {record.identifier} holds {size} residues{cut}, more than a "
                                  f"batch of max_tokens {budget} can hold", file=self.params["path"],
                                  key=f"{key}.max_tokens",
                                  hint=f"Raise max_tokens to at least {size}, or lower max_length to {budget} "
                                       "(longer sequences are then truncated)")
