"""Batching of variable-length sequences: the `batching` parameter of in-memory problems.

`by: length` sorts the samples by length (ties broken by a permutation drawn from the seed and the
epoch) and cuts the sorted run into batches, of `batch_size` rows or, with `max_tokens`, as many rows
as keep rows x the batch's longest sequence within the budget; `by: order` keeps `batch_size` rows in
random order. Either way a batch's per-position fields are trimmed to its own longest sequence, and
the training batches' order is drawn anew every epoch from the seed and the epoch number (other
phases are not shuffled). Under DDP every process takes every world-th batch of the same plan.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from pyrosys.data_dict import DataDict

BY = ("length", "order")


@dataclass(frozen=True)
class Batching:
    """How one phase cuts its split into batches (a problem's `batching` with its batch_size and seed)."""

    batch_size: int
    by: str = "length"
    max_tokens: int | None = None
    seed: int = 0
    drop_last: bool = False

    @classmethod
    def from_params(cls, batching: Mapping, params: Mapping) -> Batching:
        """The batching a phase's parameters ask for (`batching` given as a mapping)."""
        return cls(int(params["batch_size"]), str(batching.get("by", "length")), batching.get("max_tokens"),
                   int(params.get("seed") or 0), bool(params["drop_last"]))

    def order(self, lengths: np.ndarray, epoch: int, shuffle: bool) -> np.ndarray:
        """The samples in the order batches are cut from: by length (seeded tie-break), or shuffled."""
        if not shuffle:
            return np.argsort(lengths, kind="stable") if self.by == "length" else np.arange(len(lengths))
        ties = np.random.default_rng([self.seed, epoch]).permutation(len(lengths))
        return ties[np.argsort(lengths[ties], kind="stable")] if self.by == "length" else ties

    def cut(self, lengths: np.ndarray, order: np.ndarray) -> list[np.ndarray]:
        """The ordered samples cut into batches: by the token budget, or `batch_size` rows at a time."""
        if self.max_tokens is None:
            batches = [order[start:start + self.batch_size] for start in range(0, len(order), self.batch_size)]
            return batches[:-1] if self.drop_last and len(batches[-1]) < self.batch_size else batches
        batches, start, longest = [], 0, 0
        for end, sample in enumerate(order):
            longest = max(longest, int(lengths[sample]))
            if end > start and (end - start + 1) * longest > self.max_tokens:
                batches.append(order[start:end])
                start, longest = end, int(lengths[sample])
        return batches + [order[start:]] if len(order) else batches

    def plan(self, lengths: np.ndarray, epoch: int, shuffle: bool, rank: int = 0, world: int = 1) -> list[np.ndarray]:
        """One process's batches of one epoch: the epoch's plan, its order shuffled from the seed and the
        epoch (training), shared out so that every process gets as many batches as any other."""
        batches = self.cut(lengths, self.order(lengths, epoch, shuffle))
        if shuffle:
            draw = np.random.default_rng([self.seed, epoch, 1]).permutation(len(batches))
            batches = [batches[i] for i in draw]
        return share(batches, rank, world, self.drop_last)


def share(batches: list[np.ndarray], rank: int, world: int, drop_last: bool) -> list[np.ndarray]:
    """Process `rank`'s share: every world-th batch. A batch count that is not a multiple of the processes
    is made one by splitting the batches of most rows in halves (no sample dropped or seen twice), or by
    dropping the last batches with drop_last; batches of one row each are repeated from the first."""
    if world == 1:
        return batches
    if drop_last:
        return batches[:len(batches) - len(batches) % world][rank::world]
    batches = list(batches)
    while len(batches) % world:
        widest = max(range(len(batches)), key=lambda i: len(batches[i]), default=None)
        if widest is None or len(batches[widest]) < 2:
            batches += batches[:world - len(batches) % world]
            break
        half = len(batches[widest]) // 2
        batches[widest:widest + 1] = [batches[widest][:half], batches[widest][half:]]
    return batches[rank::world]


def sequence_lengths(fields: Mapping[str, torch.Tensor], positional: Sequence[str]) -> np.ndarray:
    """Each sample's length: one past its last position that is not padding (the `masks` field where there
    is one, otherwise any non-zero value of a per-position field); 1 each where no field is per-position."""
    names = ["masks"] if "masks" in positional else list(positional)
    if not names:
        return np.ones(len(next(iter(fields.values()))), dtype=np.int64)
    present = torch.zeros(len(fields[names[0]]), fields[names[0]].shape[1], dtype=torch.bool)
    for name in names:
        present |= (fields[name] != 0).reshape(*present.shape, -1).any(dim=-1)
    positions = torch.arange(1, present.shape[1] + 1)
    return (present * positions).amax(dim=1).numpy()


class EpochPlan:
    """The batches (sample indices) of a split after a Batching plan, epoch by epoch, resumable mid-epoch: a
    checkpoint keeps the epoch (`state_dict`); after a restore, the iteration rebuilds that epoch's plan and
    goes on past the batches processed (`processed()`). Subclasses say how a batch's samples are fetched."""

    def __init__(self, lengths: np.ndarray, batching: Batching, shuffle: bool, rank: int = 0, world: int = 1,
                 processed: Callable[[], int] | None = None, epoch: Callable[[], int] | None = None) -> None:
        self.lengths, self.batching = lengths, batching
        self.shuffle, self.rank, self.world = shuffle, rank, world
        self.processed, self.epoch = processed, epoch
        self.started = 0                     # iterations begun: the epoch where no trainer tells it
        self.current: int | None = None
        self.restored: dict | None = None
        self.count = len(self.plan(0))       # the same every epoch: only equal lengths trade places

    def plan(self, epoch: int) -> list[np.ndarray]:
        """This process's batches (sample indices) of one epoch."""
        return self.batching.plan(self.lengths, epoch, self.shuffle, self.rank, self.world)

    def __len__(self) -> int:
        return self.count

    def state_dict(self) -> dict:
        """What a checkpoint keeps: the epoch under way (its plan follows from it and the seed)."""
        return {"epoch": self.current}

    def load_state_dict(self, state: Mapping) -> None:
        """Go on, at the next iteration, with the checkpoint's epoch past the batches already processed."""
        self.restored = dict(state)

    def _start(self) -> tuple[int, int]:
        """The epoch and first batch of an iteration: a restored epoch's, or the coming one's."""
        restored, self.restored = self.restored, None
        done = self.processed() if restored is not None and self.processed is not None else 0
        epoch = self.epoch() if self.epoch is not None else self.started
        if restored is not None and restored.get("epoch") is not None and 0 < done < len(self):
            return int(restored["epoch"]), done
        return epoch, 0

    def remaining(self) -> list[np.ndarray]:
        """The batches this iteration goes through: its epoch's plan past those already processed."""
        epoch, start = self._start()
        self.current, self.started = epoch, epoch + 1
        return self.plan(epoch)[start:]


class PlannedBatches(EpochPlan):
    """The batches of an in-memory split after a Batching plan: one tensor index per batch, per-position fields
    trimmed to the batch's longest sequence. Not a DataLoader, so Lightning neither wraps nor replaces it."""

    def __init__(self, fields: Mapping[str, torch.Tensor], positional: Sequence[str], batching: Batching,
                 shuffle: bool, rank: int = 0, world: int = 1, processed: Callable[[], int] | None = None,
                 epoch: Callable[[], int] | None = None) -> None:
        self.fields, self.positional = dict(fields), list(positional)
        super().__init__(sequence_lengths(self.fields, self.positional), batching, shuffle, rank, world,
                         processed, epoch)

    def __iter__(self) -> Iterator[DataDict]:
        for index in self.remaining():
            longest = int(self.lengths[index].max())
            rows = torch.from_numpy(index)
            yield DataDict({name: tensor[rows, :longest] if name in self.positional else tensor[rows]
                            for name, tensor in self.fields.items()})
