"""Shared fixtures: fresh singletons per test, YAML files in a temporary folder, console commands."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
import types
import urllib.request
from pathlib import Path

import pytest

from pyrosys.app_state import AppState
from pyrosys.configuration.param_registry import ParamRegistry

if os.environ.get("PYTEST_XDIST_WORKER"):
    # make test runs two test processes on two cores: the trainers they start get one OpenMP thread
    # each instead of one per core, so that four threads do not fight over two cores
    os.environ.setdefault("OMP_NUM_THREADS", "1")

# the longest test files, longest first: make test's two test processes start them first and end together
LONGEST_FIRST = ("test_grid_workers.py", "test_grid_search.py", "test_distributed.py", "test_end_to_end.py",
                 "test_tutorial.py", "test_interruptions.py", "test_crash_safety.py",
                 "test_resume.py", "test_builtin_problems.py", "test_mlflow_sink.py", "test_training_depth.py",
                 "test_protein_streaming.py")


def pytest_collection_modifyitems(items: list) -> None:
    """Run the longest test files first (the order within a file is kept)."""
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


REPO = Path(__file__).resolve().parents[1]
# a two-epoch Digits MLP that trains in a few seconds, for the tests of what a run prints
TWO_EPOCH_DIGITS = """
problem: {name: Digits, batch_size: 128}
model: {name: MLP, hidden_sizes: [16]}
training:
  seed: 3
  optimizer: {name: Adam, lr: 0.01}
  terminal_conditions: {epoch_limit: 2}
logging: {mlflow: null, tensorboard: null}
"""
BIN = Path(sys.executable).parent
FAST = ["--set", "training.trainer.enable_progress_bar=false"]


@pytest.fixture(autouse=True)
def fresh_singletons():
    ParamRegistry.reset()
    AppState.reset()
    yield
    ParamRegistry.reset()
    AppState.reset()


@pytest.fixture
def write(tmp_path):
    """write('name.yaml', text) -> path of a dedented file under tmp_path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    return _write


def command(name: str, *args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run an installed console command (pyrosys-trainer, ...) as a user would."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([str(BIN / name), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="session")
def two_epoch_digits() -> str:
    """The configuration text of a two-epoch Digits MLP (no MLflow, no TensorBoard)."""
    return TWO_EPOCH_DIGITS


@pytest.fixture
def distribution(tmp_path):
    """distribution(name, entry_points, module=None): an installed package's metadata (and its module) written
    under tmp_path, found once tmp_path is on sys.path (monkeypatch.syspath_prepend)."""

    def _distribution(name: str, entry_points: str, module: str | None = None) -> None:
        if module is not None:
            (tmp_path / f"{name}.py").write_text(textwrap.dedent(module))
        info = tmp_path / f"{name}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(entry_points)

    return _distribution


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_answering(url: str, server: subprocess.Popen, seconds: float) -> None:
    """Wait until `url` answers 200 (a server starting), failing the test if the server exits or takes longer."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        assert server.poll() is None, f"the server of {url} exited"
        assert time.monotonic() < deadline, f"{url} did not answer within {seconds} s"
        time.sleep(0.5)


@pytest.fixture(scope="session")
def local_server():
    """local_server.free_port() and local_server.wait_until_answering(url, process, seconds), for tests that
    start a real server on 127.0.0.1."""
    return types.SimpleNamespace(free_port=free_port, wait_until_answering=wait_until_answering)


def start_trainer(tmp_path: Path, *argv: str) -> subprocess.Popen:
    """pyrosys-trainer started in `tmp_path` (its modules importable), its stderr into a file of its own
    (`.errors`): a pipe that nobody reads while the test polls or waits would stall the run once full."""
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "PYTHONWARNINGS": "ignore"}
    errors = tmp_path / f"stderr_{time.monotonic_ns()}.txt"
    with errors.open("w") as stream:
        process = subprocess.Popen([str(Path(sys.executable).parent / "pyrosys-trainer"), *argv], cwd=tmp_path,
                                   env=env, stdout=subprocess.DEVNULL, stderr=stream)
    process.errors = errors
    return process


@pytest.fixture(scope="session")
def started_trainer():
    """started_trainer(tmp_path, *argv): a trainer process the test polls, signals or waits for."""
    return start_trainer


@pytest.fixture(scope="session")
def cli():
    """cli(name, *args, cwd=...) runs a console command; cli.FAST turns the progress bar off."""
    command.FAST = FAST
    return command


# -- protein language models: tiny random ones written with save_pretrained (nothing is downloaded) ---------

ESM_TOKENS = ["<cls>", "<pad>", "<eos>", "<unk>", *"LAGVSERTIDPKQNFYMHWCXBUZO", ".", "-", "<null_1>", "<mask>"]


def write_esm(folder: Path, *, seed: int = 0, layers: int = 2, hidden: int = 32, longest: int = 34,
              tokens: list[str] | None = None, vocab_size: int | None = None) -> Path:
    """An ESM-2-shaped encoder of `layers` layers and width `hidden` with random weights, and its tokenizer
    (ESM's vocabulary, or `tokens`), its longest input `longest` tokens (so windows show on short proteins)."""
    import torch
    from transformers import EsmConfig, EsmModel, EsmTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocabulary = folder / "vocab.txt"
    vocabulary.write_text("\n".join(tokens or ESM_TOKENS) + "\n")
    config = EsmConfig(vocab_size=vocab_size or len(tokens or ESM_TOKENS), hidden_size=hidden,
                       num_hidden_layers=layers, num_attention_heads=2, intermediate_size=2 * hidden,
                       max_position_embeddings=1026, position_embedding_type="rotary", pad_token_id=1,
                       mask_token_id=32, token_dropout=False)
    torch.manual_seed(seed)
    EsmModel(config, add_pooling_layer=False).save_pretrained(folder)
    EsmTokenizer(str(vocabulary), model_max_length=longest).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def esm_folder(tmp_path_factory) -> Path:
    """A tiny random ESM-2-shaped encoder and its tokenizer, written once per test process."""
    return write_esm(tmp_path_factory.mktemp("esm"))


@pytest.fixture(scope="session")
def plm_files() -> types.SimpleNamespace:
    """write_esm(folder, ...) for tests that need an encoder of their own, and ESM's `tokens`."""
    return types.SimpleNamespace(write_esm=write_esm, tokens=ESM_TOKENS)


@pytest.fixture(scope="session")
def batch_recorder() -> type:
    """A tiny LightningModule class that records each training batch's per-sample input sums, and with
    `stop_after=N` saves `<root>/mid.ckpt` and stops after N batches (as a checkpoint callback saves)."""
    import pytorch_lightning as pl
    import torch

    class Recorder(pl.LightningModule):
        def __init__(self, stop_after: int | None = None) -> None:
            super().__init__()
            self.layer, self.seen, self.stop_after = torch.nn.Embedding(26, 2), [], stop_after

        def training_step(self, batch, index):
            self.seen.append(batch["inputs"].sum(dim=1).tolist())
            return self.layer(batch["inputs"]).sum()

        def on_train_batch_end(self, outputs, batch, index) -> None:
            if self.stop_after is not None and len(self.seen) == self.stop_after:
                self.trainer.save_checkpoint(self.trainer.default_root_dir + "/mid.ckpt")
                self.trainer.should_stop = True

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    return Recorder


@pytest.fixture(scope="session")
def trained_statistics(cli):
    """trained_statistics(config, outdir): pyrosys-trainer run on `config` into `outdir` (from the config's
    folder, no progress bar), then its training and validation statistics rows without their wall-clock columns
    (what two runs of one seed must share)."""
    import csv

    def train(config: Path, outdir: Path) -> list[dict]:
        result = cli("pyrosys-trainer", "--c", config, "--outdir", outdir, *cli.FAST, cwd=Path(config).parent)
        assert result.returncode == 0, result.stderr[-3000:]
        rows = []
        for name in ("training_statistics.csv", "validation_statistics.csv"):
            (table,) = Path(outdir).glob(f"*/*/*/{name}")
            with table.open(newline="") as lines:
                rows += [{k: v for k, v in row.items() if "time" not in k and "second" not in k}
                         for row in csv.DictReader(lines)]
        return rows
    return train
