"""ProteinSequences: amino-acid sequences from FASTA or CSV/TSV, as padded token ids with a mask.

FASTA labels come from the header (`>P12345 label=1`); tables have a sequence column and a label
column. Multi-label tasks hold `;`-separated terms there (`GO:0005515;GO:0003677`), their vocabulary
taken from the training split. The 20 amino acids and the ambiguous letters X, B, Z, U, O are accepted (any case);
anything else is refused with its file, line and column.
"""
from __future__ import annotations

import io
import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pyrosys.configuration.constraints import Boolean, Integer, Label, ListOf, MappingWith, OneOf, OptionalOf, Text
from pyrosys.errors import ConfigError
from pyrosys.factory import register
from pyrosys.objectives import RESIDUE_TASKS, UNSEEN_FIELD
from pyrosys.problems.problem import FRACTIONS, FileProblem, class_names, read_rows, read_text
from pyrosys.problems.scikit_learn import split_indices, standardise

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
AMBIGUOUS = "XBZUO"
VOCABULARY = ["<pad>", *AMINO_ACIDS, *AMBIGUOUS]
TOKEN = {letter: index for index, letter in enumerate(VOCABULARY) if index}
SPLITS = ("train", "val", "test")
TERM_SEPARATOR = ";"           # multilabel: the terms of one sequence, e.g. GO:0005515;GO:0003677

log = logging.getLogger(__name__)
CLASS_TASKS = ("classification", "residue_classification")
# the `batching` parameter of the problems reading sequences (problems/batching.py)
BATCHING = OptionalOf(MappingWith({"by": OneOf("length", "order"),
                                   "max_tokens": OptionalOf(Integer(low=1), "batch_size rows")}),
                      "batch_size rows padded to the data's longest")


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
    return parse_fasta(io.StringIO(read_text(path), newline=None), path, label_key)   # lines as open() cuts them


def fasta_header(line: str, index: int, number: int, label_key: str) -> tuple[str, str | None, int]:
    """The identifier, label and line number of a '>' header line (stripped); `index`: records before it."""
    fields = line[1:].split()
    labels = dict(field.split("=", 1) for field in fields[1:] if "=" in field)
    return fields[0] if fields else f"record{index + 1}", labels.get(label_key), number


def parse_fasta(lines: Iterable[str], path: Path, label_key: str, first_line: int = 1,
                first_index: int = 0) -> list[Record]:
    """The records of FASTA lines whose first is line `first_line` of the file, after `first_index` records
    (the in-memory path parses the whole file, the on-disk index one record's bytes)."""
    records: list[Record] = []
    header: tuple[str, str | None, int] | None = None
    parts: list[tuple[str, int]] = []

    def close() -> None:
        if header is not None:
            records.append(Record(header[0], header[1], None, header[2], parts))

    for number, line in enumerate(lines, start=first_line):
        line = line.strip()
        if not line:
            continue
        if line.startswith(">"):
            close()
            header, parts = fasta_header(line, first_index + len(records), number, label_key), []
        elif header is None:
            raise ConfigError(f"line {number}: sequence data before the first '>' header", file=str(path),
                              key="problem.path", hint="A FASTA record starts with a '>identifier' line")
        else:
            parts.append((line, number))
    close()
    return records


def table_delimiter(path: Path) -> str:
    """The delimiter of a table: tab for .tsv and .tab files, else comma."""
    return "\t" if path.suffix.lower() in (".tsv", ".tab") else ","


def check_columns(columns: list[str], path: Path, sequence_column: str, label_column: str | None,
                  split_column: str | None) -> None:
    """Refuse a table lacking a named column (naming the columns it has)."""
    for wanted, key in ((sequence_column, "sequence_column"), (label_column, "label_column"),
                        (split_column, "split_column")):
        if wanted is not None and wanted not in columns:
            raise ConfigError(f"the table has no column '{wanted}' (columns: {', '.join(columns) or 'none'})",
                              file=str(path), key=f"problem.{key}", hint="Name an existing column")


def table_record(row: dict, number: int, sequence_column: str, label_column: str | None,
                 split_column: str | None) -> Record:
    """The record of a table row (a csv.DictReader row) ending on line `number`."""
    return Record(row.get("id") or f"row {number}", row[label_column] if label_column else None,
                  row[split_column] if split_column else None, number,
                  [((row[sequence_column] or "").strip(), number)], sequence_column)


def read_table(path: Path, sequence_column: str, label_column: str | None, split_column: str | None) -> list[Record]:
    """Records of a CSV or TSV table with a sequence column (and label and split columns)."""
    columns, rows = read_rows(path, delimiter=table_delimiter(path))
    check_columns(columns, path, sequence_column, label_column, split_column)
    return [table_record(row, number, sequence_column, label_column, split_column) for number, row in rows]


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
        tokens = encode_array(record, path, max_length)
        ids[row, :len(tokens)] = torch.from_numpy(tokens)
    return ids


# byte -> token id (0: not an amino-acid letter), both cases
CODES = np.zeros(256, dtype=np.int64)
for _letter, _index in TOKEN.items():
    CODES[ord(_letter)] = CODES[ord(_letter.lower())] = _index


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


def encode_array(record: Record, path: Path, max_length: int) -> np.ndarray:
    """encode() as an int64 array, by table look-up for ASCII sequences (encode() itself for the rest and
    for refusals, so both give the same ids and the same messages)."""
    sequence = record.sequence
    if sequence.isascii():
        ids = CODES[np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)]
        if ids.all():
            return ids[:max_length]
    return np.array(encode(record, path, max_length), dtype=np.int64)


def label_place(record: Record, label_column: str) -> str:
    """Where a record's label was read: 'line L, column C' of a table, 'line L, header key K' of FASTA."""
    if record.field is not None:
        return f"line {record.line}, column '{label_column}'"
    return f"line {record.line}, header key '{label_column}='"


def number(text: str, record: Record, path: Path, label_column: str, what: str) -> float:
    """A label as a finite number, or a refusal naming the record, its line and `what` was read."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ConfigError(f"{label_place(record, label_column)}: the regression label {text!r} {what}of "
                          f"{record.identifier} is not a finite number", file=str(path), key="problem.label_column",
                          hint="Give every sequence a numeric label, or leave the unmeasured ones out")
    return value


def residue_parts(text: str, residues: int) -> list[str]:
    """A per-residue label's parts: comma-separated (0,0,1,0), else its letters (0010); one residue's label whole."""
    text = text.strip()
    return [part.strip() for part in text.split(",")] if "," in text or residues == 1 else list(text)


def residue_labels(record: Record, path: Path, label_column: str) -> list[str]:
    """One label per residue, comma-separated (0,0,1,0) or a string as long as the sequence (0010); a count
    that differs from the sequence length is refused naming both lengths."""
    residues = len(record.sequence)
    labels = residue_parts(str(record.label), residues)
    if len(labels) != residues:
        raise ConfigError(f"{label_place(record, label_column)}: {record.identifier} has {len(labels)} residue "
                          f"labels but its sequence is {residues} residues long", file=str(path),
                          key="problem.label_column",
                          hint="Give one label per residue: comma-separated (0,0,1,0) or a string exactly as long "
                               "as the sequence (0010)")
    return labels


def class_labels(labels: list[list[str]], records: list[Record], declared: list | None, path: Path,
                 label_column: str, per_residue: bool) -> tuple[list[str], list[list[int]]]:
    """The classes (declared, else those found, sorted) and every record's labels as class indices; a label
    outside declared classes is refused with its record, line and position."""
    classes = class_names((label for row in labels for label in row), declared)
    index = {label: i for i, label in enumerate(classes)}
    for record, row in zip(records, labels):
        for position, label in enumerate(row):
            if label not in index:
                residue = f"residue {position + 1} of " if per_residue else ""
                raise ConfigError(f"{label_place(record, label_column)}: {residue}{record.identifier} is labelled "
                                  f"{label!r}, not one of the declared classes {', '.join(classes)}",
                                  file=str(path), key="problem.classes",
                                  hint="Mend the label, or add it to problem.classes")
    return classes, [[index[label] for label in row] for row in labels]


def padded(rows: list[list], masks: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Per-residue values as [N, T] aligned with the masks (truncated alike; padding 0, never counted)."""
    values = torch.zeros(masks.shape, dtype=dtype)
    for row, labels in enumerate(rows):
        kept = int(masks[row].sum())
        values[row, :kept] = torch.tensor(labels[:kept], dtype=dtype)
    return values


def label_terms(label: str | None) -> list[str]:
    """The distinct terms of a multilabel label (`;`-separated; blanks around and between them ignored), sorted."""
    return sorted({term.strip() for term in str(label or "").split(TERM_SEPARATOR) if term.strip()})


def multilabel_targets(records: list[Record], training: np.ndarray, path: Path,
                       label_column: str) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """0/1 targets [N, M] over the terms of the training split, each record's count of terms outside them
    (seen only in validation or test: misses the model cannot avoid), and the targets' definition. A record
    none of whose terms occurs in training is refused: nothing of it could be learnt or judged."""
    terms_of = [label_terms(record.label) for record in records]
    counts = Counter(term for row in training for term in terms_of[row])
    terms = sorted(counts)
    index = {term: column for column, term in enumerate(terms)}
    targets = torch.zeros(len(records), len(terms))
    unseen = torch.zeros(len(records), dtype=torch.long)
    for row, names in enumerate(terms_of):
        known = [index[term] for term in names if term in index]
        if not known:
            record = records[row]
            raise ConfigError(f"{label_place(record, label_column)}: none of the terms of {record.identifier} "
                              f"({', '.join(names)}) occurs in the training split, so the model can neither learn nor "
                              "predict any of them",
                              file=str(path), key="problem.label_column",
                              hint="Drop the row, or put a protein annotated with those terms into the training split")
        targets[row, known] = 1.0
        unseen[row] = len(names) - len(known)
    return targets, unseen, terms_definition(terms_of, counts, int(unseen.sum()), path)


def terms_definition(terms_of: list[list[str]], counts: Counter, unseen: int, path: Path) -> dict:
    """The multilabel targets' definition (terms of the training split, their counts, the unseen ones), the terms
    outside the training split said in the log."""
    terms = sorted(counts)
    outside = sorted({term for names in terms_of for term in names if term not in counts})
    if outside:
        log.warning("%s: %d terms (%d annotations) of the validation/test splits do not occur in the training "
                    "split: the model cannot predict them; fmax counts them as missed in its recall", path,
                    len(outside), unseen)
    return {"shape": [len(terms)], "dtype": "float32", "terms": terms, "term_counts": [counts[term] for term in terms],
            "unseen": {"terms": len(outside), "annotations": unseen}}


@register("problem")
class ProteinSequences(FileProblem):
    """Classify or regress a property of protein sequences read from FASTA, CSV or TSV."""

    path_params = ("path", "index_folder")

    @staticmethod
    def get_params() -> dict:
        return {**FileProblem.get_params(),                 # FASTA (.fasta/.fa), CSV or TSV; relative to its YAML file
                "task": "classification",     # regression, multilabel (`;`-separated terms); residue_classification,
                                              # residue_regression: one label per residue
                "sequence_column": "sequence",
                "label_column": "label",      # tables: the label column; FASTA: the header key (label=...)
                "split_column": None,         # a column holding train / val / test; null: seeded fractions
                "fractions": [0.8, 0.1, 0.1],
                "max_length": 512,            # longer sequences (and their residue labels) are truncated
                "standardize": True,          # regression targets standardised with training statistics
                "classes": None,              # the labels a classification may hold, in order; null: those found
                "batching": None,             # null: batch_size rows padded to the data's longest; or
                                              # {by: length, max_tokens: N} (docs/proteins.md, "Batching")
                "in_memory": True,            # false: FASTA read through an on-disk index, a batch at a time
                                              # (files larger than memory; docs/proteins.md, "Large files")
                "index_folder": None}         # in_memory false: where the index lives; null: <file>.pyrosys-index

    @staticmethod
    def constraints() -> dict:
        return {**FileProblem.constraints(),
                "task": OneOf("classification", "regression", "multilabel", "residue_classification",
                              "residue_regression"),
                "sequence_column": Text(), "label_column": Text(),
                "split_column": OptionalOf(Text(), "seeded fractions"), "fractions": FRACTIONS,
                "max_length": Integer(low=1), "standardize": Boolean(),
                "classes": OptionalOf(ListOf(Label(), min_length=2), "the labels found in the file, sorted"),
                "batching": BATCHING, "in_memory": Boolean(),
                "index_folder": OptionalOf(Text(), "<file>.pyrosys-index beside the file")}

    @property
    def task(self) -> str:  # type: ignore[override]
        return self.params["task"]

    def splits_key(self) -> str:
        return "problem.split_column" if self.params["split_column"] else "problem.fractions"

    def labels_key(self) -> str:
        return "problem.label_column"

    def read(self) -> list[Record]:
        """Every record of the file, checked."""
        params, path = self.read_checked().params, Path(self.params["path"])
        records = read_sequence_file(path, params["sequence_column"], params["label_column"], params["split_column"])
        if not records:
            raise ConfigError("the file holds no sequences", file=str(path), key="problem.path")
        for record in records:
            if not record.sequence:
                raise ConfigError(f"line {record.line}: {record.identifier} has an empty sequence", file=str(path),
                                  key="problem.path")
            if record.label in (None, "") or (self.task == "multilabel" and not label_terms(record.label)):
                raise ConfigError(f"line {record.line}: {record.identifier} has no label", file=str(path),
                                  key="problem.label_column", hint="Every sequence needs a label")
            if params["split_column"] and record.split not in SPLITS:
                raise ConfigError(f"line {record.line}: split value {record.split!r} is not train, val or test",
                                  file=str(path), key="problem.split_column")
        return records

    def setup(self, stage: str | None = None) -> None:
        if self.params.get("in_memory", True):     # ProteinBenchmark: in memory always
            return super().setup(stage)
        if getattr(self, "splits", None) is None:
            from pyrosys.problems.protein_streaming import open_streamed
            self.splits, self.streamed_definitions = open_streamed(self.read_checked())
            self.check_data({})

    def teardown(self, stage: str | None = None) -> None:
        """Lightning's end of a stage: a streamed problem closes its descriptor of the sequence file (a later
        stage's first read opens it again)."""
        from pyrosys.problems.sequence_index import SequenceIndex
        for split in (getattr(self, "splits", None) or {}).values():
            if isinstance(getattr(split, "index", None), SequenceIndex):
                split.index.close()
        super().teardown(stage)

    def define_data(self) -> dict:
        if self.params.get("in_memory", True):
            return super().define_data()
        self.setup()
        return {field: dict(definition) for field, definition in self.streamed_definitions.items()}

    def loader(self, phase: str) -> Any:
        if self.params.get("in_memory", True):
            return super().loader(phase)
        from pyrosys.problems.protein_streaming import streamed_loader
        return streamed_loader(self, phase)

    def read_checked(self) -> ProteinSequences:
        """This problem, its sequence file named and present (refused otherwise)."""
        if not self.params["path"]:
            raise ConfigError("no sequence file is named", key="problem.path",
                              hint="Set problem.path to a FASTA, CSV or TSV file")
        if not Path(self.params["path"]).is_file():
            raise ConfigError("the sequence file does not exist", file=str(self.params["path"]), key="problem.path")
        return self

    def prepare(self) -> tuple[dict[str, dict[str, torch.Tensor]], dict]:
        """Token ids, masks and targets of every split, and the data definitions."""
        params, path = self.params, Path(self.params["path"] or ".")
        records = self.read()
        inputs = token_ids(records, path, int(params["max_length"]))
        length = int((inputs != 0).sum(dim=1).max())
        inputs = inputs[:, :length].contiguous()          # padded only to the longest sequence
        self.check_budget((inputs != 0).sum(dim=1).numpy(), records.__getitem__)
        masks = inputs != 0
        if params["split_column"]:
            parts = [np.array([i for i, r in enumerate(records) if r.split == name], dtype=int) for name in SPLITS]
        else:
            parts = split_indices(len(records), params["fractions"], params["seed"])
        extra: dict[str, torch.Tensor] = {}       # per-record fields a task adds (multilabel: unseen_terms)
        if self.task == "multilabel":
            targets, extra[UNSEEN_FIELD], targets_definition = multilabel_targets(records, parts[0], path,
                                                                                 params["label_column"])
        else:
            targets, targets_definition = self.targets(records, path, parts[0], masks)
        definitions = {"inputs": {"kind": "tokens", "shape": [length], "dtype": "int64", "vocabulary": VOCABULARY,
                                  "per_position": True},
                       "targets": targets_definition,
                       "masks": {"shape": [length], "dtype": "bool", "per_position": True}}
        fields = {"inputs": inputs, "targets": targets, "masks": masks, **extra}
        if extra:
            definitions[UNSEEN_FIELD] = {"shape": [], "dtype": "int64"}
        splits = {name: {field: values[torch.from_numpy(idx)] for field, values in fields.items()}
                  for name, idx in zip(SPLITS, parts)}
        self.identifiers = {name: [records[i].identifier for i in idx] for name, idx in zip(SPLITS, parts)}
        return splits, definitions

    def targets(self, records: list[Record], path: Path, train: np.ndarray,
                masks: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """The targets of every record ([N], or [N, T] per residue aligned with the masks) and their definition:
        classes with the training split's class counts, or standardisation statistics."""
        params, label_column = self.params, self.params["label_column"]
        per_residue, train = self.task in RESIDUE_TASKS, torch.from_numpy(train)
        definition: dict = {"shape": [masks.shape[1]], "per_position": True} if per_residue else {"shape": []}
        if per_residue:
            labels = [residue_labels(record, path, label_column) for record in records]
        else:
            labels = [[str(record.label)] for record in records]
        if self.task in CLASS_TASKS:
            classes, indices = class_labels(labels, records, params["classes"], path, label_column, per_residue)
            targets = padded(indices, masks, torch.long) if per_residue else torch.tensor([row[0] for row in indices])
            kept = targets[train][masks[train]] if per_residue else targets[train]
            counts = torch.bincount(kept, minlength=len(classes)).tolist()
            definition.update(dtype="int64", num_classes=len(classes), classes=classes, class_counts=counts)
            return targets, definition
        return self.regression_targets(records, path, labels, train, masks, definition)

    def regression_targets(self, records: list[Record], path: Path, labels: list[list[str]], train: torch.Tensor,
                           masks: torch.Tensor, definition: dict) -> tuple[torch.Tensor, dict]:
        """Regression targets (one value a record, or one a residue), standardised with the training split's
        statistics (of its residues, for residue regression) where asked."""
        per_residue, label_column = self.task in RESIDUE_TASKS, self.params["label_column"]
        values = [[number(label, record, path, label_column, f"at residue {position + 1} " if per_residue else "")
                   for position, label in enumerate(row)] for record, row in zip(records, labels)]
        if per_residue:
            targets = padded(values, masks, torch.float64)
            flat, kept = targets.numpy().reshape(-1), masks.numpy().reshape(-1)
            train_positions = np.flatnonzero((masks & torch.isin(torch.arange(len(masks)), train)[:, None])
                                             .numpy().reshape(-1))
        else:
            flat, kept, train_positions = np.array([row[0] for row in values]), None, train.numpy()
        if self.params["standardize"]:
            flat, mean, std = standardise(flat, train_positions)
            definition["standardize"] = {"mean": mean, "std": std}
        if kept is not None:
            flat = np.where(kept, flat, 0.0)
        definition["dtype"] = "float32"
        return torch.tensor(flat, dtype=torch.float32).reshape(masks.shape if per_residue else (-1,)), definition

    def check_budget(self, lengths: np.ndarray, record_of: Callable[[int], Record]) -> None:
        """Refuse a `batching` that cannot cut the data: max_tokens with `by: order`, or a token budget
        smaller than the longest sequence (`lengths`: after max_length), which no batch could hold."""
        longest = int(np.argmax(lengths))
        for phase, params in [("problem", self.params)] + [(f"{p}.problem", v) for p, v in self.phases.items()]:
            batching, key = params.get("batching") or {}, f"{phase}.batching"
            if batching.get("max_tokens") is not None and batching.get("by", "length") == "order":
                raise ConfigError("batching by order cuts batch_size rows: it takes no max_tokens",
                                  key=f"{key}.max_tokens", hint="Remove max_tokens, or batch by: length")
            budget, size, record = batching.get("max_tokens"), int(lengths[longest]), record_of(longest)
            if budget is not None and budget < size:
                cut = " (after truncation to max_length)" if len(record.sequence) > size else ""
                raise ConfigError(f"line {record.line}: {record.identifier} holds {size} residues{cut}, more than a "
                                  f"batch of max_tokens {budget} can hold", file=self.params["path"],
                                  key=f"{key}.max_tokens",
                                  hint=f"Raise max_tokens to at least {size}, or lower max_length to {budget} "
                                       "(longer sequences are then truncated)")
