"""pyrosys-predictor: raw files in, the same predictions as the trained model on the problem's own data."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from pyrosys.models.model import Model
from pyrosys.problems.protein import TOKEN
from pyrosys.workers import predictor, trainer

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SHORT = ["--set", "training.terminal_conditions.epoch_limit=1", "training.trainer.enable_progress_bar=false",
         "training.trainer.limit_train_batches=3", "training.curriculum_learning=null"]


def train(config: str, folder: Path, *extra: str) -> Path:
    assert trainer.main(["--c", str(CONFIGS / config), "--outdir", str(folder), *SHORT, *extra]) == 0
    (run,) = [status.parent for status in folder.glob("*/*/*/status.json")]
    return run


def predict(model: Path, inputs: Path, output: Path) -> list[dict]:
    assert predictor.main(["--m", str(model), "--input", str(inputs), "--output", str(output)]) == 0
    with open(output, newline="") as stream:
        return list(csv.DictReader(stream))


def test_tabular_csv_of_raw_features_gives_the_model_answers(tmp_path):
    from sklearn.datasets import load_breast_cancer

    run = train("tabular/breast_cancer.yaml", tmp_path / "runs")
    data = load_breast_cancer()
    table = tmp_path / "patients.csv"
    with open(table, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["id", *data.feature_names])
        writer.writerows([[f"p{i}", *row] for i, row in enumerate(data.data[:20])])
    rows = predict(run / "models" / "best", table, tmp_path / "out.csv")
    model = Model.load(run / "models" / "best")
    standardize = model.data_definitions["inputs"]["standardize"]
    inputs = (torch.tensor(data.data[:20], dtype=torch.float32) - torch.tensor(standardize["mean"]).float()) \
        / torch.tensor(standardize["std"]).float()
    expected = model.predict_proba(inputs)[:, 1]
    assert [r["id"] for r in rows] == [f"p{i}" for i in range(20)]
    assert np.allclose([float(r["p_benign"]) for r in rows], expected.numpy(), atol=1e-5)
    assert {r["prediction"] for r in rows} <= {"malignant", "benign"}


def test_raw_digit_images_in_npy_and_a_checkpoint_as_the_model(tmp_path):
    from sklearn.datasets import load_digits

    run = train("digits/lenet5.yaml", tmp_path / "runs")
    images = load_digits().images[:15]
    np.save(tmp_path / "images.npy", images)
    rows = predict(run / "models" / "best.ckpt", tmp_path / "images.npy", tmp_path / "out.csv")
    model = Model.load(run / "models" / "best")
    expected = model.classify(torch.tensor(images / 16.0, dtype=torch.float32).unsqueeze(1))
    assert [int(r["prediction"]) for r in rows] == expected.tolist()
    assert len(rows[0]) == 12          # id, prediction, ten probabilities


def test_protein_fasta_regression_is_put_back_on_the_label_scale(tmp_path, write):
    run = train("protein/gravy_regression.yaml", tmp_path / "runs")
    fasta = write("query.fasta", ">q1\nIIIIVVVVLLLL\n>q2\nDDDEEEKKKRRR\n")
    rows = predict(run / "models" / "best", fasta, tmp_path / "out.csv")
    assert [r["id"] for r in rows] == ["q1", "q2"]
    assert float(rows[0]["prediction"]) > float(rows[1]["prediction"])   # hydrophobic above charged


def test_recall_sequences_and_autoencoder_codes(tmp_path):
    run = train("recall/serial_recall.yaml", tmp_path / "recall", "problem.episodes=3", "model.hidden_size=16")
    np.save(tmp_path / "seq.npy", np.zeros((2, 6, 10), dtype=np.float32))
    rows = predict(run / "models" / "best", tmp_path / "seq.npy", tmp_path / "out.csv")
    assert len(rows[0]["prediction"].split()) == 6 and len(rows[0]["prediction"].split()[0]) == 8
    run = train("digits/autoencoder.yaml", tmp_path / "ae")
    np.save(tmp_path / "images.npy", np.zeros((3, 8, 8)))
    rows = predict(run / "models" / "best", tmp_path / "images.npy", tmp_path / "codes.csv")
    assert set(rows[0]) == {"id", "reconstruction_mse", *[f"code_{i}" for i in range(8)]}


@pytest.mark.parametrize("name, content, message", [
    ("missing.csv", None, "does not exist"),
    ("wrong.csv", "id,a,b\n1,2,3\n", "lacks the feature column"),
    ("wrong.npy", np.zeros((2, 5)), "shape [5]"),
    ("seqs.fasta", ">a\nMKV\n", "cannot take a .fasta file"),
])
def test_inputs_that_do_not_fit_the_model_are_config_errors(tmp_path, capsys, name, content, message):
    run = train("tabular/breast_cancer.yaml", tmp_path / "runs")
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content)
    elif content is not None:
        np.save(path, content)
        path = path.with_suffix(".npy")
    status = predictor.main(["--m", str(run / "models" / "best"), "--input", str(path)])
    error = capsys.readouterr().err
    assert status == 2 and message in error and "Traceback" not in error


TERMS = """id,sequence,terms,split
a,MKKLLVVAAG,GO:0005515;GO:0003677,train
b,MKKRRVVAAG,GO:0005515,train
c,DDEEAAGGLL,GO:0003677;GO:0016020,train
d,DDEEWWGGLL,GO:0016020,train
e,MKKLLWWAAG,GO:0005515;GO:0003677,train
f,DDEEAAKKLL,GO:0016020,train
g,MKKLLVVAAGG,GO:0005515;GO:0000001,val
h,DDEEAAGGLW,GO:0016020,val
i,MKKLLVVAWG,GO:0005515,test
j,DDEEWWGGLK,GO:0003677;GO:0016020,test
k,MKKRRVVAGG,GO:0005515,test
l,DDEEAWGGLL,GO:0016020,val
"""
TERMS_RUN = """\
problem: {name: ProteinSequences, path: terms.csv, task: multilabel, label_column: terms, split_column: split,
          batch_size: 4}
model: {name: ProteinCNN, channels: [8], embedding_dim: 8}
training:
  seed: 1
  optimizer: {name: Adam, lr: 0.01}
  terminal_conditions: {epoch_limit: 2}
  trainer: {enable_progress_bar: false}
logging: {mlflow: null, tensorboard: null}
"""


def test_multilabel_proteins_train_end_to_end_and_the_bundle_predicts_term_names(tmp_path, write):
    write("terms.csv", TERMS)
    assert trainer.main(["--c", str(write("exp.yaml", TERMS_RUN)), "--outdir", str(tmp_path / "runs")]) == 0
    (run,) = [status.parent for status in (tmp_path / "runs").glob("*/*/*/status.json")]
    summary = (next(run.glob("testing_*")) / "testing_set_agg_statistics.yaml").read_text()
    assert all(f"{name}:" in summary for name in ("f1_micro", "f1_macro", "average_precision", "fmax"))
    model = Model.load(run / "models" / "best")
    assert model.data_definitions["targets"]["terms"] == ["GO:0003677", "GO:0005515", "GO:0016020"]
    rows = predict(run / "models" / "best", write("query.fasta", ">q1\nMKKLLVVAAG\n>q2\nDDEEWWGGLL\n"),
                   tmp_path / "out.csv")
    assert list(rows[0]) == ["id", "prediction", "p_GO:0003677", "p_GO:0005515", "p_GO:0016020"]
    ids = torch.tensor([[TOKEN[letter] for letter in sequence] for sequence in ("MKKLLVVAAG", "DDEEWWGGLL")])
    expected = model.predict_proba(ids, masks=ids != 0)
    for row, probabilities in zip(rows, expected.tolist()):
        assert [float(row[f"p_{t}"]) for t in model.data_definitions["targets"]["terms"]] == \
            pytest.approx(probabilities, abs=1e-5)
        assert row["prediction"] == ";".join(t for t, p in zip(model.data_definitions["targets"]["terms"],
                                                                probabilities) if p >= 0.5)
