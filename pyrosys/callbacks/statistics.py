"""Statistics: per-episode rows and per-epoch aggregates written to CSV, after MI-Prometheus.

Per-step values stay on the device in a buffer; they reach the host only when a row is
written (every `interval` episodes for training, once per validation or test run).
"""
from __future__ import annotations

import csv
import logging
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from pyrosys.data_dict import batch_size
from pyrosys.errors import TrainingDiverged


def _scalar(value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor) and value.dtype == torch.float32 and value.dim() == 0:
        return value.detach() if value.requires_grad else value    # the common case: a float loss or metric
    return torch.as_tensor(value).detach().float().reshape(())


class PhaseBuffer:
    """Per-batch statistics of one phase, copied into one [batches, names] float32 tensor on the device that
    doubles when full: no host synchronisation a batch, and a few bytes a batch however long the epoch (kept as
    one tensor object a value, 30,000 batches of 5 values held about 100 MB)."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.table: torch.Tensor | None = None       # rows beyond len(self) are room, not values
        self.sizes: list[int] = []

    def add(self, outputs: Mapping[str, Any], size: int | None = None) -> None:
        """One batch's statistics (tensors or numbers), copied into the table: no host synchronisation."""
        if not self.names:
            self.names = [k for k in outputs if k != "size"]
        values = [_scalar(outputs[n]) for n in self.names]
        device = next((v.device for v in values if v.device.type != "cpu"), values[0].device)   # numbers: CPU
        row = torch.stack([value.to(device) for value in values])
        count = len(self.sizes)
        if self.table is None or count == len(self.table):
            grown = torch.empty((max(64, 2 * count), len(self.names)), dtype=row.dtype, device=device)
            if count:
                grown[:count] = self.table[:count]
            self.table = grown
        self.table[count] = row
        self.sizes.append(int(outputs.get("size", 1)) if size is None else size)

    def __len__(self) -> int:
        return len(self.sizes)

    def _table(self) -> torch.Tensor:
        """The batches' statistics as one [batches, names] tensor."""
        if self.table is None:
            return torch.zeros((0, len(self.names)))
        return self.table[:len(self.sizes)]

    def load(self, names: list[str], sizes: list[int], values: torch.Tensor) -> None:
        """Take back the batches of a checkpoint's state (an epoch resumed in its middle)."""
        self.names, self.sizes = list(names), list(sizes)
        self.table = values.float().clone()

    def saved(self) -> torch.Tensor:
        """The batches' statistics as a compact CPU tensor of their own (the table's room left out)."""
        return self._table().cpu().clone()

    def last(self) -> dict[str, float]:
        return dict(zip(self.names, self._table()[-1].tolist()))

    def rows(self) -> list[dict[str, float]]:
        return [dict(zip(self.names, row)) for row in self._table().tolist()]

    def aggregate(self) -> dict[str, float]:
        """Mean, std, min and max of every statistic over the batches, plus the sample-weighted value."""
        table = self._table().cpu().double()               # one copy to the host an epoch
        weights = torch.tensor(self.sizes, dtype=torch.float64)
        result: dict[str, float] = {"batches": float(len(self)), "samples": float(weights.sum())}
        for column, name in enumerate(self.names):
            values = table[:, column]
            result[name] = float((values * weights).sum() / weights.sum())
            result[f"{name}_mean"] = float(values.mean())
            result[f"{name}_std"] = float(values.std(unbiased=False))
            result[f"{name}_min"] = float(values.min())
            result[f"{name}_max"] = float(values.max())
        return result

    def clear(self) -> None:
        """Forget the batches (the table's room is kept for the next epoch's)."""
        self.sizes.clear()


def append_csv(path: Path, row: Mapping[str, Any]) -> None:
    """Append one row, writing the header first when the file is new."""
    new = not path.exists()
    with open(path, "a", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def check_finite(loss: float | None, episode: int) -> None:
    """A NaN or infinite training loss ends the run as failed (checked at each row, not each step)."""
    if loss is not None and not math.isfinite(loss):
        raise TrainingDiverged(f"the training loss is {loss} at episode {episode}; lower the learning rate "
                               "or clip gradients (training.gradient_clipping)")


class CsvSink:
    """Statistics rows appended to CSV files, one per table (the experiment folder names them)."""

    def __init__(self, files: Mapping[str, Path]) -> None:
        self.files = dict(files)

    def write(self, table: str, row: Mapping[str, Any]) -> None:
        append_csv(self.files[table], row)

    def close(self) -> None:
        """Rows are written as they come; nothing is held."""


class LogSink:
    """Plain log lines of the training rows and validations (for CI, files, and terminals without a bar)."""

    def __init__(self) -> None:
        self.log = logging.getLogger("pyrosys.progress")

    def write(self, table: str, row: Mapping[str, Any]) -> None:
        if table in ("training", "validation"):
            values = "  ".join(f"{k} {v:.6g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items())
            self.log.info("%s: %s", table, values)

    def close(self) -> None:
        """Nothing is held."""


class StatisticsCollector(pl.Callback):
    """Collects per-step statistics on the device and hands rows to sinks (CSV, logs, TensorBoard, MLflow).

    Training rows every `interval` episodes: episode, epoch, loss, metrics, the problem's and the model's
    own statistics, learning rate, mean batch time and samples per second since the previous row. A row's
    epoch counts from 1 (the epoch it belongs to, as every file and line a user reads counts it), where
    Lightning's `current_epoch` counts from 0.
    Per-epoch aggregates (mean, std, min, max); one row per validation; per-batch testing rows.
    """

    def __init__(self, sinks: list, interval: int = 50,
                 problem_statistics: Callable[[Any], Mapping[str, Any]] | None = None) -> None:
        self.sinks = list(sinks)
        self.interval = max(1, int(interval))
        self.buffers = {"train": PhaseBuffer(), "val": PhaseBuffer(), "test": PhaseBuffer()}
        self.results: dict[str, dict[str, float]] = {}
        self._clock: tuple[float, int, int] | None = None   # (time, episode, samples) at the previous row
        # where the fit's time went: training batches (and the loop around them) versus validation
        self.timing = {"training_seconds": 0.0, "validation_seconds": 0.0, "first_step_at": None}
        self._phase_start: float | None = None
        self._in_epoch = False
        self._problem_statistics = problem_statistics      # the problem's own per-batch statistics, if any
        self._samples = 0
        self._epoch_whole = False                          # the buffer holds every batch of its epoch

    def emit(self, table: str, row: Mapping[str, Any]) -> None:
        for sink in self.sinks:
            sink.write(table, row)

    def emit_global(self, trainer: pl.Trainer, table: str, row: Mapping[str, Any]) -> None:
        """Rows reach the sinks from the first process only (DDP runs one collector per process)."""
        if trainer.is_global_zero:
            self.emit(table, row)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()

    @staticmethod
    def _learning_rate(trainer: pl.Trainer) -> float:
        return float(trainer.optimizers[0].param_groups[0]["lr"]) if trainer.optimizers else float("nan")

    def state_dict(self) -> dict:
        """What a checkpoint keeps: the statistics of the training batches of an epoch under way, so that
        an epoch resumed in its middle still aggregates every one of its batches (none once it is whole:
        its aggregate row was due, and a resumed run starts the next epoch)."""
        buffer = self.buffers["train"]
        held = len(buffer) and not self._epoch_whole
        return {"names": list(buffer.names), "sizes": list(buffer.sizes) if held else [],
                "values": buffer.saved() if held else torch.zeros(0)}

    def load_state_dict(self, state_dict: dict) -> None:
        """Take back the batches of the epoch a checkpoint was written in the middle of."""
        buffer = self.buffers["train"]
        if len(state_dict.get("values", ())):
            buffer.load(state_dict["names"], state_dict["sizes"], state_dict["values"])

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if self._clock is None:
            self._clock = (time.perf_counter(), trainer.global_step, 0)
        self._phase_start = time.perf_counter()

    def on_train_batch_start(self, trainer: pl.Trainer, module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if self.timing["first_step_at"] is None:
            self.timing["first_step_at"] = time.time()        # wall clock: launch-to-first-step is measurable

    def _lap(self, key: str) -> None:
        """Add the time since the current phase started to `key`, and start the next phase now."""
        now = time.perf_counter()
        if self._phase_start is not None:
            self.timing[key] += now - self._phase_start
        self._phase_start = now

    def on_validation_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self._in_epoch = self._phase_start is not None       # validation within an epoch, or after it
        if self._in_epoch:
            self._lap("training_seconds")
        else:
            self._phase_start = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self._phase_start is None:
            return
        self._lap("validation_seconds")
        if not self._in_epoch:
            self._phase_start = None

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        size = batch_size(batch)
        extra = self._problem_statistics
        self.buffers["train"].add({**outputs, **extra(batch)} if extra else outputs, size)
        self._epoch_whole = bool(trainer.fit_loop.epoch_loop.batch_progress.is_last_batch)
        self._samples += size
        episode = trainer.global_step
        if episode % self.interval == 0 or episode == 1:
            now = time.perf_counter()
            then, first_episode, first_samples = self._clock or (now, episode - 1, 0)
            elapsed = max(now - then, 1e-9)
            values = self.buffers["train"].last()          # the row's one host synchronisation
            self.emit_global(trainer, "training", {"episode": episode, "epoch": trainer.current_epoch + 1,
                                   **values, "learning_rate": self._learning_rate(trainer),
                                   "batch_time": elapsed / max(1, episode - first_episode),
                                   "samples_per_second": (self._samples - first_samples) / elapsed})
            self._clock = (now, episode, self._samples)
            check_finite(values.get("loss"), episode)

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if self._phase_start is not None:
            self._lap("training_seconds")
        self._phase_start = None
        buffer = self.buffers["train"]
        if len(buffer):
            self.results["train"] = buffer.aggregate()
            self.emit_global(trainer, "training_agg", {"episode": trainer.global_step,
                                                       "epoch": trainer.current_epoch + 1, **self.results["train"]})
        buffer.clear()
        check_finite(self.results.get("train", {}).get("loss"), trainer.global_step)

    def on_validation_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any,
                                batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if not trainer.sanity_checking:
            self.buffers["val"].add(outputs)

    def on_validation_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        buffer = self.buffers["val"]
        if trainer.sanity_checking or not len(buffer):
            return
        aggregate = buffer.aggregate()
        if trainer.world_size > 1:           # whole-set values over every process's share of the split
            totals = torch.tensor([aggregate[name] * aggregate["samples"] for name in buffer.names]
                                  + [aggregate["samples"]], dtype=torch.float64, device=module.device)
            totals = trainer.strategy.reduce(totals, reduce_op="sum")
            aggregate.update({name: float(totals[i] / totals[-1]) for i, name in enumerate(buffer.names)},
                             samples=float(totals[-1]))
        self.results["val"] = aggregate
        where = {"episode": trainer.global_step, "epoch": trainer.current_epoch + 1}
        self.emit_global(trainer, "validation", {**where, **{name: aggregate[name] for name in buffer.names}})
        self.emit_global(trainer, "validation_agg", {**where, **aggregate})
        buffer.clear()

    def on_test_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any,
                          batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.buffers["test"].add(outputs)

    def on_test_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        buffer = self.buffers["test"]
        if len(buffer):
            for index, (row, size) in enumerate(zip(buffer.rows(), buffer.sizes)):
                self.emit("testing", {"batch": index, **row, "size": size})
            self.results["test"] = buffer.aggregate()
        buffer.clear()

    def on_fit_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            self.close()

    def on_test_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.close()
