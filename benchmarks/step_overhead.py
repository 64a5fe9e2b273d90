"""Step overhead: one MLP, one data set, one optimiser, the same steps and seed, through (a) a raw loop
indexing tensors, (b) a raw loop over a DataLoader, (c) plain Lightning as users usually write it
(DataLoader, `self.log` every step), (d) the PyroSys trainer (statistics, CSV and TensorBoard on) and
(e) Lightning's bare loop (nothing logged, no callback: the floor under any Lightning-based trainer);
then (a) and (d) at other batch sizes and for a 10x larger model. All in one process, one torch thread.

    .venv/bin/python benchmarks/step_overhead.py [--repeats 5] [--profile FILE]

Prints a JSON record of the medians (benchmarks/run.py turns it into results.md).
"""
from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

SAMPLES, FEATURES, CLASSES, EPOCHS = 20_000, 64, 10, 3


def data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(SAMPLES, FEATURES, generator=generator), torch.randint(0, CLASSES, (SAMPLES,), generator=generator)


def mlp(hidden: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(FEATURES, hidden), nn.ReLU(), nn.Linear(hidden, CLASSES))


def raw_indexed(batch: int, hidden: int) -> float:
    """(a) The hand-written loop: a permutation, tensor indexing, forward, backward, step."""
    inputs, targets = data()
    model = mlp(hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    started = time.perf_counter()
    for _ in range(EPOCHS):
        order = torch.randperm(SAMPLES)
        for start in range(0, SAMPLES, batch):
            index = order[start:start + batch]
            loss = F.cross_entropy(model(inputs[index]), targets[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return time.perf_counter() - started


def raw_dataloader(batch: int, hidden: int) -> float:
    """(b) The same loop over DataLoader(TensorDataset)."""
    from torch.utils.data import DataLoader, TensorDataset

    inputs, targets = data()
    model = mlp(hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(inputs, targets), batch_size=batch, shuffle=True)
    started = time.perf_counter()
    for _ in range(EPOCHS):
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return time.perf_counter() - started


def lightning_module(hidden: int, log_every_step: bool):
    """The MLP as a LightningModule as users write it; `self.log` of the loss at every step or not."""
    import pytorch_lightning as pl

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = mlp(hidden)

        def training_step(self, batch_data, batch_idx):
            x, y = batch_data
            loss = F.cross_entropy(self.net(x), y)
            if log_every_step:
                self.log("loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    return Module()


def plain_lightning(batch: int, hidden: int, folder: Path) -> float:
    """(c) A LightningModule as users usually write it: DataLoader, `self.log` every step, default
    logger and checkpointing, no progress bar (not a terminal)."""
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, TensorDataset

    inputs, targets = data()
    loader = DataLoader(TensorDataset(inputs, targets), batch_size=batch, shuffle=True)
    trainer = pl.Trainer(max_epochs=EPOCHS, accelerator="cpu", devices=1, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=str(folder))
    started = time.perf_counter()
    trainer.fit(lightning_module(hidden, log_every_step=True), loader)
    return time.perf_counter() - started


def bare_lightning(batch: int, hidden: int) -> float:
    """(e) Lightning's own loop and nothing else: batches from a bare iterable, no logging, no logger,
    no checkpoint, no callback. The floor of any trainer built on Lightning's training loop."""
    import pytorch_lightning as pl

    inputs, targets = data()

    class Batches:
        def __len__(self) -> int:
            return -(-SAMPLES // batch)

        def __iter__(self):
            order = torch.randperm(SAMPLES)
            for start in range(0, SAMPLES, batch):
                index = order[start:start + batch]
                yield inputs[index], targets[index]

    trainer = pl.Trainer(max_epochs=EPOCHS, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    started = time.perf_counter()
    trainer.fit(lightning_module(hidden, log_every_step=False), Batches())
    return time.perf_counter() - started


PYROSYS_CONFIG = """\
problem: {{name: SyntheticClassification, samples: {samples}, features: {features}, classes: {classes},
          fractions: [0.8, 0.1, 0.1], batch_size: {batch}}}
model: {{name: MLP, hidden_sizes: [{hidden}]}}
training:
  seed: 0
  optimizer: {{name: Adam, lr: 1.0e-3}}
  terminal_conditions: {{epoch_limit: {epochs}}}
  trainer: {{enable_progress_bar: false}}
logging: {{tensorboard: 0}}
"""


def pyrosys_training(batch: int, hidden: int, folder: Path) -> float:
    """(d) pyrosys-trainer in this process; its training phase (`training_seconds` in status.json:
    every training step with statistics, CSV and TensorBoard, validation excluded)."""
    config = folder / f"mlp_{batch}_{hidden}.yaml"
    config.write_text(PYROSYS_CONFIG.format(samples=int(SAMPLES / 0.8), features=FEATURES, classes=CLASSES,
                                            batch=batch, hidden=hidden, epochs=EPOCHS))
    return training_seconds(config, folder)


def training_seconds(config: Path, folder: Path) -> float:
    """pyrosys-trainer on a configuration in this process, quiet; its `training_seconds` (status.json)."""
    from pyrosys.workers import trainer
    from pyrosys.workers.pipeline.jobs import fresh_process_state

    name = f"run_{time.monotonic_ns()}"
    fresh_process_state()
    with contextlib.redirect_stdout(io.StringIO()):
        assert trainer.main(["--c", str(config), "--outdir", str(folder), "--run-name", name, "--ll", "WARNING"]) == 0
    fresh_process_state()
    return json.loads((folder / name / "status.json").read_text())["training_seconds"]


def median(function, repeats: int, *args) -> float:
    return statistics.median(function(*args) for _ in range(repeats))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", metavar="FILE", default=None, help="write the top lines of (d)'s profile here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    steps = EPOCHS * -(-SAMPLES // 64)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        pyrosys_training(64, 128, folder)                  # warm: imports, first MLflow database
        plain_lightning(64, 128, folder)
        bare_lightning(64, 128)
        record = {"steps": steps, "threads": torch.get_num_threads(), "repeats": args.repeats}
        record["a"] = median(raw_indexed, args.repeats, 64, 128)
        record["b"] = median(raw_dataloader, args.repeats, 64, 128)
        record["c"] = median(plain_lightning, args.repeats, 64, 128, folder)
        record["d"] = median(pyrosys_training, args.repeats, 64, 128, folder)
        record["e"] = median(bare_lightning, args.repeats, 64, 128)
        scaling = []
        for batch, hidden in ((16, 128), (64, 128), (256, 128), (64, 1280)):
            count = EPOCHS * -(-SAMPLES // batch)
            a = median(raw_indexed, 3, batch, hidden)
            d = median(pyrosys_training, 3, batch, hidden, folder)
            scaling.append({"batch": batch, "hidden": hidden, "steps": count, "a_ms": 1000 * a / count,
                            "d_ms": 1000 * d / count})
        record["scaling"] = scaling
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            pyrosys_training(64, 128, folder)
            profiler.disable()
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(25)
            Path(args.profile).write_text(text.getvalue())
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
