"""TensorBoard through tensorboardX: statistics (level 0), + weight histograms (1), + gradient histograms (2);
the resolved configuration as text and, at the end, the flattened configuration with the final metrics in
the HParams dashboard."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from tensorboardX import SummaryWriter
from tensorboardX.proto.summary_pb2 import Summary
from tensorboardX.summary import hparams

from pyrosys.tracking.tables import copies_validation


class TensorBoardSink:
    """Statistics rows as scalars `<table>/<name>` at their episode, in `<experiment>/tensorboard`."""

    def __init__(self, folder: str | Path, purge_step: int | None = None, configuration: str | None = None) -> None:
        """`configuration`: the resolved configuration's YAML, shown under TEXT (a resumed run has it already)."""
        # purge_step: a resumed run hides the events its interrupted run wrote after the checkpoint
        self.writer = SummaryWriter(logdir=str(folder), flush_secs=30, purge_step=purge_step)
        if configuration is not None:     # indented: Markdown shows it as code, one key a line
            self.writer.add_text("configuration", "".join(f"    {line}\n" for line in configuration.splitlines()), 0)

    def write(self, table: str, row: Mapping[str, Any]) -> None:
        """One event per row, holding every scalar of the row (not one event per scalar); validation_agg's
        copies of the validation values are left out (each value is drawn once, under validation/)."""
        step = int(row.get("episode", row.get("batch", 0)))
        values = [Summary.Value(tag=f"{table}/{name}", simple_value=float(value)) for name, value in row.items()
                  if name not in ("episode", "epoch", "batch") and isinstance(value, (int, float))
                  and not copies_validation(table, name)]
        # SummaryWriter.add_scalar makes one event per scalar; its file writer takes a whole Summary
        self.writer._get_file_writer().add_summary(Summary(value=values), step)

    def hparams(self, parameters: Mapping[str, Any], metrics: Mapping[str, float], step: int) -> None:
        """The run as one row of the HParams dashboard: its flattened configuration and final metrics. The
        validation/ metrics are the run's own scalars already; the others (test values) are written at `step`."""
        # a file of its own: event files are named by the second they open in, so a writer reopened after the
        # statistics' was closed would empty theirs when a short run ends within the second it started
        writer = SummaryWriter(logdir=self.writer.logdir, filename_suffix=".summary")
        file_writer = writer._get_file_writer()
        for summary in hparams(dict(parameters), dict(metrics)):
            file_writer.add_summary(summary)
        values = [Summary.Value(tag=tag, simple_value=float(value)) for tag, value in metrics.items()
                  if not tag.startswith("validation/")]
        file_writer.add_summary(Summary(value=values), step)
        writer.close()

    def close(self) -> None:
        """Flush and close the event file, ending the writer's thread (a grid worker runs many runs)."""
        self.writer.close()


class TensorBoardHistograms(pl.Callback):
    """Weight histograms at every epoch end (level 1) and gradient histograms every `interval` episodes (level 2)."""

    def __init__(self, sink: TensorBoardSink, level: int, interval: int) -> None:
        self.writer, self.level, self.interval = sink.writer, int(level), max(1, int(interval))

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        for name, parameter in module.models.named_parameters():
            self.writer.add_histogram(f"weights/{name}", parameter.detach().cpu(), trainer.global_step)

    def on_before_optimizer_step(self, trainer: pl.Trainer, module: pl.LightningModule, optimizer: Any) -> None:
        if self.level < 2 or (trainer.global_step + 1) % self.interval:
            return
        for name, parameter in module.models.named_parameters():
            if parameter.grad is not None:
                self.writer.add_histogram(f"gradients/{name}", parameter.grad.detach().cpu(), trainer.global_step + 1)
