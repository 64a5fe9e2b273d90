"""Data larger than memory: one epoch of a small ProteinCNN on a generated FASTA file read through its on-disk index
(`in_memory: false`), its peak resident memory and residues per second, and the in-memory path against the on-disk
path on a subset that fits. The index's build time is reported apart.

    .venv/bin/python benchmarks/large_fasta.py [--sequences 2000000] [--subset 100000] [--workers 1]

Sequence lengths are drawn from a real protein length distribution: SEQ_SOLUBLE's sequences (read out of the installed
aaanalysis wheel without importing it) where `pyrosys[benchmarks]` is installed, otherwise a log-normal fitted to
UniProtKB/Swiss-Prot's lengths (median 300, sigma 0.65, cut to 30..5000; stated in the report). Letters are drawn
uniformly from the 20 amino acids; the label is the sign of the net charge (K+R-D-E). Each run is pyrosys-trainer in
a child process; its peak memory is polled from /proc/<pid>/smaps_rollup every 0.2 s two ways: the summed
proportional set size (Pss) of the trainer and its DataLoader workers (pages they share counted once, split between
them) and the largest resident set (Rss) of any one of them.
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(HERE))
from report import markdown_table, write_section  # noqa: E402

AMINO = np.frombuffer(b"ACDEFGHIKLMNPQRSTVWY", dtype=np.uint8)
CHARGE = np.zeros(256, dtype=np.int64)
CHARGE[[ord("K"), ord("R")]], CHARGE[[ord("D"), ord("E")]] = 1, -1
MAX_LENGTH, MAX_TOKENS, WRAP = 1000, 16384, 60
CONFIG = """\
problem: {{name: ProteinSequences, path: {path}, label_column: charge, in_memory: {in_memory}, max_length: {max_length},
          fractions: [0.98, 0.01, 0.01], num_workers: {workers}, batching: {{by: length, max_tokens: {max_tokens}}}}}
model: {{name: ProteinCNN, embedding_dim: 8, channels: [16], kernel_size: 5}}
training:
  seed: 0
  optimizer: {{name: Adam, lr: 1.0e-3}}
  terminal_conditions: {{epoch_limit: 1}}
  trainer: {{enable_progress_bar: false{limits}}}
logging: {{tensorboard: 0, mlflow: null}}
"""


def real_lengths() -> tuple[np.ndarray | None, str]:
    """SEQ_SOLUBLE's sequence lengths from the installed aaanalysis package (found, not imported), if installed."""
    spec = importlib.util.find_spec("aaanalysis")
    if spec is None or not spec.submodule_search_locations:
        return None, ("a log-normal fitted to UniProtKB/Swiss-Prot (median 300, sigma 0.65, cut to 30..5000): "
                      "aaanalysis is not installed here")
    table = Path(list(spec.submodule_search_locations)[0]) / "_data" / "benchmarks" / "SEQ_SOLUBLE.tsv"
    with table.open(newline="") as handle:
        lengths = np.array([len(row["sequence"]) for row in csv.DictReader(handle, delimiter="\t")])
    return lengths, f"the {len(lengths)} real proteins of SEQ_SOLUBLE (aaanalysis), drawn with replacement"


def draw_lengths(count: int, rng: np.random.Generator, real: np.ndarray | None) -> np.ndarray:
    """`count` sequence lengths from the real distribution (or its log-normal stand-in)."""
    if real is not None:
        return rng.choice(real, size=count)
    return np.clip(np.rint(rng.lognormal(np.log(300), 0.65, size=count)), 30, 5000).astype(np.int64)


def write_fasta(path: Path, count: int, seed: int, real: np.ndarray | None, chunk: int = 20000) -> int:
    """A FASTA file of `count` random sequences (wrapped at 60 letters, `charge=` labels); its residue count."""
    rng, residues = np.random.default_rng(seed), 0
    with path.open("wb") as out:
        for start in range(0, count, chunk):
            lengths = draw_lengths(min(chunk, count - start), rng, real)
            letters = AMINO[rng.integers(0, len(AMINO), int(lengths.sum()))]
            ends = np.cumsum(lengths)
            residues += int(ends[-1])
            parts = []
            for number, (end, length) in enumerate(zip(ends.tolist(), lengths.tolist()), start=start):
                sequence = letters[end - length:end]
                charge = "basic" if int(CHARGE[sequence].sum()) > 0 else "acidic"
                text = sequence.tobytes()
                lines = b"\n".join(text[i:i + WRAP] for i in range(0, length, WRAP))
                parts.append(b">seq%d charge=%s\n%s\n" % (number, charge.encode(), lines))
            out.write(b"".join(parts))
    return residues


def descendants(root: int) -> list[int]:
    """A process and all its descendants (its DataLoader workers), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        try:
            parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    found, stack = [], [root]
    while stack:
        found.append(stack.pop())
        stack += children.get(found[-1], [])
    return found


def memory_of(pids: list[int]) -> tuple[int, int]:
    """The summed proportional set size (Pss: shared pages split between their sharers) and the largest resident
    set (Rss) of some processes, in bytes, from /proc/<pid>/smaps_rollup."""
    pss = largest = 0
    for pid in pids:
        try:
            fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:])
        except OSError:
            continue
        pss += int(fields["Pss"].split()[0]) * 1024
        largest = max(largest, int(fields["Rss"].split()[0]) * 1024)
    return pss, largest


def train(config: Path, folder: Path, name: str) -> dict:
    """pyrosys-trainer in a child process: its training seconds, the peak of the summed Pss of the trainer and its
    workers, and the peak Rss of any one of them (polled every 0.2 s)."""
    child = subprocess.Popen([str(BIN / "pyrosys-trainer"), "--c", str(config), "--outdir", str(folder),
                              "--run-name", name, "--ll", "WARNING"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    peak = [0, 0]

    def poll() -> None:
        while child.poll() is None:
            pss, largest = memory_of(descendants(child.pid))
            peak[:] = max(peak[0], pss), max(peak[1], largest)
            time.sleep(0.2)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    started = time.perf_counter()
    _, errors = child.communicate()
    wall = time.perf_counter() - started
    watcher.join()
    assert child.returncode == 0, errors[-3000:]
    status = json.loads((folder / name / "status.json").read_text())
    return {"training_seconds": status["training_seconds"], "wall_seconds": wall, "tree_peak_mb": peak[0] / 2**20,
            "largest_process_mb": peak[1] / 2**20}


def trained_residues(path: Path, limit: int | None) -> int:
    """The residues (after max_length) one epoch's training batches hold (its first `limit` batches, if given)."""
    from pyrosys.problems.protein import ProteinSequences
    problem = ProteinSequences.create({"path": str(path), "label_column": "charge", "in_memory": False, "seed": 0,
                                       "max_length": MAX_LENGTH, "fractions": [0.98, 0.01, 0.01]})
    problem.setup()
    lengths = problem.splits["train"].lengths
    return int(sum(lengths[batch].sum() for batch in problem.loader("train").plan(0)[:limit]))


def index_seconds(path: Path) -> float:
    """The time to build the file's index (a fresh build; the runs then find it current)."""
    from pyrosys.problems.sequence_index import SequenceIndex
    started = time.perf_counter()
    SequenceIndex.open(path, None, "charge")
    return time.perf_counter() - started


def run(path: Path, folder: Path, in_memory: bool, workers: int, repeat: int = 0, limit: int | None = None) -> dict:
    """One epoch on `path`, in memory or through the index; its figures with residues per second."""
    name = f"{path.stem}_{'memory' if in_memory else 'disk'}_{repeat}"
    config = folder / f"{name}.yaml"
    config.write_text(CONFIG.format(path=path, in_memory=str(in_memory).lower(), max_length=MAX_LENGTH,
                                    workers=0 if in_memory else workers, max_tokens=MAX_TOKENS,
                                    limits="" if limit is None else f", limit_train_batches: {limit}, "
                                    "limit_val_batches: 20, limit_test_batches: 20"))
    figures = train(config, folder, name)
    figures["residues"] = trained_residues(path, limit)
    figures["residues_per_second"] = figures["residues"] / figures["training_seconds"]
    print(name, json.dumps(figures), flush=True)
    return figures


def section(large: dict, memory: dict, disk: dict, built: dict, args: argparse.Namespace, source: str) -> list[str]:
    """The report's section: the large file's figures, then the subset's side by side."""
    def row(what: str, figures: dict) -> list[str]:
        return [what, f"{figures['residues'] / 1e6:.1f} M", f"{figures['training_seconds']:.0f} s",
                f"{figures['residues_per_second'] / 1e3:.0f} k", f"{figures['tree_peak_mb']:.0f} MB",
                f"{figures['largest_process_mb']:.0f} MB"]
    head = ["run", "residues trained", "training time", "residues/s", "peak memory, trainer + workers (Pss)",
            "peak Rss, largest process"]
    ratio = disk["residues_per_second"] / memory["residues_per_second"]
    return [f"Command: `.venv/bin/python benchmarks/large_fasta.py --sequences {args.sequences} --subset {args.subset}"
            f" --workers {args.workers} --repeats {args.repeats}` ({os.cpu_count()} cores; the subset's figures: "
            f"the faster of {args.repeats} alternated runs of each path). One epoch of ProteinCNN (embedding 8, one "
            f"convolution of 16 channels), `batching: {{by: length, max_tokens: {MAX_TOKENS}}}`, max_length "
            f"{MAX_LENGTH}, fractions 0.98/0.01/0.01; lengths from {source}.", "",
            *markdown_table(head, [row(f"{args.sequences} sequences, on disk" + (
                                       f", the epoch's first {args.limit_batches} batches" if args.limit_batches
                                       else ""), large),
                                   row(f"{args.subset} sequences, in memory", memory),
                                   row(f"{args.subset} sequences, on disk", disk)]), "",
            f"Files: {built['large_mb']:.0f} MB ({args.sequences} sequences), index built in "
            f"{built['large_index_s']:.0f} s (one streaming pass; {built['index_mb']:.0f} MB of index); subset "
            f"{built['subset_mb']:.0f} MB, index {built['subset_index_s']:.1f} s. On disk / in memory on the subset: "
            f"{ratio:.2f}x the residues per second.", *([args.note] if args.note else [])]


def large_run(folder: Path, args: argparse.Namespace, real: np.ndarray | None) -> tuple[dict, dict]:
    """The large file written, indexed and trained on: its build figures and its run's (also printed as JSON)."""
    large = folder / "large.fasta"
    write_fasta(large, args.sequences, 0, real)
    built = {"large_mb": large.stat().st_size / 2**20, "large_index_s": index_seconds(large)}
    built["index_mb"] = sum(f.stat().st_size for f in (folder / "large.fasta.pyrosys-index").iterdir()) / 2**20
    figures = run(large, folder, False, args.workers, limit=args.limit_batches)
    print("large file:", json.dumps([built, figures]), flush=True)
    large.unlink()
    return built, figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=2_000_000)
    parser.add_argument("--subset", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of the on-disk runs")
    parser.add_argument("--repeats", type=int, default=2, help="subset runs of each path (the fastest is told)")
    parser.add_argument("--limit-batches", type=int, default=None,
                        help="train the large file's first N batches only (its epoch: all of them)")
    parser.add_argument("--large-from", metavar="JSON", default=None,
                        help="the large file's figures from an earlier run's 'large file:' line (subset runs only)")
    parser.add_argument("--note", default="", help="a sentence the report's section ends with")
    parser.add_argument("--report", default=str(HERE / "results.md"))
    args = parser.parse_args()
    real, source = real_lengths()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        subset = folder / "subset.fasta"
        write_fasta(subset, args.subset, 1, real)
        if args.large_from:                  # the large file's figures of an earlier run (its JSON)
            built, figures = json.loads(Path(args.large_from).read_text())
        else:
            built, figures = large_run(folder, args, real)
        built["subset_mb"], built["subset_index_s"] = subset.stat().st_size / 2**20, index_seconds(subset)
        subsets = [(run(subset, folder, True, args.workers, k), run(subset, folder, False, args.workers, k))
                   for k in range(args.repeats)]        # alternated, so that a busy spell hits both alike
        memory, disk = (min((pair[side] for pair in subsets), key=lambda f: f["training_seconds"]) for side in (0, 1))
    write_section(Path(args.report), "Data larger than memory", section(figures, memory, disk, built, args, source))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
