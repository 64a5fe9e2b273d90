"""Embedding cache: a grid of 8 head configurations on one frozen encoder, with and without `embeddings: {cache}`.

The encoder is ESM-2 8M's shape (6 layers, width 320, 20 heads) with random weights, written locally (nothing is
downloaded); the data are random proteins 50-200 long. Measured side by side in one run, each grid two runs at a
time as grids run by default:

    (A) the grid without the cache (every run embeds every sequence at every epoch)
    (B) the grid with a new cache (the first run embeds each sequence once, the others wait, then read)
    (C) one embedding pass: filling a new cache with every sequence, one torch thread, as a grid run has
    (D) the grid again on the cache (B) filled: the 8 head trainings on cached embeddings

Target: (B) <= 1.2 x ((C) + (D)). The section it writes goes into benchmarks/results.md.

    .venv/bin/python benchmarks/embedding_cache.py [--sequences 300] [--epochs 3]
"""
from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from report import header, markdown_table, write_section  # noqa: E402

BIN = Path(sys.executable).parent
BASE = """\
problem: {{name: ProteinSequences, path: {data}, batch_size: 32, max_length: 1022}}
model: {{name: PLMClassifier, pretrained: {encoder}{cache}}}
training:
  seed: 0
  optimizer: {{name: Adam, lr: 1.0e-3}}
  terminal_conditions: {{epoch_limit: {epochs}}}
logging: {{mlflow: null, tensorboard: null}}
"""
GRID = """\
grid_tasks: [{{default_configs: {base}}}]
grid_search:
  model.head.hidden: [[], [64], [128], [64, 32]]
  training.optimizer.lr: [1.0e-3, 1.0e-2]
grid_settings: {{max_concurrent_runs: 2}}
"""
FILL = """\
import sys, time, torch
torch.set_num_threads(1)
from pyrosys.models import PLMClassifier
from pyrosys.problems import ProteinSequences
problem = ProteinSequences.create({"path": sys.argv[1], "max_length": 1022})
problem.setup()
params = {"pretrained": sys.argv[2], "embeddings": {"cache": sys.argv[3]}}
model = PLMClassifier.create(params, problem.data_definitions)
started = time.perf_counter()
model.fill_cache(problem, ("train", "val", "test"))
print(time.perf_counter() - started)
"""


def write_encoder(folder: Path) -> Path:
    """ESM-2 8M's architecture with random weights, and ESM's tokenizer, saved with save_pretrained."""
    import torch
    import transformers
    from transformers import EsmConfig, EsmModel, EsmTokenizer
    transformers.utils.logging.disable_progress_bar()
    tokens = ["<cls>", "<pad>", "<eos>", "<unk>", *"LAGVSERTIDPKQNFYMHWCXBUZO", ".", "-", "<null_1>", "<mask>"]
    folder.mkdir(parents=True)
    (folder / "vocab.txt").write_text("\n".join(tokens) + "\n")
    config = EsmConfig(vocab_size=33, hidden_size=320, num_hidden_layers=6, num_attention_heads=20,
                       intermediate_size=1280, max_position_embeddings=1026, position_embedding_type="rotary",
                       pad_token_id=1, mask_token_id=32, token_dropout=False)
    torch.manual_seed(0)
    EsmModel(config, add_pooling_layer=False).save_pretrained(folder)
    EsmTokenizer(str(folder / "vocab.txt"), model_max_length=1024).save_pretrained(folder)
    return folder


def write_proteins(path: Path, count: int) -> Path:
    """Random proteins 50-200 long, labelled by their lysine count."""
    rng = random.Random(0)
    lines = ["id,sequence,label"]
    for index in range(count):
        sequence = "".join(rng.choice("ACDEFGHIKLMNPQRSTVWY") for _ in range(rng.randint(50, 200)))
        lines.append(f"p{index},{sequence},{int(sequence.count('K') > len(sequence) / 20)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def grid(folder: Path, name: str, config: Path) -> float:
    """Seconds of one pyrosys-grid-trainer run (it must complete)."""
    started = time.perf_counter()
    subprocess.run([str(BIN / "pyrosys-grid-trainer"), "--c", str(config), "--outdir", str(folder / name), "--yes"],
                   check=True, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return time.perf_counter() - started


def measure(sequences: int, epochs: int) -> dict[str, float]:
    """(A)-(D) in seconds, in one temporary folder."""
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        encoder, data = write_encoder(folder / "esm"), write_proteins(folder / "proteins.csv", sequences)
        configs = {}
        for name, cache in (("uncached", ""), ("cached", f", embeddings: {{cache: {folder / 'cache'}}}")):
            base = folder / f"{name}.yaml"
            base.write_text(BASE.format(data=data, encoder=encoder, cache=cache, epochs=epochs))
            configs[name] = folder / f"grid_{name}.yaml"
            configs[name].write_text(GRID.format(base=base.name))
        figures = {"A": grid(folder, "a", configs["uncached"]), "B": grid(folder, "b", configs["cached"])}
        fill = subprocess.run([sys.executable, "-c", FILL, str(data), str(encoder), str(folder / "fresh-cache")],
                              check=True, capture_output=True, text=True)
        figures["C"] = float(fill.stdout.strip().splitlines()[-1])
        figures["D"] = grid(folder, "d", configs["cached"])
    return figures


def section(figures: dict[str, float], sequences: int, epochs: int) -> list[str]:
    """The markdown section of results.md."""
    a, b, c, d = (figures[k] for k in "ABCD")
    ratio = b / (c + d)
    rows = [["(A) grid of 8 heads, no cache", f"{a:.1f} s", f"{a / b:.2f} x (B)", ""],
            ["(B) the same grid, new cache", f"{b:.1f} s", f"{ratio:.2f} x ((C) + (D))",
             f"<= 1.2 x ((C) + (D)): {'yes' if ratio <= 1.2 else 'no'}"],
            ["(C) one embedding pass (every sequence, one thread)", f"{c:.1f} s", "", ""],
            ["(D) the grid on the filled cache (8 head trainings)", f"{d:.1f} s", "", ""]]
    return [*header("Embedding cache", "`make bench-plm` (`python benchmarks/embedding_cache.py`)")[2:], "",
            f"A frozen ESM-2 8M-shaped encoder (6 layers, width 320, random weights written locally), {sequences} "
            f"random proteins 50-200 long, PLMClassifier with mean pooling; a grid of 8 head configurations "
            f"(head.hidden [], [64], [128], [64, 32] x lr 1e-3, 1e-2), {epochs} epochs each, two runs at a time.", "",
            *markdown_table(["measurement", "value", "ratio", "target"], rows), "",
            f"Without the cache every run embeds every training and validation sequence at every epoch; with it, "
            f"the first run embeds each sequence once while the other waits for the cache folder's lock, and every "
            f"later run (and the tester) reads the shards: the grid is {a / b:.1f} x faster, and costs {ratio:.2f} x "
            f"one embedding pass plus the head trainings alone."]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    figures = measure(args.sequences, args.epochs)
    lines = section(figures, args.sequences, args.epochs)
    write_section(HERE / "results.md", "Embedding cache", lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
