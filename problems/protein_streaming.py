"""ProteinSequences with `in_memory: false`: a FASTA file read through its on-disk SequenceIndex, batch by batch.

The splits, labels, classes, class counts and standardisation are those of the in-memory path (computed from the
index's labels; per-residue ones a record at a time, and read again with their batch); the sequences stay on disk:
a batch's records are read with os.pread, parsed and encoded by protein.py's own functions (in DataLoader worker
processes with `num_workers`) and padded to the batch's longest. Batches follow a Batching plan over the index's
lengths (`batching`, or `batch_size` rows in a seeded order when it is null),
shared out between DDP processes and resumable mid-epoch as the in-memory plans are.
"""
from __future__ import annotations

import gc
import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from pyrosys.data_dict import DataDict
from pyrosys.errors import ConfigError
from pyrosys.problems.batching import Batching, EpochPlan
from pyrosys.problems.problem import class_names, keep_batch, refuse_dropped
from pyrosys.objectives import UNSEEN_FIELD
from pyrosys.problems.protein import (FASTA_SUFFIXES, SPLITS, VOCABULARY, class_labels, encode_array, label_terms,
                                      multilabel_targets, number, residue_labels, residue_parts, terms_definition)
from pyrosys.problems.scikit_learn import split_indices, standardise
from pyrosys.problems.sequence_index import SequenceIndex, table_layout

STREAMED_TASKS = ("classification", "regression", "residue_classification", "residue_regression", "multilabel")


class ResidueTargets:
    """Per-residue targets read from the records' labels when their batch is read: class indices (`place`), or
    values standardised with the training split's (mean, std); padding 0, truncated to max_length as the inputs."""

    def __init__(self, place: dict[str, int] | None, mean: float = 0.0, std: float = 1.0) -> None:
        self.place, self.mean, self.std = place, mean, std

    def batch(self, index: SequenceIndex, rows: np.ndarray, width: int) -> torch.Tensor:
        """The targets [len(rows), width] of records `rows`."""
        values = np.zeros((len(rows), width), dtype=np.int64 if self.place is not None else np.float64)
        for slot, row in enumerate(rows.tolist()):
            labels = residue_parts(index.label(row), int(index.columns["lengths"][row]))[:width]
            if self.place is not None:
                values[slot, :len(labels)] = [self.place[label] for label in labels]
            else:
                values[slot, :len(labels)] = (np.array([float(label) for label in labels]) - self.mean) / self.std
        return torch.from_numpy(values if self.place is not None else values.astype(np.float32))


class TermTargets:
    """Multilabel targets made when a batch is read: 0/1 over the training split's terms, from the records' labels."""

    def __init__(self, place: dict[str, int]) -> None:
        self.place = place

    def batch(self, index: SequenceIndex, rows: np.ndarray, width: int) -> torch.Tensor:
        """The targets [len(rows), terms] of records `rows` (`width`, the inputs', unused)."""
        values = torch.zeros(len(rows), len(self.place))
        for slot, row in enumerate(rows.tolist()):
            values[slot, [self.place[term] for term in label_terms(index.label(row)) if term in self.place]] = 1.0
        return values


class StreamedSplit(Dataset):
    """One split of an indexed FASTA file: its records' indices; a batch read, encoded and padded on request."""

    def __init__(self, index: SequenceIndex, rows: np.ndarray, targets: torch.Tensor | ResidueTargets | TermTargets,
                 max_length: int, extra: dict[str, torch.Tensor] | None = None) -> None:
        self.index, self.rows, self.targets, self.max_length = index, rows, targets, max_length
        self.extra = extra or {}          # per-record fields a task adds (multilabel: unseen_terms)
        self.lengths = np.minimum(np.asarray(index.columns["lengths"])[rows], max_length)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitems__(self, positions: Sequence[int]) -> DataDict:
        """The samples at `positions` of the split as one batch, padded to its longest sequence."""
        rows = self.rows[np.asarray(positions, dtype=np.int64)]
        ids = [encode_array(self.index.record(int(row)), self.index.path, self.max_length) for row in rows]
        padded = np.zeros((len(ids), max(len(tokens) for tokens in ids)), dtype=np.int64)
        for place, tokens in enumerate(ids):
            padded[place, :len(tokens)] = tokens
        if isinstance(self.targets, torch.Tensor):
            targets = self.targets[torch.from_numpy(rows)]
        else:
            targets = self.targets.batch(self.index, rows, padded.shape[1])
        return DataDict({"inputs": torch.from_numpy(padded), "targets": targets, "masks": torch.from_numpy(padded != 0),
                         **{name: values[torch.from_numpy(rows)] for name, values in self.extra.items()}})

    def __getitem__(self, position: int) -> DataDict:
        batch = self.__getitems__([position])
        return DataDict({name: values[0] for name, values in batch.items()})


class Pending(Sampler):
    """The batch sampler of a StreamedBatches' DataLoader: the batches its current iteration goes through."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def freeze_inherited(worker: int) -> None:
    """A DataLoader worker's first step: the objects it inherited from the trainer are left out of its garbage
    collections, which would otherwise touch (and so copy) every page holding them."""
    gc.freeze()


class StreamedBatches(EpochPlan):
    """The batches of a streamed split after a Batching plan, fetched by a DataLoader (worker processes with
    `workers`). Not itself a DataLoader, so Lightning neither wraps nor replaces it (nor its plan under DDP)."""

    def __init__(self, split: StreamedSplit, batching: Batching, shuffle: bool, rank: int = 0, world: int = 1,
                 processed: Callable[[], int] | None = None, epoch: Callable[[], int] | None = None,
                 workers: int = 0) -> None:
        super().__init__(split.lengths, batching, shuffle, rank, world, processed, epoch)
        self.pending = Pending()
        # its own generator: an iteration's draw of the workers' base seed leaves the global RNG (dropout's) alone;
        # workers kept between epochs for training only (validation and test ones exit after their pass)
        self.loader = DataLoader(split, batch_sampler=self.pending, num_workers=workers, collate_fn=keep_batch,
                                 persistent_workers=workers > 0 and shuffle, worker_init_fn=freeze_inherited,
                                 generator=torch.Generator().manual_seed(batching.seed))

    def __iter__(self) -> Iterator[DataDict]:
        self.pending.batches = [batch.tolist() for batch in self.remaining()]
        return iter(self.loader)


def refuse_first(rows: np.ndarray, index: SequenceIndex, what: str, key: str, hint: str | None = None) -> None:
    """Refuse the first of `rows` (records breaking a rule) as the in-memory path does: its line and name."""
    if len(rows):
        record = index.record(int(rows[0]))
        raise ConfigError(f"line {record.line}: {record.identifier} {what}", file=str(index.path), key=key, hint=hint)


def classification_targets(index: SequenceIndex, labels: list[str], train: np.ndarray,
                           params: dict) -> tuple[torch.Tensor, dict]:
    """Class indices of every record, and the definition with the training split's class counts."""
    declared = params["classes"]
    classes = class_names(labels, declared)
    place = {label: i for i, label in enumerate(classes)}
    found = np.array([place.get(label, -1) for label in labels], dtype=np.int64)
    for row in np.flatnonzero(found < 0)[:1]:             # refused with the in-memory path's message
        class_labels([[labels[row]]], [index.record(int(row))], declared, index.path, params["label_column"], False)
    counts = np.bincount(found[train], minlength=len(classes)).tolist()
    return torch.from_numpy(found), {"shape": [], "dtype": "int64", "num_classes": len(classes), "classes": classes,
                                     "class_counts": counts}


def regression_targets(index: SequenceIndex, labels: list[str], train: np.ndarray,
                       params: dict) -> tuple[torch.Tensor, dict]:
    """Every record's value (standardised with the training split's statistics where asked), and the definition."""
    values = np.empty(len(labels))
    for row, label in enumerate(labels):
        try:
            values[row] = float(label)
        except ValueError:
            values[row] = math.nan
        if not math.isfinite(values[row]):                # refused with the in-memory path's message
            number(label, index.record(row), index.path, params["label_column"], "")
    definition: dict = {"shape": []}
    if params["standardize"]:
        values, mean, std = standardise(values, train)
        definition["standardize"] = {"mean": mean, "std": std}
    definition["dtype"] = "float32"
    return torch.tensor(values, dtype=torch.float32), definition


def record_residues(index: SequenceIndex, row: int, label_column: str) -> list[str]:
    """Record `row`'s per-residue labels from the index (refused as in memory where their count is not its length)."""
    residues = int(index.columns["lengths"][row])
    labels = residue_parts(index.label(row), residues)
    if len(labels) != residues:
        residue_labels(index.record(row), index.path, label_column)        # refuses it with its line
    return labels


def residue_class_targets(index: SequenceIndex, train: np.ndarray, params: dict,
                          width: int) -> tuple[ResidueTargets, dict]:
    """Per-residue classes (declared, else those found) and the training split's residue counts (of the residues
    kept by max_length): passes over the index's labels, a record at a time."""
    label_column, declared = params["label_column"], params["classes"]
    found: set[str] = set()
    for row in range(len(index)):
        found.update(record_residues(index, row, label_column))
    classes = class_names(found, declared)
    place = {label: i for i, label in enumerate(classes)}
    if not found <= place.keys():
        for row in range(len(index)):                     # the first unknown label, refused as in memory
            labels = record_residues(index, row, label_column)
            class_labels([labels], [index.record(row)], declared, index.path, label_column, True)
    counts = np.zeros(len(classes), dtype=np.int64)
    for row in np.sort(train).tolist():
        labels = record_residues(index, row, label_column)[:int(params["max_length"])]
        counts += np.bincount([place[label] for label in labels], minlength=len(classes))
    return ResidueTargets(place), {"shape": [width], "per_position": True, "dtype": "int64",
                                   "num_classes": len(classes), "classes": classes, "class_counts": counts.tolist()}


def as_float(text: str) -> float:
    """A label's number (NaN where it is none)."""
    try:
        return float(text)
    except ValueError:
        return math.nan


def residue_values(index: SequenceIndex, row: int, label_column: str) -> np.ndarray:
    """Record `row`'s per-residue values (a label that is not a finite number refused as in memory)."""
    labels = record_residues(index, row, label_column)
    values = np.array([as_float(label) for label in labels], dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        number(labels[bad[0]], index.record(row), index.path, label_column, f"at residue {bad[0] + 1} ")
    return values


def residue_regression_targets(index: SequenceIndex, train: np.ndarray, params: dict,
                               width: int) -> tuple[ResidueTargets, dict]:
    """Per-residue values, standardised (where asked) with the mean and std of the training split's residues kept
    by max_length: two passes over the index's labels, a record at a time (sums, not the values, held)."""
    label_column, cut = params["label_column"], int(params["max_length"])
    for row in range(len(index)):
        record_residues(index, row, label_column)         # counts first, as in memory
    count, total, training = 0, 0.0, np.isin(np.arange(len(index)), train)
    for row in range(len(index)):
        values = residue_values(index, row, label_column)
        if training[row]:
            count, total = count + len(values[:cut]), total + float(values[:cut].sum())
    definition: dict = {"shape": [width], "per_position": True}
    mean, std = 0.0, 1.0
    if params["standardize"]:
        mean = total / count
        squares = sum(float(((residue_values(index, row, label_column)[:cut] - mean) ** 2).sum())
                      for row in np.sort(train).tolist())
        std = math.sqrt(squares / count) or 1.0
        definition["standardize"] = {"mean": [mean], "std": [std]}
    definition["dtype"] = "float32"
    return ResidueTargets(None, mean, std), definition


def term_targets(index: SequenceIndex, labels: list[str], train: np.ndarray,
                 params: dict) -> tuple[TermTargets, torch.Tensor, dict]:
    """Multilabel targets over the training split's terms, every record's count of terms outside them, and the
    definition (as multilabel_targets' in memory; the 0/1 rows made with their batch, not held)."""
    terms_of = [label_terms(label) for label in labels]
    counts = Counter(term for row in train.tolist() for term in terms_of[row])
    place = {term: column for column, term in enumerate(sorted(counts))}
    unseen = torch.tensor([sum(term not in place for term in names) for names in terms_of], dtype=torch.long)
    for row in np.flatnonzero(unseen.numpy() == np.array([len(names) for names in terms_of]))[:1]:
        multilabel_targets([index.record(int(row))], np.zeros(0, dtype=np.int64), index.path, params["label_column"])
    return TermTargets(place), unseen, terms_definition(terms_of, counts, int(unseen.sum()), index.path)


def checked_index(params: dict, task: str) -> SequenceIndex:
    """The index of the problem's FASTA file, refused where the streamed path cannot read what is asked."""
    path = Path(params["path"])
    if task not in STREAMED_TASKS:
        raise ConfigError(f"in_memory: false reads the tasks {', '.join(STREAMED_TASKS)}, not {task}", file=str(path),
                          key="problem.in_memory", hint="Set in_memory: true for this task")
    fasta = path.suffix.lower() in FASTA_SUFFIXES
    layout = params["label_column"] if fasta else table_layout(params["sequence_column"], params["label_column"],
                                                                params["split_column"])
    index = SequenceIndex.open(path, params["index_folder"], layout)
    if not len(index):
        raise ConfigError("the file holds no sequences", file=str(path), key="problem.path")
    return index


def split_parts(index: SequenceIndex, params: dict) -> list[np.ndarray]:
    """The rows of each split: from the table's split column (a value not train, val or test refused as in memory),
    else seeded fractions."""
    if not params["split_column"]:
        return split_indices(len(index), params["fractions"], params["seed"])
    splits = np.asarray(index.columns["splits"])
    for row in np.flatnonzero(splits < 0)[:1].tolist():
        record = index.record(row)
        raise ConfigError(f"line {record.line}: split value {record.split!r} is not train, val or test",
                          file=str(index.path), key="problem.split_column")
    return [np.flatnonzero(splits == place) for place in range(len(SPLITS))]


def open_streamed(problem: Any) -> tuple[dict[str, StreamedSplit], dict]:
    """The splits of a ProteinSequences read through its index, and its data definitions (as the in-memory path's)."""
    params, task = problem.params, problem.task
    index = checked_index(params, task)
    lengths, ends = np.asarray(index.columns["lengths"]), np.asarray(index.columns["label_ends"])
    refuse_first(np.flatnonzero(lengths == 0), index, "has an empty sequence", "problem.path")
    labels = index.all_labels() if task in ("classification", "regression", "multilabel") else None
    if task == "multilabel":
        missing = np.array([row for row, label in enumerate(labels) if not label_terms(label)][:1], dtype=np.int64)
    else:
        missing = np.flatnonzero(np.diff(ends, prepend=0) == 0)[:1]
    refuse_first(missing, index, "has no label", "problem.label_column", "Every sequence needs a label")
    parts = split_parts(index, params)
    max_length = int(params["max_length"])
    truncated = np.minimum(lengths, max_length)
    problem.check_budget(truncated, lambda row: index.record(row))
    length = int(truncated.max())
    extra: dict[str, torch.Tensor] = {}
    if labels is None:                                    # per residue: labels read a record at a time
        make = residue_class_targets if task == "residue_classification" else residue_regression_targets
        targets, targets_definition = make(index, parts[0], params, length)
    elif task == "multilabel":
        targets, extra[UNSEEN_FIELD], targets_definition = term_targets(index, labels, parts[0], params)
    else:
        make = classification_targets if task == "classification" else regression_targets
        targets, targets_definition = make(index, labels, parts[0], params)
    definitions = {"inputs": {"kind": "tokens", "shape": [length], "dtype": "int64", "vocabulary": VOCABULARY,
                              "per_position": True},
                   "targets": targets_definition,
                   "masks": {"shape": [length], "dtype": "bool", "per_position": True},
                   **{name: {"shape": [], "dtype": "int64"} for name in extra}}
    return {name: StreamedSplit(index, rows, targets, max_length, extra) for name, rows in zip(SPLITS, parts)}, \
        definitions


def streamed_loader(problem: Any, phase: str) -> StreamedBatches:
    """A phase's batches of a streamed ProteinSequences: under DDP this process's share; for training resumable
    mid-epoch and reordered every epoch from the seed."""
    split, params, trainer = problem.phase_split(phase), problem.phases[phase], problem.trainer
    shuffle = params["shuffle"] if params["shuffle"] is not None else phase == "train"
    training = phase == "train" and trainer is not None
    if params["batching"] is None:                        # batches of batch_size in order: as in memory
        refuse_dropped(phase, len(split), params)
    return StreamedBatches(split, Batching.from_params(params["batching"] or {"by": "order"}, params), bool(shuffle),
                           rank=trainer.global_rank if trainer is not None else 0,
                           world=trainer.world_size if trainer is not None else 1,
                           processed=problem.batches_processed if training else None,
                           epoch=(lambda: trainer.current_epoch) if training else None,
                           workers=int(params["num_workers"]))
