"""Test: a model on its problem's test split -> statistics, a summary and (for classifiers) a confusion
matrix in a testing folder (residue tasks: also one row of statistics per test protein); repeated tests
with their mean and std; and the configuration a checkpoint is tested with (its own, with the tester's
files and overrides merged over it by the same rules as the trainer's)."""
from __future__ import annotations

import csv
import io
import statistics
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from pyrosys.app_state import AppState
from pyrosys.atomic import write_text_atomic
from pyrosys.callbacks.statistics import CsvSink, StatisticsCollector
from pyrosys.configuration.loading import Configuration, dump_yaml, leaf_paths, load_configuration, value_at
from pyrosys.errors import ConfigError
from pyrosys.factory import check_class_path
from pyrosys.folders.experiment import TestingFolder
from pyrosys.objectives import RESIDUE_TASKS
from pyrosys.tracking.plots import plot_confusion
from pyrosys.workers.pipeline.resolve import PHASE_SECTIONS, translate_aliases

CHECKPOINT = "the checkpoint"      # the source of the keys a checkpoint's own configuration set


def test_model(model: Any, problem: Any, parent: Path, name: str | None = None) -> dict:
    """Run the test phase into `parent/testing_<time>/` (or `parent/<name>/`); the whole-set statistics."""
    testing = TestingFolder.create(parent, name)
    collector = StatisticsCollector([CsvSink({"testing": testing.statistics_file})])
    trainer = pl.Trainer(accelerator=AppState().accelerator, devices=1, logger=False, enable_checkpointing=False,
                         enable_model_summary=False, enable_progress_bar=False, callbacks=[collector])
    trainer.test(model, datamodule=problem, verbose=False)
    results = dict(collector.results["test"])
    if model.task in RESIDUE_TASKS:
        results.update(per_protein_statistics(model, problem, testing))
    write_text_atomic(testing.summary_file, dump_yaml(results))
    write_text_atomic(testing.configuration_file, dump_yaml(model.configuration or {}))
    if model.task in ("classification", "residue_classification"):
        confusion_matrix(model, problem, testing)
    return {**results, "folder": str(testing.folder)}


def confusion_matrix(model: Any, problem: Any, testing: TestingFolder) -> list[list[int]]:
    """Count (true, predicted) class pairs over the test split; write confusion_matrix.csv and .png."""
    targets = model.data_definitions["targets"]
    classes = targets.get("classes") or [str(i) for i in range(targets["num_classes"])]
    counts = torch.zeros(len(classes), len(classes), dtype=torch.long)
    model.eval()
    with torch.no_grad():
        for batch in problem.loader("test"):
            predicted, truth = model.forward_batch(batch).argmax(dim=-1), batch["targets"]
            if targets.get("per_position"):                  # residue labels: the padding is no residue
                predicted, truth = predicted[batch["masks"]], truth[batch["masks"]]
            predicted, truth = predicted.reshape(-1), truth.reshape(-1)
            counts += torch.bincount(truth * len(classes) + predicted, minlength=len(classes) ** 2).reshape(
                len(classes), len(classes))
    matrix = counts.tolist()
    lines = ["true \\ predicted," + ",".join(classes)] + [",".join([name, *map(str, row)])
                                                         for name, row in zip(classes, matrix)]
    table, picture = testing.confusion_files
    write_text_atomic(table, "\n".join(lines) + "\n")
    plot_confusion(matrix, classes, picture, f"{type(model).__name__} on {problem.name}: test confusion matrix")
    return matrix


def per_protein_statistics(model: Any, problem: Any, testing: TestingFolder) -> dict:
    """Residue tasks: one row of statistics per test protein (its residues alone) in testing_per_protein.csv;
    returns the mean of each statistic over the proteins, as protein_<name>."""
    split, size = problem.phase_split("test"), int(problem.phases["test"]["batch_size"])
    names = getattr(problem, "identifiers", {}).get(problem.phases["test"]["split"]) or \
        [str(i + 1) for i in range(len(split))]
    rows = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(split), size):
            batch = split.__getitems__(range(start, min(start + size, len(split))))
            outputs = model.forward_batch(batch)
            for offset, keep in enumerate(batch["masks"]):
                rows.append({"id": names[start + offset], "length": int(keep.sum()),
                             **protein_row(model.task, outputs[offset][keep], batch["targets"][offset][keep])})
    with io.StringIO() as text:
        writer = csv.DictWriter(text, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(testing.per_protein_file, text.getvalue())
    measured = [name for name in rows[0] if name not in ("id", "length", "positives", "predicted_positives")]
    return {f"protein_{name}": statistics.fmean(row[name] for row in rows) for name in measured}


def protein_row(task: str, outputs: torch.Tensor, truth: torch.Tensor) -> dict:
    """One protein's statistics over its residues: positives (class index 1), predicted positives, accuracy,
    MCC and F1 (of the positive class; more classes: macro over those the protein has or is predicted to
    have) for classes; MSE and MAE for values."""
    if task == "residue_regression":
        error = outputs.float() - truth.float()
        return {"mse": round(float(error.pow(2).mean()), 6), "mae": round(float(error.abs().mean()), 6)}
    classes, predicted = outputs.shape[-1], outputs.argmax(dim=-1)
    row = {"positives": int((truth == 1).sum()), "predicted_positives": int((predicted == 1).sum())} \
        if classes == 2 else {}
    from sklearn.metrics import f1_score, matthews_corrcoef    # residue tasks alone pay for its import

    truth, predicted = truth.cpu().numpy(), predicted.cpu().numpy()
    average = {"average": "binary", "pos_label": 1, "labels": [0, 1]} if classes == 2 else \
        {"average": "macro", "labels": sorted(set(truth.tolist()) | set(predicted.tolist()))}   # the classes it has
    with warnings.catch_warnings():          # a protein of one class: MCC 0, said in docs/proteins.md, not warned
        warnings.simplefilter("ignore", UserWarning)
        mcc = float(matthews_corrcoef(truth, predicted))
    f1 = float(f1_score(truth, predicted, zero_division=0, **average))
    return {**row, "accuracy": round(float((predicted == truth).mean()), 6), "mcc": round(mcc, 6),
            "f1": round(f1, 6)}


def repeat_tests(model: Any, problem: Any, folder: Path, repeats: int) -> tuple[dict, Path]:
    """Test `repeats` times (generated problems draw new test samples each time, from seed + repeat) into
    `testing_<time>/repeat_<i>/`, and write the mean and std of every statistic to testing_repeats.yaml."""
    parent = TestingFolder.create(folder)
    base_seed = problem.phases["test"].get("seed") or 0
    runs = []
    for index in range(1, repeats + 1):
        problem.phases["test"]["seed"] = base_seed + index - 1
        runs.append(test_model(model, problem, parent.folder, name=f"repeat_{index}"))
    problem.phases["test"]["seed"] = base_seed
    names = [key for key, value in runs[0].items() if isinstance(value, float)]
    summary = {key: {"mean": statistics.fmean(r[key] for r in runs), "std": statistics.pstdev(r[key] for r in runs),
                     "values": [r[key] for r in runs]} for key in names}
    write_text_atomic(parent.repeats_file, dump_yaml({"repeats": repeats, **summary}))
    return summary, parent.folder


def checkpoint_configuration(checkpoint: dict, source: str, files: list[str], overrides: list[str]) -> Configuration:
    """The checkpoint's configuration with `files` and `overrides` merged over it, as the trainer merges
    its own (a mapping naming another class replaces the old one whole)."""
    tree = checkpoint["pyrosys"].get("configuration")
    if not isinstance(tree, dict):
        raise ConfigError("the checkpoint carries no configuration", file=source, key="--m",
                          hint="Give a checkpoint written by pyrosys-trainer")
    for path in ("problem", *(f"{name}.problem" for name in PHASE_SECTIONS.values())):
        target = value_at(tree, f"{path}._target_")     # a file's class names are checked before any import
        if target is not None:
            check_class_path(target, "problem", file=source, key=f"{path}._target_")
    base = Configuration(tree=tree, sources={leaf: CHECKPOINT for leaf in leaf_paths(tree)}, files=[source])
    return translate_aliases(load_configuration(files, overrides, base=base))
