"""A residue classification run end to end (a dozen tiny proteins, two epochs of ProteinCNN, in process):
trained, tested per residue and per protein, predicted one row per residue; bad inputs exit 2 before
anything is written."""
from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest
import torch
import yaml

from pyrosys.workers import predictor, trainer
from pyrosys.workers.pipeline.test import protein_row

CONFIG = """\
problem: {name: ProteinSequences, path: residues.csv, task: residue_classification, batch_size: 4,
          split_column: split, classes: [0, 1]}
model: {name: ProteinCNN, channels: [8], kernel_size: 3}
training:
  seed: 1
  loss: {name: masked_cross_entropy, class_weights: balanced}
  optimizer: {name: Adam, lr: 0.01}
  terminal_conditions: {epoch_limit: 2}
  trainer: {enable_progress_bar: false}
logging: {mlflow: null, tensorboard: null}
"""


def residues_table(folder: Path) -> Path:
    """Twelve random proteins whose positive residues are K and R (rare, as cleavage sites are)."""
    rng, lines = random.Random(0), ["id,sequence,label,split"]
    for index in range(12):
        sequence = "".join(rng.choice("ACDEFGHIKLMNPQRSTVWY") for _ in range(rng.randint(6, 14)))
        labels = "".join("1" if letter in "KR" else "0" for letter in sequence)
        split = "train" if index < 6 else "val" if index < 9 else "test"
        lines.append(f"p{index},{sequence},{labels},{split}")
    path = folder / "residues.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_residue_classification_trains_tests_per_protein_and_predicts_per_residue(tmp_path):
    residues_table(tmp_path)
    (tmp_path / "exp.yaml").write_text(CONFIG)
    assert trainer.main(["--c", str(tmp_path / "exp.yaml"), "--outdir", str(tmp_path / "runs"),
                         "--run-name", "residues"]) == 0
    run = tmp_path / "runs" / "residues"
    (testing,) = run.glob("testing_*")
    summary = yaml.safe_load((testing / "testing_set_agg_statistics.yaml").read_text())
    assert {"accuracy", "mcc", "auroc", "average_precision", "f1", "protein_accuracy", "protein_mcc"} <= set(summary)
    with open(testing / "testing_per_protein.csv", newline="") as stream:
        proteins = list(csv.DictReader(stream))
    assert [row["id"] for row in proteins] == ["p9", "p10", "p11"]
    assert summary["protein_accuracy"] == pytest.approx(sum(float(r["accuracy"]) for r in proteins) / 3, abs=1e-5)
    confusion = (testing / "confusion_matrix.csv").read_text().splitlines()[1:]
    assert sum(int(n) for line in confusion for n in line.split(",")[1:]) == sum(int(r["length"]) for r in proteins)
    (tmp_path / "new.fasta").write_text(">q1\nMKRL\n>q2\nak\n")
    output = tmp_path / "predictions.csv"
    assert predictor.main(["--m", str(run / "models" / "best"), "--input", str(tmp_path / "new.fasta"),
                           "--output", str(output)]) == 0
    with open(output, newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [(r["id"], r["position"], r["residue"]) for r in rows] == [
        ("q1", "1", "M"), ("q1", "2", "K"), ("q1", "3", "R"), ("q1", "4", "L"), ("q2", "1", "A"), ("q2", "2", "K")]
    assert all(r["prediction"] in ("0", "1") and float(r["p_0"]) + float(r["p_1"]) == pytest.approx(1, abs=1e-5)
               for r in rows)


@pytest.mark.parametrize("edit, table, fragments", [
    (("", ""), "p0,MKV,01,train", ["residues.csv", "line 2", "2 residue labels", "3 residues long"]),
    (("", ""), "p0,MKV,013,train", ["residues.csv", "line 2", "residue 3 of p0", "'3'", "problem.classes"]),
    (("class_weights: balanced", "class_weights: [1, 2, 3]"), "", ["exp.yaml", "gives 3 weights", "2 classes (0, 1)"]),
    (("class_weights: balanced", "class_weight: balanced"), "", ["exp.yaml", "training.loss.class_weight"]),
    (("masked_cross_entropy, class_weights: balanced", "cross_entropy"), "", ["exp.yaml", "would count the padding"]),
])
def test_bad_residue_inputs_exit_2_naming_file_and_line_with_nothing_written(tmp_path, capsys, edit, table,
                                                                             fragments):
    path = residues_table(tmp_path)
    if table:
        path.write_text(path.read_text().replace(path.read_text().splitlines()[1], table))
    (tmp_path / "exp.yaml").write_text(CONFIG.replace(*edit))
    status = trainer.main(["--c", str(tmp_path / "exp.yaml"), "--outdir", str(tmp_path / "runs")])
    error = capsys.readouterr().err.strip()
    assert status == 2 and "\n" not in error and "Traceback" not in error, error
    for fragment in fragments:
        assert fragment in error, (fragment, error)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("logits, truth, expected", [
    ([[1, 0], [1, 0]], [0, 0], {"positives": 0, "predicted_positives": 0, "accuracy": 1.0, "mcc": 0.0, "f1": 0.0}),
    ([[1, 0], [0, 1], [0, 1]], [1, 1, 0], {"positives": 2, "predicted_positives": 2, "accuracy": 1 / 3,
                                           "mcc": -0.5, "f1": 0.5}),
    ([[1, 0, 0], [0, 0, 1]], [0, 2], {"accuracy": 1.0, "mcc": 1.0, "f1": 1.0}),    # class 1 absent: not averaged
])
def test_a_proteins_statistics_are_over_its_residues_with_undefined_mcc_zero(logits, truth, expected):
    row = protein_row("residue_classification", torch.tensor(logits, dtype=torch.float32), torch.tensor(truth))
    assert row == pytest.approx(expected, abs=1e-6)
