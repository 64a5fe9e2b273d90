"""Generate the offline protein demo data set: random sequences labelled with properties computed
from them (Kyte-Doolittle GRAVY for regression; a net-charge class for classification).

    python -m pyrosys.problems.protein_demo configs/protein/data/demo_proteins.csv --count 3000 --seed 0
"""
from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pyrosys.atomic import atomic_path
from pyrosys.problems.protein import AMINO_ACIDS

# Kyte & Doolittle (1982) hydropathy index
KYTE_DOOLITTLE = {"A": 1.8, "R": -4.5, "N": -3.5, "D": -3.5, "C": 2.5, "Q": -3.5, "E": -3.5, "G": -0.4, "H": -3.2,
                  "I": 4.5, "L": 3.8, "K": -3.9, "M": 1.9, "F": 2.8, "P": -1.6, "S": -0.8, "T": -0.7, "W": -0.9,
                  "Y": -1.3, "V": 4.2}


def gravy(sequence: str) -> float:
    """Grand average of hydropathy: the mean Kyte-Doolittle value of the residues."""
    return sum(KYTE_DOOLITTLE[a] for a in sequence) / len(sequence)


def charge_class(sequence: str) -> str:
    """Net charge near pH 7 from K, R (+1) and D, E (-1): negative, neutral or positive."""
    charge = sum(sequence.count(a) for a in "KR") - sum(sequence.count(a) for a in "DE")
    return "negative" if charge < -2 else "positive" if charge > 2 else "neutral"


def sequences(count: int, seed: int, min_length: int = 30, max_length: int = 120) -> list[str]:
    """Random sequences whose composition leans hydrophobic or hydrophilic by a per-sequence amount."""
    rng = np.random.default_rng(seed)
    hydropathy = np.array([KYTE_DOOLITTLE[a] for a in AMINO_ACIDS])
    result = []
    for _ in range(count):
        lean = rng.uniform(-0.6, 0.6)
        weights = np.exp(lean * hydropathy)
        letters = rng.choice(list(AMINO_ACIDS), size=int(rng.integers(min_length, max_length + 1)),
                             p=weights / weights.sum())
        result.append("".join(letters))
    return result


def write_demo(path: str | Path, count: int = 3000, seed: int = 0) -> Path:
    """Write the demo table (id, sequence, gravy, charge_class) as CSV, or FASTA for a .fasta path."""
    path = Path(path)
    rows = [(f"demo{i:05d}", s, round(gravy(s), 4), charge_class(s)) for i, s in enumerate(sequences(count, seed))]
    with atomic_path(path) as temporary, open(temporary, "w", newline="", encoding="utf-8") as stream:
        if path.suffix.lower() in (".fasta", ".fa"):
            for identifier, sequence, value, charge in rows:
                stream.write(f">{identifier} gravy={value} charge_class={charge}\n")
                stream.writelines(sequence[i:i + 60] + "\n" for i in range(0, len(sequence), 60))
        else:
            writer = csv.writer(stream)
            writer.writerow(["id", "sequence", "gravy", "charge_class"])
            writer.writerows(rows)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the offline protein demo data set (CSV or FASTA).")
    parser.add_argument("path", help="output file (.csv or .fasta)")
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(write_demo(args.path, args.count, args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
