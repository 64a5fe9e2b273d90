"""ProteinSequences with `in_memory: false`: a FASTA file read through its on-disk SequenceIndex, batch by batch.

The splits, labels, classes, class counts and standardisation are those of the in-memory path (computed from the
index's labels, which are small); the sequences stay on disk: a batch's records are read with os.pread, parsed and
encoded by protein.py's own functions (in DataLoader worker processes with `num_workers`) and padded to the batch's
longest. Batches follow a Batching plan over the index's lengths (`batching`, or `batch_size` rows in a seeded order
when it is null), shared out between DDP processes and resumable mid-epoch as the in-memory plans are.
"""
from __future__ import annotations

import gc
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from pyrosys.data_dict import DataDict
from pyrosys.errors import ConfigError
from pyrosys.problems.batching import Batching, EpochPlan
from pyrosys.problems.problem import keep_batch
from pyrosys.problems.protein import (FASTA_SUFFIXES, SPLITS, VOCABULARY, class_labels, encode_array, number)
from pyrosys.problems.scikit_learn import split_indices, standardise
from pyrosys.problems.sequence_index import SequenceIndex

STREAMED_TASKS = ("classification", "regression")


class StreamedSplit(Dataset):
    """One split of an indexed FASTA file: its records' indices; a batch read, encoded and padded on request."""

    def __init__(self, index: SequenceIndex, rows: np.ndarray, targets: torch.Tensor, max_length: int) -> None:
        self.index, self.rows, self.targets, self.max_length = index, rows, targets, max_length
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
        return DataDict({"inputs": torch.from_numpy(padded), "targets": self.targets[torch.from_numpy(rows)],
                         "masks": torch.from_numpy(padded != 0)})

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
    classes = [str(c) for c in declared] if declared else sorted(set(labels))
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


def checked_index(params: dict, task: str) -> SequenceIndex:
    """The index of the problem's FASTA file, refused where the streamed path cannot read what is asked."""
    path = Path(params["path"])
    if path.suffix.lower() not in FASTA_SUFFIXES or params["split_column"]:
        raise ConfigError("in_memory: false reads FASTA files (splits by seeded fractions)", file=str(path),
                          key="problem.in_memory", hint="Convert the table to FASTA (>id label=...), or set "
                                                        "in_memory: true")
    if task not in STREAMED_TASKS:
        raise ConfigError(f"in_memory: false reads the tasks {', '.join(STREAMED_TASKS)}, not {task}", file=str(path),
                          key="problem.in_memory", hint="Set in_memory: true for this task")
    index = SequenceIndex.open(path, params["index_folder"], params["label_column"])
    if not len(index):
        raise ConfigError("the file holds no sequences", file=str(path), key="problem.path")
    return index


def open_streamed(problem: Any) -> tuple[dict[str, StreamedSplit], dict]:
    """The splits of a ProteinSequences read through its index, and its data definitions (as the in-memory path's)."""
    params, task = problem.params, problem.task
    index = checked_index(params, task)
    lengths, labels = np.asarray(index.columns["lengths"]), index.all_labels()
    refuse_first(np.flatnonzero(lengths == 0), index, "has an empty sequence", "problem.path")
    missing = [row for row, label in enumerate(labels) if not label]
    refuse_first(np.array(missing[:1], dtype=np.int64), index, "has no label", "problem.label_column",
                 "Every sequence needs a label")
    parts = split_indices(len(index), params["fractions"], params["seed"])
    make = classification_targets if task == "classification" else regression_targets
    targets, targets_definition = make(index, labels, parts[0], params)
    max_length = int(params["max_length"])
    truncated = np.minimum(lengths, max_length)
    problem.check_budget(truncated, lambda row: index.record(row))
    length = int(truncated.max())
    definitions = {"inputs": {"kind": "tokens", "shape": [length], "dtype": "int64", "vocabulary": VOCABULARY,
                              "per_position": True},
                   "targets": targets_definition,
                   "masks": {"shape": [length], "dtype": "bool", "per_position": True}}
    return {name: StreamedSplit(index, rows, targets, max_length) for name, rows in zip(SPLITS, parts)}, definitions


def streamed_loader(problem: Any, phase: str) -> StreamedBatches:
    """A phase's batches of a streamed ProteinSequences: under DDP this process's share; for training resumable
    mid-epoch and reordered every epoch from the seed."""
    split, params, trainer = problem.phase_split(phase), problem.phases[phase], problem.trainer
    shuffle = params["shuffle"] if params["shuffle"] is not None else phase == "train"
    training = phase == "train" and trainer is not None
    return StreamedBatches(split, Batching.from_params(params["batching"] or {"by": "order"}, params), bool(shuffle),
                           rank=trainer.global_rank if trainer is not None else 0,
                           world=trainer.world_size if trainer is not None else 1,
                           processed=problem.batches_processed if training else None,
                           epoch=(lambda: trainer.current_epoch) if training else None,
                           workers=int(params["num_workers"]))
