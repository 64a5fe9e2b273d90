"""Tracking overhead: training time (fit seconds) of the Digits LeNet5 demo with MLflow (SQLite) and
TensorBoard on versus both off, alternated in one run, medians of N repeats.

    .venv/bin/python benchmarks/tracking_overhead.py [--repeats 5]

Writes benchmarks/tracking_overhead.md with the figures, the machine and the date.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from report import header, write_report

ROOT = Path(__file__).resolve().parents[1]
TRAINER = Path(sys.executable).parent / "pyrosys-trainer"
MODES = {"tracking on (MLflow SQLite + TensorBoard 0)": [],
         "tracking off": ["logging.mlflow=null", "logging.tensorboard=null"]}


def fit_seconds(extra: list[str], outdir: Path) -> float:
    """Train once into `outdir` (shared by the runs of a mode, as a researcher's experiments/ folder is)."""
    before = set(outdir.glob("*/*/*/status.json"))
    subprocess.run([str(TRAINER), "--c", str(ROOT / "configs/digits/lenet5.yaml"), "--outdir", str(outdir),
                    "--set", "training.trainer.enable_progress_bar=false", *extra], check=True, capture_output=True)
    (status,) = set(outdir.glob("*/*/*/status.json")) - before
    return json.loads(status.read_text())["fit_seconds"]


def measure(repeats: int) -> tuple[dict[str, float], dict[str, list[float]]]:
    """First runs per mode, and `repeats` runs per mode, alternated."""
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as scratch:
        folders = {mode: Path(scratch) / f"mode{index}" for index, mode in enumerate(MODES)}
        first = {mode: fit_seconds(extra, folders[mode])  # a first run creates the MLflow database
                 for mode, extra in MODES.items()}
        for _ in range(repeats):
            for mode, extra in MODES.items():
                times[mode].append(fit_seconds(extra, folders[mode]))
    return first, times


def ratios(times: dict[str, list[float]]) -> tuple[float, float]:
    """The ratio of the medians on / off, and the median of the paired ratios."""
    on, off = (statistics.median(times[mode]) for mode in MODES)
    return on / off, statistics.median(a / b for a, b in zip(*times.values()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    first, times = measure(args.repeats)
    ratio, paired = ratios(times)
    lines = [*header("Tracking overhead", f"`{' '.join([Path(sys.executable).name, *sys.argv])}`"),
             "", "Training time (`fit_seconds` in status.json) of `configs/digits/lenet5.yaml`, "
             f"medians of {args.repeats} runs, modes alternated, each mode in an experiments folder of its own "
             "that a first run has already used (its MLflow database exists, as in everyday use). First runs, "
             "which also create the database: " + ", ".join(f"{mode} {value:.3f} s" for mode, value in first.items())
             + ".", "",
             "| mode | median fit seconds | all runs |", "| --- | --- | --- |"]
    lines += [f"| {mode} | {statistics.median(values):.3f} | {', '.join(f'{v:.3f}' for v in values)} |"
              for mode, values in times.items()]
    lines += ["", f"Ratio of the medians on / off: **{ratio:.3f}**; median of the paired ratios (each run "
              f"with tracking on over the run without it that follows it): **{paired:.3f}** (target at most 1.05)."]
    print(write_report(lines, ROOT / "benchmarks" / "tracking_overhead.md"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
