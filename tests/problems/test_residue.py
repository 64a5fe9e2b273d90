"""Residue-level tasks: one label per residue read from tables and FASTA, per-position targets, masked
losses and metrics that never count padding, class weights from the training split, and each refusal."""
from __future__ import annotations

import pytest
import torch

from pyrosys.configuration.constraints import check_objective_names
from pyrosys.errors import ConfigError
from pyrosys.models.protein_cnn import ProteinCNN
from pyrosys.models.sequence_rnn import SequenceRNN
from pyrosys.models.transformer_classifier import TransformerClassifier
from pyrosys.objectives import LOSSES, METRICS, Objective, check_task, class_weights
from pyrosys.problems.protein import ProteinSequences

def problem(path, **params):
    return ProteinSequences.create({"path": str(path), "seed": 0, "fractions": [1, 1, 1],
                                    "task": "residue_classification", "split_column": "split", **params})


def test_table_labels_comma_separated_or_as_a_string_become_per_position_targets(write):
    path = write("res.csv", "id,sequence,label,split\na,MKVL,\"0,0,1,0\",train\nb,MKV,001,train\n"
                            "c,MK,10,val\nd,MKVLA,00011,test\n")
    p = problem(path)
    p.setup()
    targets = p.data_definitions["targets"]
    assert targets["per_position"] and targets["shape"] == [5] and targets["classes"] == ["0", "1"]
    assert targets["class_counts"] == [5, 2]                  # the training split's residues: a and b
    assert p.splits["train"].fields["targets"].tolist() == [[0, 0, 1, 0, 0], [0, 0, 1, 0, 0]]
    assert p.splits["test"].fields["targets"].tolist() == [[0, 0, 0, 1, 1]]
    assert p.identifiers == {"train": ["a", "b"], "val": ["c"], "test": ["d"]}


def test_fasta_header_labels_truncated_with_their_sequence(write):
    path = write("res.fasta", ">P1 label=0110 split=train\nMKVL\n>P2 label=1,0,2 split=val\nMKV\n"
                              ">P3 label=21 split=test\nMK\n")
    p = problem(path, max_length=3, split_column=None, fractions=[1, 1, 1], classes=[0, 1, 2])
    p.setup()
    everything = torch.cat([p.splits[s].fields["targets"] for s in ("train", "val", "test")])
    assert p.data_definitions["targets"]["shape"] == [3]
    assert sorted(everything.tolist()) == [[0, 1, 1], [1, 0, 2], [2, 1, 0]]


def test_residue_regression_standardises_with_the_training_residues_only(write):
    path = write("res.csv", "sequence,label,split\nMKV,\"1,2,3\",train\nMK,\"10,20\",test\n")
    p = problem(path, task="residue_regression")
    p.setup()
    assert p.data_definitions["targets"]["standardize"]["mean"] == [2.0]
    train = p.splits["train"].fields["targets"]
    assert torch.allclose(train, torch.tensor([[-1.224745, 0.0, 1.224745]]), atol=1e-5)


@pytest.mark.parametrize("text, params, fragments", [
    ("sequence,label\nMKV,01\nMK,01\n", {}, ["line 2, column 'label'", "2 residue labels", "3 residues long"]),
    ("sequence,label\nMKV,\"0,1,0,0\"\n", {}, ["line 2", "4 residue labels", "3 residues long"]),
    ("sequence,label\nMKV,010\nMK,02\n", {"classes": [0, 1]}, ["line 3", "residue 2 of row 3", "'2'",
                                                                "declared classes 0, 1"]),
    ("sequence,label\nMKV,\"1,x,2\"\n", {"task": "residue_regression"}, ["line 2", "'x' at residue 2"]),
])
def test_bad_residue_labels_are_refused_naming_file_line_and_lengths(write, text, params, fragments):
    path = write("bad.csv", text)
    with pytest.raises(ConfigError) as caught:
        problem(path, split_column=None, **params).setup()
    assert caught.value.file == str(path)
    for fragment in fragments:
        assert fragment in caught.value.message, (fragment, caught.value.message)


def test_a_fasta_label_count_is_refused_naming_the_header_key(write):
    path = write("bad.fasta", ">P1 label=010\nMKVL\n")
    with pytest.raises(ConfigError, match="line 1, header key 'label=': P1 has 3 residue labels but its sequence "
                                          "is 4 residues long"):
        problem(path, split_column=None).setup()


def test_balanced_class_weights_are_n_over_k_times_each_class_count():
    target = {"num_classes": 3, "classes": ["a", "b", "c"], "class_counts": [60, 30, 10]}
    assert torch.allclose(class_weights("balanced", target), torch.tensor([100 / 180, 100 / 90, 100 / 30]))
    assert class_weights([1, 4, 2], target).tolist() == [1.0, 4.0, 2.0]
    with pytest.raises(ConfigError, match="gives 2 weights, but the targets have 3 classes \\(a, b, c\\)"):
        class_weights([1, 2], target)


def test_masked_loss_and_metrics_ignore_padding_as_computed_by_hand():
    # one protein of 3 residues (truth 0, 1, 1) padded to 4; the padding is predicted wrong with confidence
    outputs = torch.tensor([[[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [9.0, -9.0]]])
    batch = {"targets": torch.tensor([[0, 1, 1, 1]]), "masks": torch.tensor([[True, True, True, False]])}
    definitions = {"targets": {"task": "residue_classification", "num_classes": 2, "class_counts": [1, 2]}}
    objective = Objective("masked_cross_entropy", ("accuracy", "mcc", "f1", "average_precision"))
    metrics = objective.metrics(definitions)
    values = {name: float(v) for name, v in metrics(*objective.metric_inputs(outputs, batch)).items()}
    # predictions 0, 1, 0 against 0, 1, 1: accuracy 2/3; positive-class precision 1, recall 1/2, F1 2/3;
    # MCC (tp 1, tn 1, fp 0, fn 1) = 1 / sqrt(1 * 2 * 1 * 2) = 1/2; the positives' p1 (0.73, 0.27) both
    # rank above the negative's (0.12): AP 1
    assert values == pytest.approx({"accuracy": 2 / 3, "f1": 2 / 3, "mcc": 0.5, "average_precision": 1.0})
    logp = outputs.log_softmax(-1)[0]
    expected = -(logp[0, 0] + logp[1, 1] + logp[2, 1]) / 3
    assert torch.isclose(objective.loss(outputs, batch), expected)
    weighted = Objective("masked_cross_entropy", class_weights="balanced")
    weighted.weigh(definitions)                             # weights 3/2 and 3/4: n / (K * n_c)
    expected = -(1.5 * logp[0, 0] + 0.75 * logp[1, 1] + 0.75 * logp[2, 1]) / (1.5 + 0.75 + 0.75)
    assert torch.isclose(weighted.loss(outputs, batch), expected)


@pytest.mark.parametrize("logits, truth, expected", [
    ([[2.0, 0.0]] * 99 + [[1.0, 0.0]], [0] * 99 + [1], 0.0),           # never predicts the rare class: MCC 0
    ([[2.0, 0.0]] * 98 + [[0.0, 1.0]] * 2, [0] * 99 + [1], (1 * 98 - 1 * 0) / (2 * 1 * 98 * 99) ** 0.5),
])
def test_mcc_is_zero_where_undefined_and_the_same_per_batch_and_per_phase(logits, truth, expected):
    objective = Objective("masked_cross_entropy", ("mcc",))
    metrics = objective.metrics({"targets": {"task": "residue_classification", "num_classes": 2}})
    batch = {"targets": torch.tensor([truth]), "masks": torch.ones(1, len(truth), dtype=torch.bool)}
    inputs = objective.metric_inputs(torch.tensor([logits]), batch)
    assert float(metrics.batch_values(*inputs)["mcc"]) == pytest.approx(expected, abs=1e-6)
    metrics.update(*inputs)
    assert float(metrics.compute()["mcc"]) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("loss, key, fragment", [
    ({"name": "cross_entropy", "weights": "balanced"}, "training.loss.weights", "no option 'weights'"),
    ({"class_weights": "balanced"}, "training.loss.name", "names no loss"),
    ({"name": "cross_entropy", "class_weights": "even"}, "training.loss.class_weights", "not 'even'"),
    ({"name": "cross_entropy", "class_weights": [1, -1]}, "training.loss.class_weights", "positive numbers"),
    ({"name": "mse", "class_weights": "balanced"}, "training.loss.class_weights", "not of 'mse'"),
    ({"name": "cros_entropy"}, "training.loss", "no loss named 'cros_entropy'"),
])
def test_a_loss_mapping_is_checked_before_torch_with_clear_refusals(loss, key, fragment):
    with pytest.raises(ConfigError) as caught:
        check_objective_names(loss, [], losses=LOSSES, metric_names=METRICS, file="exp.yaml")
    assert caught.value.key == key and fragment in caught.value.message


def test_unmasked_losses_are_refused_for_residue_tasks():
    with pytest.raises(ConfigError, match="would count the padding") as caught:
        check_task("cross_entropy", ["accuracy"], "residue_classification", "the problem P")
    assert "masked_cross_entropy" in caught.value.hint
    check_task("masked_cross_entropy", ["accuracy", "mcc", "average_precision"], "residue_classification", "P")


@pytest.mark.parametrize("model, params", [(ProteinCNN, {"channels": [4]}),
                                           (SequenceRNN, {"hidden_size": 4, "bidirectional": True}),
                                           (TransformerClassifier, {"dim": 4, "heads": 2, "layers": 1})])
@pytest.mark.parametrize("task, extra, shape", [("residue_classification", {"num_classes": 3}, [2, 5, 3]),
                                                ("residue_regression", {}, [2, 5])])
def test_protein_models_answer_per_residue(model, params, task, extra, shape):
    definitions = {"inputs": {"kind": "tokens", "shape": [5], "vocabulary": ["<pad>", "A", "C"]},
                   "targets": {"task": task, "shape": [5], "per_position": True, **extra}}
    inputs = torch.tensor([[1, 2, 1, 0, 0], [2, 2, 1, 1, 2]])
    outputs = model.create(params, definitions).predict(inputs, masks=inputs != 0)
    assert list(outputs.shape) == shape
