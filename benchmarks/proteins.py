"""`make bench-proteins`: PyroSys's shipped benchmark configurations against composition baselines, on real sets.

    .venv/bin/python benchmarks/proteins.py [--sets SEQ_SOLUBLE,AMPvsTM] [--seeds 3]

For each set of ProteinBenchmark (read from the aaanalysis and modlamp wheels): the shipped configuration
configs/protein/benchmarks/<SET>.yaml trained once per training seed (its problem.seed fixes the split, so
every run and both baselines see the same 70/10/20 split), and on the same split a random forest and a
logistic regression (scikit-learn) on amino-acid + dipeptide composition (420 features; for residue sets
the composition of a window of 2*WINDOW+1 residues around each residue). Every figure is computed here from
the test split's predicted probabilities with scikit-learn's metrics, the same code for all three.
Writes benchmarks/proteins.md.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CONFIGS = ROOT / "configs" / "protein" / "benchmarks"
sys.path.insert(0, str(HERE))

from report import header, write_report  # noqa: E402

THROUGHPUT = "throughput"       # --results: the throughput section measured last, beside the sets
WINDOW = 7                     # residue sets: the baselines see residues i-7 .. i+7
LETTERS = 20                   # token ids 1..20 are the 20 amino acids (ProteinSequences's vocabulary)
RESIDUE_ROWS = 200_000         # residue sets: the baselines train on at most this many training residues

PREAMBLE = [
    "Each set is read from its installed wheel (aaanalysis 1.1.0, modlamp 4.3.3) by `ProteinBenchmark`, "
    "without importing the packages, and split 70/10/20 by the split seed. PyroSys is the shipped "
    "configuration `configs/protein/benchmarks/<SET>.yaml`, trained once per training seed 0 .. n-1 on that "
    "one split (n in the table; the model picked by its validation monitor: the lowest validation loss, the "
    "highest validation MCC for residue sets); the random forest (300 trees) "
    "and the logistic regression (standardised, C = 0.1) see the same training split as 420 numbers per "
    "sequence: amino-acid (20) and dipeptide (400) composition, counted on the token ids PyroSys reads "
    "(truncated alike at the configuration's max_length). Residue sets: the composition of the window of 15 "
    "residues centred on each residue, at most 200000 training residues, classes weighted `balanced`. "
    "All scores are computed by this script from the test split's probabilities (scikit-learn's metrics); "
    "MCC, AUROC and average precision are of class 1. Sequence sets are compared by accuracy (MCC beside "
    "it), residue sets by MCC (AUROC beside it). Times: a PyroSys run is the trainer's whole run (reading, "
    "training with validation, testing, bundle), a baseline's is its fit and prediction; both on this "
    "machine's 2 cores, shared with other work while it ran.",
]
TRIED = HERE / "proteins_tried.md"     # what was tried on each set, written by hand beside the measurements


def composition(inputs: np.ndarray) -> np.ndarray:
    """Amino-acid (20) and dipeptide (400) composition of each row of token ids (0 = padding; X, B, Z, U, O
    and padding are left out of both counts)."""
    rows = len(inputs)
    known = (inputs >= 1) & (inputs <= LETTERS)
    single = np.zeros((rows, LETTERS), dtype=np.float32)
    np.add.at(single, (np.nonzero(known)[0], inputs[known] - 1), 1.0)
    pairs = known[:, :-1] & known[:, 1:]
    pair_ids = (inputs[:, :-1] - 1) * LETTERS + (inputs[:, 1:] - 1)
    double = np.zeros((rows, LETTERS * LETTERS), dtype=np.float32)
    np.add.at(double, (np.nonzero(pairs)[0], pair_ids[pairs]), 1.0)
    return np.hstack([single / np.maximum(single.sum(1, keepdims=True), 1),
                      double / np.maximum(double.sum(1, keepdims=True), 1)])


def residue_windows(inputs: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """For every real residue (row-major), the token ids of the window of 2*WINDOW+1 residues around it."""
    padded = np.pad(inputs, ((0, 0), (WINDOW, WINDOW)))
    rows, cols = np.nonzero(masks)
    return np.stack([padded[rows, cols + offset] for offset in range(2 * WINDOW + 1)], axis=1)


def features(split: dict, residue: bool, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A split's baseline features and labels: per sequence, or per residue (window composition; at most
    `limit` residues drawn at random, seed 0)."""
    inputs, targets = split["inputs"].numpy(), split["targets"].numpy()
    if not residue:
        return composition(inputs), targets
    masks = split["masks"].numpy()
    windows, labels = residue_windows(inputs, masks), targets[masks]
    if limit is not None and len(windows) > limit:
        keep = np.random.default_rng(0).choice(len(windows), limit, replace=False)
        windows, labels = windows[keep], labels[keep]
    return composition(windows), labels


def scores(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Accuracy, MCC, AUROC and average precision (of class 1) of binary predictions."""
    from sklearn.metrics import accuracy_score, average_precision_score, matthews_corrcoef, roc_auc_score

    predicted = probabilities.argmax(axis=1)
    return {"accuracy": accuracy_score(labels, predicted), "mcc": matthews_corrcoef(labels, predicted),
            "auroc": roc_auc_score(labels, probabilities[:, 1]),
            "average_precision": average_precision_score(labels, probabilities[:, 1])}


def baselines(splits: dict, residue: bool) -> dict[str, tuple[dict, float]]:
    """The random forest and the logistic regression on composition: test scores and seconds (fit + predict)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train_x, train_y = features(splits["train"], residue, RESIDUE_ROWS)
    test_x, test_y = features(splits["test"], residue)
    weight = "balanced" if residue else None
    found = {}
    for name, model in (("random forest", RandomForestClassifier(300, min_samples_leaf=2, n_jobs=2, random_state=0,
                                                                 class_weight=weight)),
                        ("logistic regression", make_pipeline(StandardScaler(), LogisticRegression(
                            C=0.1, max_iter=2000, class_weight=weight)))):
        started = time.perf_counter()
        model.fit(train_x, train_y)
        found[name] = (scores(test_y, model.predict_proba(test_x)), time.perf_counter() - started)
    return found


def pyrosys_run(config: Path, seed: int, outdir: Path, splits: dict, residue: bool,
                overrides: list[str]) -> tuple[dict, float]:
    """Train the shipped configuration with one training seed (pyrosys-trainer, in this process), then score
    its best model's test predictions; the seconds are the trainer's whole run."""
    import torch

    from pyrosys.models.model import Model
    from pyrosys.workers import trainer

    name = f"{config.stem}_seed{seed}"
    started = time.perf_counter()
    status = trainer.main(["--c", str(config), "--outdir", str(outdir), "--run-name", name,
                           "--set", f"training.seed={seed}", *overrides])
    seconds = time.perf_counter() - started
    if status != 0:
        raise RuntimeError(f"pyrosys-trainer exited with {status} on {config}")
    model = Model.load(outdir / name / "models" / "best")
    test = splits["test"]
    with torch.no_grad():
        probabilities = torch.cat([model.predict_proba(test["inputs"][i:i + 256], masks=test["masks"][i:i + 256])
                                   for i in range(0, len(test["inputs"]), 256)])
    if residue:
        return scores(test["targets"][test["masks"]].numpy(), probabilities[test["masks"]].numpy()), seconds
    return scores(test["targets"].numpy(), probabilities.numpy()), seconds


def measure_set(name: str, seeds: int, outdir: Path, overrides: list[str]) -> dict:
    """One set: its split, the baselines, and the shipped configuration over `seeds` training seeds."""
    from pyrosys.problems.benchmark import SETS, ProteinBenchmark

    config = CONFIGS / f"{name}.yaml"
    problem_params = yaml.safe_load(config.read_text())["problem"]
    problem = ProteinBenchmark.create({k: v for k, v in problem_params.items() if k != "name"})
    splits = problem.load_splits()
    residue = SETS[name].task.startswith("residue")
    runs = [pyrosys_run(config, seed, outdir, splits, residue, overrides) for seed in range(seeds)]
    return {"name": name, "task": SETS[name].task, "seed": problem.params["seed"], "source": SETS[name].source,
            "sizes": [len(splits[part]["targets"]) for part in ("train", "val", "test")],
            "positions": int(sum(int(splits[p]["masks"].sum()) for p in splits)) if residue else None,
            "baselines": baselines(splits, residue), "runs": runs}


def metric_of(measured: dict) -> str:
    """The metric a set is compared by: accuracy for the (near-)balanced sequence sets, MCC for residue sets."""
    return "mcc" if measured["task"].startswith("residue") else "accuracy"


def table(results: list[dict]) -> list[str]:
    """The Markdown table: one row a set."""
    lines = ["| set | task | size (train/val/test) | split seed | metric | PyroSys (mean ± std, n) | random forest | "
             "logistic regression | time PyroSys / RF / LR (s) | PyroSys ≥ RF |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for found in results:
        metric = metric_of(found)
        values = [run[0][metric] for run in found["runs"]]
        mean = statistics.mean(values)
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        forest, logistic = (found["baselines"][k] for k in ("random forest", "logistic regression"))
        extra = "" if metric == "accuracy" else f" (AUROC {statistics.mean(r[0]['auroc'] for r in found['runs']):.3f})"
        mcc = f"; MCC {statistics.mean(r[0]['mcc'] for r in found['runs']):.3f}" if metric == "accuracy" else ""
        sizes = "/".join(map(str, found["sizes"])) + (f" ({found['positions']} residues)" if found["positions"] else "")
        lines.append(f"| {found['name']} | {found['task']} | {sizes} | {found['seed']} | {metric} | "
                     f"{mean:.3f} ± {spread:.3f} (n={len(values)}){mcc}{extra} | "
                     f"{forest[0][metric]:.3f}" + (f"; MCC {forest[0]['mcc']:.3f}" if mcc else "") + " | "
                     f"{logistic[0][metric]:.3f}" + (f"; MCC {logistic[0]['mcc']:.3f}" if mcc else "") + " | "
                     f"{statistics.mean(r[1] for r in found['runs']):.0f} / {forest[1]:.0f} / {logistic[1]:.0f} | "
                     f"{'yes' if mean >= forest[0][metric] else '**no**'} |")
    return lines


def throughput_section() -> list[str]:
    """The token-budget throughput section of benchmarks/protein_throughput.py, where that file exists."""
    if not (HERE / "protein_throughput.py").is_file():
        return []
    import protein_throughput

    return ["", protein_throughput.section()]


def main(argv: list[str] | None = None) -> int:
    """Measure the sets asked for, keep their results beside the earlier ones (--results) and write the report
    from all of them after each set, so that an interrupted run keeps what it measured."""
    from pyrosys.problems.benchmark import SETS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default=",".join(SETS), help="comma-separated set names (default: all)")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per set (default 3)")
    parser.add_argument("--out", type=Path, default=HERE / "proteins.md")
    parser.add_argument("--results", type=Path, default=HERE / "proteins.json",
                        help="every set's measurements; a set measured again replaces its earlier ones")
    parser.add_argument("--no-throughput", dest="throughput", action="store_false",
                        help="keep the throughput section of the earlier --results instead of measuring it (~2 min)")
    parser.add_argument("--merge", nargs="*", type=Path, default=[], metavar="RESULTS",
                        help="other runs' result files whose sets replace those in --results (variants tried apart)")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                        help="overrides of every shipped configuration (trying a variant: model.pooling=mean)")
    args = parser.parse_args(argv)
    kept = json.loads(args.results.read_text()) if args.results.is_file() else {}
    for other in args.merge:
        kept.update(json.loads(other.read_text()))
    with tempfile.TemporaryDirectory() as scratch:
        for name in filter(None, args.sets.split(",")):
            started = time.perf_counter()
            found = measure_set(name.strip(), args.seeds, Path(scratch), args.overrides)
            found["command"] = " ".join(["--seeds", str(args.seeds), *(f"--set {o}" for o in args.overrides)])
            found["seconds"] = time.perf_counter() - started
            kept[found["name"]] = found
            args.results.write_text(json.dumps(kept, indent=1))
            write_report(report_lines([kept[n] for n in SETS if n in kept], kept.get(THROUGHPUT)), args.out)
    if args.throughput:
        kept[THROUGHPUT] = throughput_section()
    args.results.write_text(json.dumps(kept, indent=1))        # with the merged files' sets
    print(write_report(report_lines([kept[n] for n in SETS if n in kept], kept.get(THROUGHPUT)), args.out))
    return 0


def report_lines(results: list[dict], throughput: list[str] | None) -> list[str]:
    """proteins.md: header, how it was measured, the table, what was tried, and the throughput section."""
    import torch  # noqa: F401 - its version goes in the header

    runs = "; ".join(f"{r['name']} {r['command']} ({r['seconds']:.0f} s)" for r in results)
    return [*header("PyroSys on real protein benchmark sets", f"`benchmarks/proteins.py` per set: {runs}."), "",
            *PREAMBLE, "", *table(results), "", *TRIED.read_text().splitlines(), *(throughput or [])]


if __name__ == "__main__":
    raise SystemExit(main())
