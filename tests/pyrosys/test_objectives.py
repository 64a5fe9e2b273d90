"""pyrosys.objectives: losses by name (masked ones ignore padding) and metrics through torchmetrics."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pyrosys.errors import ConfigError
from pyrosys.objectives import LOSSES, Fmax, Objective, SequenceAccuracy, TermAveragePrecision, check_task


def test_plain_losses_match_torch():
    outputs, targets = torch.randn(6, 1), torch.randn(6)
    assert torch.isclose(LOSSES["mse"](outputs, targets, None), F.mse_loss(outputs.squeeze(1), targets))
    assert torch.isclose(LOSSES["l1"](outputs, targets, None), F.l1_loss(outputs.squeeze(1), targets))
    assert torch.isclose(LOSSES["huber"](outputs, targets, None), F.huber_loss(outputs.squeeze(1), targets))
    logits, labels = torch.randn(6, 4), torch.randint(0, 4, (6,))
    assert torch.isclose(LOSSES["cross_entropy"](logits, labels, None), F.cross_entropy(logits, labels))


@pytest.mark.parametrize("name", ["masked_bce_with_logits", "masked_mse", "masked_l1", "masked_huber"])
def test_masked_losses_ignore_padded_positions(name):
    outputs, targets = torch.randn(3, 5, 4), torch.randint(0, 2, (3, 5, 4)).float()
    masks = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]).bool()
    changed = outputs.clone()
    changed[~masks] = 100.0
    loss = LOSSES[name](outputs, targets, masks)
    assert torch.isclose(loss, LOSSES[name](changed, targets, masks))
    plain = LOSSES[name.removeprefix("masked_")](outputs[masks], targets[masks], None)
    assert torch.isclose(loss, plain)


def test_masked_cross_entropy_ignores_padded_positions():
    logits, labels = torch.randn(2, 4, 3), torch.randint(0, 3, (2, 4))
    masks = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0]]).bool()
    assert torch.isclose(LOSSES["masked_cross_entropy"](logits, labels, masks),
                         F.cross_entropy(logits[masks], labels[masks]))


def test_sequence_accuracy_counts_whole_sequences_within_the_mask():
    targets = torch.tensor([[[1.0], [0.0], [1.0]], [[1.0], [1.0], [0.0]]])
    outputs = torch.where(targets > 0.5, 5.0, -5.0)
    outputs[1, 2, 0] = 5.0                             # one wrong bit, in the second sequence
    metric = SequenceAccuracy()
    metric.update(outputs, targets, torch.tensor([[1, 1, 1], [1, 1, 1]]).bool())
    assert metric.compute() == 0.5
    metric.reset()
    metric.update(outputs, targets, torch.tensor([[1, 1, 1], [1, 1, 0]]).bool())   # the wrong bit is padding
    assert metric.compute() == 1.0


def test_objective_metrics_compute_over_a_phase():
    objective = Objective("cross_entropy", ("accuracy", "f1", "auroc"))
    metrics = objective.metrics({"targets": {"num_classes": 3}})
    logits = torch.eye(3).repeat(2, 1) * 10
    batch = {"targets": torch.tensor([0, 1, 2, 0, 1, 2])}
    metrics(*objective.metric_inputs(logits, batch))
    values = metrics.compute()
    assert values["accuracy"] == 1.0 and values["f1"] == 1.0 and values["auroc"] == 1.0


def test_regression_metrics():
    objective = Objective("mse", ("mse", "mae", "r2"))
    metrics = objective.metrics({"targets": {"shape": []}})
    targets = torch.arange(8.0)
    values = metrics(targets.unsqueeze(1), targets)
    assert values["mse"] == 0 and values["mae"] == 0 and values["r2"] == 1


def test_unknown_loss_or_metric_is_refused_with_the_nearest_names():
    with pytest.raises(ConfigError, match="cross_entropy"):
        Objective("cross_entropi")
    with pytest.raises(ConfigError, match="accuracy"):
        Objective("mse", ("acuracy",))


def test_masked_loss_without_masks_in_the_batch_is_a_config_error():
    with pytest.raises(ConfigError, match="masks"):
        Objective("masked_mse").loss(torch.zeros(2, 1), {"targets": torch.zeros(2)})


@pytest.mark.parametrize("names, definitions, outputs, targets", [
    (("accuracy", "f1", "auroc"), {"targets": {"num_classes": 4}}, torch.randn(32, 4), torch.randint(0, 4, (32,))),
    (("accuracy", "f1", "auroc"), {"targets": {}}, torch.randn(32), torch.randint(0, 2, (32,)).float()),
    (("mse", "mae", "r2"), {"targets": {}}, torch.randn(32), torch.randn(32)),
    (("sequence_accuracy",), {"targets": {}}, torch.randn(16, 3, 2), (torch.rand(16, 3, 2) > 0.5).float()),
    (("f1_micro", "f1_macro", "average_precision", "fmax"), {"targets": {"task": "multilabel", "terms": list("abcde")}},
     torch.randn(32, 5), (torch.rand(32, 5) > 0.6).float()),
])
def test_stateless_batch_values_equal_the_metrics_own_batch_values(names, definitions, outputs, targets):
    loss = "mse" if "mse" in names else ("bce_with_logits" if outputs.dim() != 2 else "cross_entropy")
    objective = Objective(loss, names)
    metrics = objective.metrics(definitions)
    fast = metrics.batch_values(outputs, targets)
    reference = metrics(outputs, targets)                  # torchmetrics' forward: update and batch value
    assert fast.keys() == reference.keys()
    for name in names:
        assert torch.allclose(fast[name].float(), reference[name].float(), atol=1e-6), name


# two proteins, three terms: term probabilities and true terms (hand-computed in the test below)
SCORES = torch.tensor([[0.955, 0.555, 0.255], [0.355, 0.855, 0.155]])
TRUTH = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])


def test_fmax_is_cafa_protein_centric_maximum_f_measure_by_hand():
    # thresholds in (0.555, 0.855]: protein 1 predicts {0} (precision 1, recall 1/2), protein 2 {1} (1, 1):
    # precision 1, recall 3/4, F = 6/7, the best; in (0.855, 0.955] protein 2 predicts nothing: it leaves the
    # precision's mean (1) but stays in the recall's ((1/2 + 0) / 2), F = 0.4; above 0.955 nothing is predicted
    fmax = Fmax()
    fmax.update(SCORES, TRUTH)
    assert float(fmax.compute()) == pytest.approx(6 / 7, abs=1e-6)
    fmax.reset()
    fmax.update(SCORES[:1], TRUTH[:1])          # one protein in each of two processes: their states summed
    other = Fmax()                              # (as DDP's reduction sums them) give the same Fmax
    other.update(SCORES[1:], TRUTH[1:])
    fmax.merge_state(other)
    assert float(fmax.compute()) == pytest.approx(6 / 7, abs=1e-6)


def test_fmax_counts_terms_seen_outside_training_as_missed():
    # protein 2 holds one more true term, outside the vocabulary (the batch's unseen_terms): its recall halves,
    # and the best is 2/3 (precision 1, recall (1/2 + 1/2) / 2 on (0.555, 0.855])
    objective = Objective("bce_with_logits", ("fmax",))
    metrics = objective.metrics({"targets": {"task": "multilabel", "terms": ["a", "b", "c"]}})
    batch = {"targets": TRUTH, "unseen_terms": torch.tensor([0, 1])}
    metrics.update(*objective.metric_inputs(torch.logit(SCORES), batch))
    assert float(metrics.compute()["fmax"]) == pytest.approx(2 / 3, abs=1e-6)


def test_average_precision_averages_over_the_terms_some_sample_holds():
    metric = TermAveragePrecision(num_labels=3)
    metric.update(torch.tensor([[0.9, 0.2, 0.1], [0.3, 0.7, 0.2]]), torch.tensor([[1, 0, 0], [0, 1, 0]]))
    assert float(metric.compute()) == pytest.approx(1.0)        # the third term, held by none, is left out


def test_multilabel_tasks_take_bce_and_term_metrics_only():
    check_task("bce_with_logits", ["f1_micro", "f1_macro", "average_precision", "fmax"], "multilabel", "P")
    with pytest.raises(ConfigError, match="'accuracy' suits"):
        check_task("bce_with_logits", ["accuracy"], "multilabel", "P")
    with pytest.raises(ConfigError, match="'cross_entropy' suits"):
        check_task("cross_entropy", [], "multilabel", "P")
