"""Every built-in problem trains for one short epoch with a model that fits it; misfits are refused."""
from __future__ import annotations

import json

import torch
from pathlib import Path

import pytest

from pyrosys.workers import trainer

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SHORT = ["--set", "training.terminal_conditions.epoch_limit=1", "training.trainer.enable_progress_bar=false",
         "training.trainer.limit_train_batches=3", "training.trainer.limit_val_batches=2",
         "training.trainer.limit_test_batches=2", "training.curriculum_learning=null"]


@pytest.mark.parametrize("config, extra", [
    ("digits/lenet5.yaml", []),
    ("digits/mlp.yaml", []),
    ("digits/autoencoder.yaml", []),
    ("digits/lenet5.yaml", ["model.name=SimpleCNN", "model.channels=[8]"]),
    ("tabular/breast_cancer.yaml", []),
    ("tabular/diabetes.yaml", []),
    ("recall/serial_recall.yaml", ["problem.episodes=3"]),
    ("recall/reverse_recall.yaml", ["problem.episodes=3", "model.cell=gru"]),
    ("protein/gravy_regression.yaml", []),
    ("protein/charge_classification.yaml", ["model={name: TransformerClassifier, layers: 1}"]),
    ("protein/charge_classification.yaml", ["model={name: SequenceRNN, bidirectional: true}"]),
    ("manifest/wine.yaml", []),
    ("synthetic/mlp.yaml", ["problem.samples=600"]),
])
def test_builtin_problem_trains_one_short_epoch(config, extra, tmp_path, capsys):
    argv = ["--c", str(CONFIGS / config), "--outdir", str(tmp_path), *SHORT, *extra]
    status = trainer.main(argv)
    assert status == 0, capsys.readouterr().err[-3000:]
    (status_file,) = tmp_path.glob("*/*/*/status.json")
    assert json.loads(status_file.read_text())["status"] == "completed"


@pytest.mark.parametrize("config, override, words", [
    ("protein/charge_classification.yaml", "model={name: LeNet5}",
     ["LeNet5 reads image inputs", "the problem ProteinSequences gives tokens inputs"]),
    ("digits/mlp.yaml", "model={name: SequenceRNN}", ["SequenceRNN reads", "Digits gives image inputs"]),
    ("recall/serial_recall.yaml", "model={name: MLP}", ["MLP reads vector or image inputs", "sequence inputs"]),
    ("tabular/diabetes.yaml", "training.curriculum_learning={interval: 5}", ["Diabetes has no curriculum"]),
])
def test_a_model_or_setting_that_cannot_fit_the_problem_is_refused_before_training(config, override, words,
                                                                                  tmp_path, capsys):
    status = trainer.main(["--c", str(CONFIGS / config), "--outdir", str(tmp_path / "out"), "--set", override])
    error = capsys.readouterr().err
    assert status == 2, error
    for word in words:
        assert word in error
    assert not (tmp_path / "out").exists()


def test_dry_run_does_one_batch_and_writes_nothing(tmp_path, capsys):
    status = trainer.main(["--c", str(CONFIGS / "digits/lenet5.yaml"), "--dry-run", "--outdir", str(tmp_path / "o")])
    printed = capsys.readouterr().out
    assert status == 0 and "Trainable params" in printed and "dry run: LeNet5 on Digits" in printed
    assert not (tmp_path / "o").exists()


def test_relative_data_paths_are_taken_from_their_yaml_file(tmp_path, capsys):
    status = trainer.main(["--c", str(CONFIGS / "manifest/wine.yaml"), "--print-config"])
    printed = capsys.readouterr().out
    assert status == 0 and f"path: {CONFIGS / 'manifest/data/wine_manifest.csv'}" in printed


def test_model_load_adapts_trained_weights_and_freezes_from_yaml(tmp_path, write, capsys):
    first = ["--c", str(CONFIGS / "digits/mlp.yaml"), "--outdir", str(tmp_path / "a"), *SHORT]
    assert trainer.main(first) == 0
    (bundle,) = (tmp_path / "a").glob("*/*/*/models/best")
    config = write("transfer.yaml", f"""
        default_configs: {CONFIGS / 'digits/mlp.yaml'}
        model:
          load: {{from: {bundle}, modules: [encoder], freeze: [encoder]}}
        """)
    assert trainer.main(["--c", str(config), "--outdir", str(tmp_path / "b"), *SHORT]) == 0
    from pyrosys.models.model import Model

    (run,) = [status.parent for status in (tmp_path / "b").glob("*/*/*/status.json")]
    before, after = Model.load(bundle), Model.load(run / "models" / "best")
    assert torch.equal(before.models["encoder"][1].weight, after.models["encoder"][1].weight)
    assert not torch.equal(before.models["head"][-1].weight, after.models["head"][-1].weight)
    status = json.loads((run / "status.json").read_text())
    assert status["weights_loaded"]["summary"].startswith("adapter: 4 tensors copied")
    assert "adapter: 4 tensors copied" in (run / "pyrosys.log").read_text()


@pytest.mark.parametrize("config, override, words", [
    ("digits/mlp.yaml", "training.loss=mse", ["the loss 'mse' suits", "Digits is a classification task"]),
    ("tabular/diabetes.yaml", "training.loss=cross_entropy", ["'cross_entropy' suits classification",
                                                                "Diabetes is a regression task"]),
    ("tabular/diabetes.yaml", "training.metrics=[accuracy]", ["the metric 'accuracy'", "regression task"]),
])
def test_an_objective_that_cannot_compare_outputs_with_the_targets_is_refused(config, override, words, tmp_path,
                                                                             capsys):
    status = trainer.main(["--c", str(CONFIGS / config), "--outdir", str(tmp_path / "out"), "--set", override])
    error = capsys.readouterr().err
    assert status == 2 and all(word in error for word in words), error
    assert not (tmp_path / "out").exists()


def test_a_bundle_trained_on_other_inputs_is_refused_naming_both_sides(tmp_path, write, capsys):
    assert trainer.main(["--c", str(CONFIGS / "tabular/breast_cancer.yaml"), "--outdir", str(tmp_path / "a"),
                         *SHORT]) == 0
    (bundle,) = (tmp_path / "a").glob("*/*/*/models/best")
    config = write("transfer.yaml", f"""
        default_configs: {CONFIGS / 'digits/mlp.yaml'}
        model: {{hidden_sizes: [32], load: {{from: {bundle}}}}}
        """)
    status = trainer.main(["--c", str(config), "--outdir", str(tmp_path / "b"), *SHORT])
    error = capsys.readouterr().err
    assert status == 2, error
    assert "has shape [32, 30]" in error and "on the problem Digits needs [32, 64]" in error
    assert not (tmp_path / "b").exists()


def test_bad_data_stops_the_trainer_before_any_experiment_folder(tmp_path, write, capsys):
    fasta = write("bad.fasta", ">P1 label=a\nMKTL\n>P2 label=b\nMKJV\n")
    config = write("exp.yaml", f"""
        default_configs: {CONFIGS / 'protein/charge_classification.yaml'}
        problem: {{path: {fasta.name}, label_column: label}}
        """)
    status = trainer.main(["--c", str(config), "--outdir", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert status == 2 and f"in {fasta}" in error and "line 4, column 3: 'J'" in error
    assert not (tmp_path / "out").exists()


def test_curriculum_with_must_finish_trains_until_the_full_length(tmp_path):
    argv = ["--c", str(CONFIGS / "recall/serial_recall.yaml"), "--outdir", str(tmp_path),
            "--set", "training.trainer.enable_progress_bar=false", "training.terminal_conditions.epoch_limit=1",
            "problem.episodes=10", "problem.max_sequence_length=6", "model.hidden_size=8",
            "validation.problem.episodes=1", "testing.problem.episodes=1",
            "training.curriculum_learning={initial_max_sequence_length: 2, interval: 10, must_finish: true}"]
    assert trainer.main(argv) == 0
    (status,) = tmp_path.glob("*/*/*/status.json")
    assert json.loads(status.read_text())["epoch"] == 4        # 40 episodes for lengths 2 -> 6, 10 an epoch
