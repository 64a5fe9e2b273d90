"""Statistics: per-episode rows and per-epoch aggregates written to CSV, after MI-Prometheus.

Per-step values stay on the device in a buffer; they reach the host only when a row is
written (every `interval` episodes for training, once per validation or test run).
"""
from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from pyrosys.atomic import write_text_atomic
from pyrosys.config import dump_yaml
from pyrosys.data_dict import batch_size


class PhaseBuffer:
    """Per-batch statistics of one phase, kept as device tensors until `rows` or `aggregate`."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.values: list[torch.Tensor] = []
        self.sizes: list[int] = []

    def add(self, outputs: Mapping[str, Any]) -> None:
        values = {k: v for k, v in outputs.items() if k != "size"}
        if not self.names:
            self.names = list(values)
        self.values.append(torch.stack([values[n].detach().float().reshape(()) for n in self.names]))
        self.sizes.append(int(outputs.get("size", 1)))

    def __len__(self) -> int:
        return len(self.values)

    def last(self) -> dict[str, float]:
        return dict(zip(self.names, self.values[-1].tolist()))

    def rows(self) -> list[dict[str, float]]:
        table = torch.stack(self.values).tolist() if self.values else []
        return [dict(zip(self.names, row)) for row in table]

    def aggregate(self) -> dict[str, float]:
        """Mean, std, min and max of every statistic over the batches, plus the sample-weighted value."""
        table = torch.stack(self.values).double()
        weights = torch.tensor(self.sizes, dtype=torch.float64)
        result: dict[str, float] = {"batches": float(len(self.values)), "samples": float(weights.sum())}
        for column, name in enumerate(self.names):
            values = table[:, column]
            result[name] = float((values * weights).sum() / weights.sum())
            result[f"{name}_mean"] = float(values.mean())
            result[f"{name}_std"] = float(values.std(unbiased=False))
            result[f"{name}_min"] = float(values.min())
            result[f"{name}_max"] = float(values.max())
        return result

    def clear(self) -> None:
        self.values.clear()
        self.sizes.clear()


def append_csv(path: Path, row: Mapping[str, Any]) -> None:
    """Append one row, writing the header first when the file is new."""
    new = not path.exists()
    with open(path, "a", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


class StatisticsCollector(pl.Callback):
    """Writes training, validation and testing statistics into an experiment folder."""

    def __init__(self, folder: str | Path, interval: int = 50, test_folder: str | Path | None = None) -> None:
        self.folder = Path(folder)
        self.interval = max(1, int(interval))
        self.test_folder = Path(test_folder) if test_folder else self.folder
        self.buffers = {"train": PhaseBuffer(), "val": PhaseBuffer(), "test": PhaseBuffer()}
        self.results: dict[str, dict[str, float]] = {}

    @staticmethod
    def _learning_rate(trainer: pl.Trainer) -> float:
        return float(trainer.optimizers[0].param_groups[0]["lr"]) if trainer.optimizers else float("nan")

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        buffer = self.buffers["train"]
        buffer.add({**outputs, "size": batch_size(batch)})
        episode = trainer.global_step
        if episode % self.interval == 0 or episode == 1:
            append_csv(self.folder / "training_statistics.csv",
                       {"episode": episode, "epoch": trainer.current_epoch, **buffer.last(),
                        "learning_rate": self._learning_rate(trainer)})

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        buffer = self.buffers["train"]
        if len(buffer):
            self.results["train"] = buffer.aggregate()
            append_csv(self.folder / "training_set_agg_statistics.csv",
                       {"episode": trainer.global_step, "epoch": trainer.current_epoch, **self.results["train"]})
        buffer.clear()

    def on_validation_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any,
                                batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if not trainer.sanity_checking:
            self.buffers["val"].add(outputs)

    def on_validation_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        buffer = self.buffers["val"]
        if trainer.sanity_checking or not len(buffer):
            return
        aggregate = buffer.aggregate()
        self.results["val"] = aggregate
        where = {"episode": trainer.global_step, "epoch": trainer.current_epoch}
        append_csv(self.folder / "validation_statistics.csv",
                   {**where, **{name: aggregate[name] for name in buffer.names}})
        append_csv(self.folder / "validation_set_agg_statistics.csv", {**where, **aggregate})
        buffer.clear()

    def on_test_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any,
                          batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.buffers["test"].add(outputs)

    def on_test_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        buffer = self.buffers["test"]
        if len(buffer):
            for index, (row, size) in enumerate(zip(buffer.rows(), buffer.sizes)):
                append_csv(self.test_folder / "testing_statistics.csv", {"batch": index, **row, "size": size})
            self.results["test"] = buffer.aggregate()
            write_text_atomic(self.test_folder / "testing_set_agg_statistics.yaml", dump_yaml(self.results["test"]))
        buffer.clear()
