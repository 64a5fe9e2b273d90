"""`make bench`: every benchmark in one run, printed as a table and written to benchmarks/results.md.

    .venv/bin/python benchmarks/run.py

1 step overhead (raw loops, plain Lightning, PyroSys, Lightning's bare loop), 2 start-up, 3 tracking
on versus off, 4 the grid's pool versus a process per run, 5 step time by batch size and model size.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(HERE))

import grid_overhead  # noqa: E402
from report import header, write_report  # noqa: E402
import tracking_overhead  # noqa: E402

BAD_CONFIG = "problem: {name: Digits}\nmodel: {name: LeNet5}\ntraining: {optimiser: {lr: 0.1}}\n"


def seconds(command: list[str], repeats: int = 5, expect: int = 0) -> float:
    """The median wall time of a command."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        times.append(time.perf_counter() - started)
        assert done.returncode == expect, done.stderr
    return statistics.median(times)


def start_up(scratch: Path) -> dict:
    """--help, rejecting a misspelt key, and launch to the first training step of the (d) configuration."""
    import step_overhead

    bad = scratch / "bad.yaml"
    bad.write_text(BAD_CONFIG)
    config = scratch / "first_step.yaml"
    config.write_text(step_overhead.PYROSYS_CONFIG.format(samples=25000, features=64, classes=10, batch=64,
                                                         hidden=128, epochs=1))
    launches = []
    for index in range(3):
        launched = time.time()
        subprocess.run([str(BIN / "pyrosys-trainer"), "--c", str(config), "--outdir", str(scratch),
                        "--run-name", f"first{index}"], check=True, capture_output=True)
        status = json.loads((scratch / f"first{index}" / "status.json").read_text())
        launches.append(status["first_step_at"] - launched)
    return {"help": seconds([str(BIN / "pyrosys-trainer"), "--help"]),
            "bad": seconds([str(BIN / "pyrosys-trainer"), "--c", str(bad)], expect=2),
            "first_step": statistics.median(launches)}


def measure_all() -> dict:
    """Run every benchmark and return its measurements and the profile of (d), keyed by benchmark."""
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        profile = scratch / "profile.txt"
        steps = json.loads(subprocess.run([sys.executable, str(HERE / "step_overhead.py"), "--profile", str(profile)],
                                          check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        profile_text = profile.read_text()
        starting = start_up(scratch)
    _first, times = tracking_overhead.measure(9)
    tracking_ratio, tracking_paired = tracking_overhead.ratios(times)
    grid = grid_overhead.measure()
    return {"steps": steps, "profile": profile_text, "start_up": starting, "tracking": times,
            "tracking_ratio": tracking_ratio, "tracking_paired": tracking_paired, "grid": grid}


def table_rows(measured: dict) -> list[tuple[str, str, str, str, str]]:
    """The results table's rows (section, measurement, value, ratio, target) from measure_all's figures."""
    steps, starting, times, grid = measured["steps"], measured["start_up"], measured["tracking"], measured["grid"]
    tracking_ratio, tracking_paired = measured["tracking_ratio"], measured["tracking_paired"]
    a, b, c, d, e = (steps[k] for k in "abcde")
    pool = statistics.median(grid["one_overheads"])
    rows = [
        ("1 step overhead", f"(a) raw loop indexing tensors, {steps['steps']} steps", f"{a:.3f} s", "1.00 x (a)", ""),
        ("", "(b) raw loop over DataLoader(TensorDataset)", f"{b:.3f} s", f"{b / a:.2f} x (a)", ""),
        ("", "(c) plain Lightning, DataLoader + self.log every step", f"{c:.3f} s", f"{c / a:.2f} x (a)", ""),
        ("", "(d) PyroSys trainer, training phase (statistics, CSV, TensorBoard on)", f"{d:.3f} s",
         f"{d / a:.2f} x (a), {d / c:.2f} x (c)", f"<= 1.5 x (a): {'yes' if d <= 1.5 * a else 'no'}; "
                                                   f"<= 0.6 x (c): {'yes' if d <= 0.6 * c else 'no'}"),
        ("", "(e) Lightning's bare loop: no logging, no callbacks, no logger", f"{e:.3f} s",
         f"{e / a:.2f} x (a), {e / c:.2f} x (c)", "the floor under (d)"),
        ("2 start-up", "`pyrosys-trainer --help`", f"{starting['help']:.3f} s", "", f"<= 0.5 s: {'yes' if starting['help'] <= 0.5 else 'no'}"),
        ("", "a misspelt key rejected (exit 2)", f"{starting['bad']:.3f} s", "", f"<= 1 s: {'yes' if starting['bad'] <= 1 else 'no'}"),
        ("", "launch to the first training step", f"{starting['first_step']:.3f} s", "", ""),
        ("3 tracking", "LeNet5 demo fit, MLflow (SQLite) + TensorBoard on / off, 9 alternated pairs",
         f"{statistics.median(list(times.values())[0]):.2f} / {statistics.median(list(times.values())[1]):.2f} s",
         f"median of paired ratios {tracking_paired:.3f}; ratio of medians {tracking_ratio:.3f}",
         f"<= 1.05: {'yes' if tracking_paired <= 1.05 else 'no'}"),
        ("4 grid", f"per-run overhead, pool (median of {len(grid['one_overheads'])})", f"{pool:.3f} s", "",
         f"<= 0.5 s: {'yes' if pool <= 0.5 else 'no'}"),
        ("", f"per-run overhead, a fresh process per run (median of {len(grid['fresh'])})",
         f"{statistics.median(grid['fresh']):.3f} s", "", ""),
        ("", f"8 runs, default concurrency vs --max-concurrent 1, {grid['pairs']} alternated pairs (medians)",
         f"{grid['default_wall']:.2f} / {grid['one_wall']:.2f} s",
         f"median of paired ratios {grid['speedup']:.2f} x faster (" + ", ".join(f"{v:.2f}" for v in grid["speedups"]) + ")",
         f">= 1.6 x: {'yes' if grid['speedup'] >= 1.6 else 'no'}"),
        ("", "time outside the runs (pool start-up, first-run imports, end): one at a time / default",
         f"{grid['one_fixed']:.2f} / {grid['default_fixed']:.2f} s", "", ""),
    ]
    rows += [("5 scaling" if i == 0 else "", f"batch {r['batch']}, hidden {r['hidden']} ({r['steps']} steps)",
              f"(a) {r['a_ms']:.3f} ms, (d) {r['d_ms']:.3f} ms per step", f"{r['d_ms'] / r['a_ms']:.2f} x (a)",
              f"fixed cost {r['d_ms'] - r['a_ms']:.3f} ms per step") for i, r in enumerate(steps["scaling"])]
    return rows


def markdown_table(rows: list[tuple[str, str, str, str, str]]) -> list[str]:
    """The rows as the lines of a Markdown table, its head first."""
    table = ["| | measurement | value | ratio | target |", "| --- | --- | --- | --- | --- |"]
    table += ["| " + " | ".join(row) + " |" for row in rows]
    return table


def step_findings(steps: dict) -> list[str]:
    """The paragraphs of "What the figures say" on the step overhead: (d) against (a), then against (c)."""
    a, c, d, e = (steps[k] for k in "acde")
    return [f"- **(d) against (a)**: out of reach on Lightning. (e), Lightning's own training loop with nothing "
            f"logged, no callback and no logger, already takes {e / a:.2f} x (a): about "
            f"{1000 * (e - a) / steps['steps']:.2f} ms per step of hooks, closures and progress bookkeeping, against "
            f"{1000 * a / steps['steps']:.2f} ms for the whole raw step. PyroSys adds "
            f"{1000 * (d - e) / steps['steps']:.3f} ms per step on top of that floor (the statistics and checkpoint "
            "callbacks, the batch dictionary, the metrics' batch values). Reaching 1.5 x (a) would mean leaving "
            "Lightning's loop (several optimiser steps per Lightning batch, or a loop of our own), which would give up "
            "its callbacks, strategies and checkpoint semantics that the rest of PyroSys is built on.",
            f"- **(d) against (c)**: {d / c:.2f} x (c); the floor (e) is {e / c:.2f} x (c), and (d) is "
            f"{d / e:.2f} x (e). "
            + ("" if d / c <= 0.6 else
               "On this machine 0.6 x (c) cannot be reached inside Lightning's loop, whose floor alone is that "
               "far (on the machine of 2026-11-22, (d) was 0.53 x (c) and (e) 0.48 x (c)). ")
            + "What was taken off the "
            "step: torchmetrics' stateful forward (now a stateless batch value), the DataLoader and its sampler "
            "(now one permutation and one tensor index per batch), the per-step walk of the batch to the device on "
            "the CPU, a tensor operation per step in the statistics buffer, and what Lightning does at every hook "
            "for nothing: a profiler context per hook call (PyroSys's default profiler returns one shared empty "
            "context), the checkpoint callback's state key spelt out a dozen times a step (worked out once), "
            "nn.Module's checks on the hook name Lightning sets on the model about fifty times a step (set as a "
            "plain attribute), and module calls of dropout with p = 0 and of a flatten of flat inputs (stepped over)."]


def grid_finding(grid: dict) -> str:
    """The paragraph of "What the figures say" on the grid's speed-up and the time outside its runs."""
    pool = statistics.median(grid["one_overheads"])
    parallel = grid["one_runs"] / (grid["default_runs"] / (os.cpu_count() or 1))     # the runs' own speed-up
    model = (grid["one_fixed"] + grid["one_runs"]) / (grid["default_fixed"] + grid["one_runs"] / parallel)
    return (f"- **Grid**: {grid['speedup']:.2f} x, {'meeting' if grid['speedup'] >= 1.6 else 'under'} the target of "
            f"1.6 x. The runs themselves go {parallel:.2f} x faster two at a time (two cores, one torch thread each, "
            "against a run alone with two threads, which gains a little from its second one). About "
            f"{grid['one_fixed']:.1f} s of a grid one at a time ({grid['default_fixed']:.1f} s at the default "
            "concurrency) is not shared out: starting the pool (each worker a Python process importing torch, "
            "Lightning, torchmetrics, matplotlib and MLflow, all workers at once, one per core), the first run's "
            f"own first-time work, and the end. With {grid['one_runs']:.1f} s of runs, the medians give "
            f"({grid['one_fixed']:.1f} + {grid['one_runs']:.1f}) / ({grid['default_fixed']:.1f} + "
            f"{grid['one_runs']:.1f} / {parallel:.2f}) = {model:.2f} x; the pairs' ratios, judged, spread "
            f"from {min(grid['speedups']):.2f} to {max(grid['speedups']):.2f} x, as single grids spread by several "
            "per cent here. So the speed-up depends on how long the runs "
            "are against the imports on the machine at hand: the same grid gave 1.59 x on the machine of "
            "2026-11-22, with 22.8 s of runs and 4.9 s outside them. Faster runs lower it, and so does anything "
            "that puts the idle second core of a one-at-a-time grid to work: a fork server that imports once for "
            "all workers made a one-at-a-time grid of configs/digits/grid.yaml 11 % faster and the concurrent one "
            "no faster (two grids each, 2026-11-23); starting the pool before the plan is made, or importing "
            "MLflow in the grid's own process, would move work onto that idle core the same way. "
            "Taken off both grids' fixed time: processes exit "
            "without the interpreter's last garbage collection (1.5 s each once torch is imported), a short run's "
            "MLflow rows go in one call, and a new MLflow store is copied from a cached empty one instead of "
            f"running MLflow's schema migrations; the pool's per-run overhead is {pool:.2f} s. "
            "`python benchmarks/grid_overhead.py` works it out in full.")


def report_lines(measured: dict, table: list[str], started: float) -> list[str]:
    """The lines of results.md (header, set-up, table, findings, (d)'s profile), timed from `started`."""
    import torch  # noqa: F401 - its version goes in the header

    steps = measured["steps"]
    return [*header("PyroSys benchmarks", f"`make bench` (`{Path(sys.executable).name} benchmarks/run.py`), "
                                          f"{time.perf_counter() - started:.0f} s in all."),
            "", f"Step overhead: MLP {64}->128->10, {20000} in-memory samples, batch 64, Adam, 3 epochs, one torch "
            f"thread, medians of {steps['repeats']} in one process. Scaling: medians of 3.", "", *table, "",
            "## What the figures say", "", *step_findings(steps),
            "- **Tracking**: each run with tracking on is paired with the run without it that follows it, "
            "and the median of the pairs' ratios is judged: single runs of one mode spread by about 10 % on "
            "this machine, more than the effect measured. No MLflow call runs during training (a short run "
            "logs after it, its rows merged into one call); TensorBoard writes one event per statistics row.",
            "- **Scaling**: the fixed cost per step stays near the same fraction of a millisecond whatever the "
            "batch or model size, so the ratio to (a) falls as the step's own work grows (batch 256, or a 10x "
            "larger model).",
            grid_finding(measured["grid"]),
            "", "## Where (d)'s time goes (cProfile, cumulative, one run)", "", "```",
            measured["profile"].strip()[:6000], "```", ""]


def main() -> int:
    """Run every benchmark, write benchmarks/results.md and print its table."""
    started = time.perf_counter()
    measured = measure_all()
    table = markdown_table(table_rows(measured))
    write_report(report_lines(measured, table, started), HERE / "results.md")
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
