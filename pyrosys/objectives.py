"""Objectives: losses and metrics by name, kept apart from both models and workers.

The problem names its default objective; `training.loss` and `training.metrics` override it.
A model never hard-codes its loss: the worker hands it an `Objective`. Losses and metrics read
the fields they need from the batch by name (`targets`, `masks`); the field compared with the
outputs is `targets`, or `inputs` for autoencoding.
"""
from __future__ import annotations

import copy
import warnings

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
import torchmetrics
from torch import nn
from torchmetrics import functional as tf
from torchmetrics.functional import classification as tc
from torchmetrics.utilities import dim_zero_cat

from pyrosys.configuration.constraints import check_objective_names
from pyrosys.errors import ConfigError

UNSEEN_FIELD = "unseen_terms"     # multilabel batches: each sample's true terms outside the training vocabulary
LossFn = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


# -- losses: (outputs, targets, masks) -> scalar ----------------------------------------------------

def _class_targets(outputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1).long()


def _like(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return targets.to(outputs.dtype).reshape(outputs.shape)


def _masked_mean(elementwise: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Mean over the positions a mask keeps; the mask covers the leading dimensions of the values."""
    weights = masks.to(elementwise.dtype)
    while weights.dim() < elementwise.dim():
        weights = weights.unsqueeze(-1)
    weights = weights.expand_as(elementwise)
    return (elementwise * weights).sum() / weights.sum().clamp_min(1.0)


def cross_entropy(outputs, targets, masks=None, weight=None):
    """Cross-entropy of class logits [..., K] against integer targets [...] (classes weighted by `weight`)."""
    return F.cross_entropy(*_class_targets(outputs, targets), weight=weight)


def bce_with_logits(outputs, targets, masks=None):
    """Binary cross-entropy of logits against 0/1 targets of the same shape."""
    return F.binary_cross_entropy_with_logits(outputs, _like(outputs, targets))


def mse(outputs, targets, masks=None):
    """Mean squared error."""
    return F.mse_loss(outputs, _like(outputs, targets))


def l1(outputs, targets, masks=None):
    """Mean absolute error."""
    return F.l1_loss(outputs, _like(outputs, targets))


def huber(outputs, targets, masks=None):
    """Huber (smooth L1, delta 1) loss."""
    return F.huber_loss(outputs, _like(outputs, targets))


def masked_cross_entropy(outputs, targets, masks, weight=None):
    """Cross-entropy over the positions `masks` keeps (padded sequences); with class weights, the weighted
    mean over the kept positions (as F.cross_entropy weighs)."""
    flat_outputs, flat_targets = _class_targets(outputs, targets)
    values = F.cross_entropy(flat_outputs, flat_targets, weight=weight, reduction="none")
    if weight is None:
        return _masked_mean(values, masks.reshape(-1))
    kept = masks.reshape(-1).to(values.dtype)
    return (values * kept).sum() / (kept * weight[flat_targets]).sum().clamp_min(torch.finfo(values.dtype).tiny)


def masked_bce_with_logits(outputs, targets, masks):
    """Binary cross-entropy over the positions `masks` keeps."""
    return _masked_mean(F.binary_cross_entropy_with_logits(outputs, _like(outputs, targets), reduction="none"),
                        masks)


def masked_mse(outputs, targets, masks):
    """Squared error over the positions `masks` keeps."""
    return _masked_mean(F.mse_loss(outputs, _like(outputs, targets), reduction="none"), masks)


def masked_l1(outputs, targets, masks):
    """Absolute error over the positions `masks` keeps."""
    return _masked_mean(F.l1_loss(outputs, _like(outputs, targets), reduction="none"), masks)


def masked_huber(outputs, targets, masks):
    """Huber loss over the positions `masks` keeps."""
    return _masked_mean(F.huber_loss(outputs, _like(outputs, targets), reduction="none"), masks)


# The kinds of comparison a loss or metric makes, and the tasks whose targets allow it.
CLASS_LABELS = {"classification", "residue_classification"}    # integer class targets, one logit per class
VALUES = {"regression", "autoencoding", "sequence", "residue_regression"}   # float targets of the outputs' shape
BINARY = {"sequence"}                                      # 0/1 float targets, one logit per value
MULTILABEL = {"multilabel"}                                # 0/1 float targets [N, terms], one logit per term
RESIDUE_TASKS = ("residue_classification", "residue_regression")   # targets per residue: padding must not count
LOSS_TASKS = {"cross_entropy": CLASS_LABELS, "masked_cross_entropy": CLASS_LABELS,
              "bce_with_logits": BINARY | MULTILABEL, "masked_bce_with_logits": BINARY}
METRIC_TASKS = {"accuracy": CLASS_LABELS | BINARY, "f1": CLASS_LABELS | BINARY, "auroc": CLASS_LABELS | BINARY,
                "mcc": CLASS_LABELS | BINARY, "average_precision": CLASS_LABELS | BINARY | MULTILABEL,
                "sequence_accuracy": BINARY | CLASS_LABELS, "mse": VALUES, "mae": VALUES, "r2": VALUES,
                "f1_micro": MULTILABEL, "f1_macro": MULTILABEL, "fmax": MULTILABEL}


def check_task(loss: str, metrics: Sequence[str], task: str, problem: str) -> None:
    """Refuse a loss or metric that cannot compare a model's outputs with this task's targets."""
    allowed = LOSS_TASKS.get(loss, VALUES)
    if task not in allowed:
        raise ConfigError(f"the loss {loss!r} suits {' or '.join(sorted(allowed))} tasks, but {problem} is a "
                          f"{task} task", key="training.loss", hint="Remove training.loss to use the task's default")
    if task in RESIDUE_TASKS and not loss.startswith("masked_"):
        raise ConfigError(f"the loss {loss!r} would count the padding of {problem}, a {task} task (one label per "
                          "residue)", key="training.loss", hint=f"Use masked_{loss}, or remove training.loss to use "
                                                                 "the task's default")
    for name in metrics:
        if task not in METRIC_TASKS[name]:
            raise ConfigError(f"the metric {name!r} suits {' or '.join(sorted(METRIC_TASKS[name]))} tasks, but "
                              f"{problem} is a {task} task", key="training.metrics",
                              hint="Remove training.metrics to use the task's defaults")


LOSSES: dict[str, LossFn] = {
    "cross_entropy": cross_entropy, "bce_with_logits": bce_with_logits, "mse": mse, "l1": l1, "huber": huber,
    "masked_cross_entropy": masked_cross_entropy, "masked_bce_with_logits": masked_bce_with_logits,
    "masked_mse": masked_mse, "masked_l1": masked_l1, "masked_huber": masked_huber,
}


# -- metrics ----------------------------------------------------------------------------------------

class SequenceAccuracy(torchmetrics.Metric):
    """Share of sequences whose every kept position is right (bits by sign of the logit, classes by argmax)."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("correct", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0.0), dist_reduce_fx="sum")

    @staticmethod
    def right(outputs: torch.Tensor, targets: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        """Per sequence: whether every kept position is right."""
        if outputs.dim() == targets.dim() + 1:          # class logits per position
            right = outputs.argmax(-1) == targets
        else:                                            # one logit per bit
            right = (outputs > 0) == (targets > 0.5)
        if masks is not None:
            keep = masks.bool()
            while keep.dim() < right.dim():
                keep = keep.unsqueeze(-1)
            right = right | ~keep
        return right.reshape(right.shape[0], -1).all(dim=1)

    def update(self, outputs: torch.Tensor, targets: torch.Tensor, masks: torch.Tensor | None = None) -> None:
        right = self.right(outputs, targets, masks)
        self.correct += right.sum()
        self.total += right.shape[0]

    def compute(self) -> torch.Tensor:
        return self.correct / self.total.clamp_min(1.0)


class Fmax(torchmetrics.Metric):
    """CAFA's protein-centric maximum F-measure over the thresholds 0.01, 0.02, ..., 1.00 (Radivojac et al.,
    2013): at each threshold, precision is averaged over the proteins with at least one term scored at or
    above it, recall over every annotated protein; Fmax is the best harmonic mean of the two. A protein's
    terms outside the model's vocabulary (`missed`, seen only outside training) count in its recall as misses.
    The state is sums per threshold, so that DDP processes add theirs up."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, steps: int = 100) -> None:
        super().__init__()
        self.register_buffer("thresholds", torch.arange(1, steps + 1, dtype=torch.float64) / steps,
                             persistent=False)
        for name in ("precision_sum", "covered", "recall_sum"):
            self.add_state(name, default=torch.zeros(steps, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("proteins", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, probabilities: torch.Tensor, targets: torch.Tensor, missed: torch.Tensor | None = None) -> None:
        """Add a batch: term probabilities [N, M], 0/1 targets [N, M], terms each protein misses [N] (or None)."""
        truth = (targets.reshape(len(targets), -1) > 0.5).double()
        # how many thresholds each score reaches (t <= score), then per protein and threshold the terms
        # chosen and the true ones among them: counts of each level, summed from the top down
        levels = torch.bucketize(probabilities.reshape(len(truth), -1).double(), self.thresholds, right=True)
        counts = truth.new_zeros(len(truth), len(self.thresholds) + 1)
        chosen = counts.scatter_add(1, levels, torch.ones_like(truth)).flip(1).cumsum(1).flip(1)[:, 1:]
        hits = counts.scatter_add(1, levels, truth).flip(1).cumsum(1).flip(1)[:, 1:]
        annotated = truth.sum(-1) + (missed.double() if missed is not None else 0.0)
        keep = annotated > 0                        # proteins without any term say nothing about recall
        self.precision_sum += (hits / chosen.clamp_min(1.0))[keep].sum(0)
        self.covered += (chosen > 0)[keep].sum(0).double()
        self.recall_sum += (hits / annotated.clamp_min(1.0)[:, None])[keep].sum(0)
        self.proteins += keep.sum().double()

    def compute(self) -> torch.Tensor:
        precision = self.precision_sum / self.covered.clamp_min(1.0)
        recall = self.recall_sum / self.proteins.clamp_min(1.0)
        f = 2 * precision * recall / (precision + recall).clamp_min(1e-12)
        return torch.where(self.covered > 0, f, torch.zeros_like(f)).max().float()


def matthews(tn: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor, tp: torch.Tensor) -> torch.Tensor:
    """The Matthews correlation of a binary confusion matrix, 0 where it is undefined (no true or no predicted
    positives or negatives: scikit-learn's convention)."""
    tn, fp, fn, tp = (count.double() for count in (tn, fp, fn, tp))
    denominator = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
    if denominator == 0:
        return torch.zeros((), dtype=torch.float32, device=tp.device)
    return ((tp * tn - fp * fn) / denominator.sqrt()).float()


class BinaryMCC(torchmetrics.classification.BinaryMatthewsCorrCoef):
    """torchmetrics' binary MCC, but 0 where MCC is undefined: torchmetrics' own value there (after Chicco et
    al.) gives a model that never predicts a rare positive class an MCC near 0.3 on a large split."""

    def compute(self) -> torch.Tensor:
        return matthews(*self.confmat.reshape(-1))

    @staticmethod
    def batch(probabilities: torch.Tensor, targets: torch.Tensor, threshold: float) -> torch.Tensor:
        """One batch's value, stateless: the confusion counts of positive-class probabilities at `threshold`."""
        predicted, truth = probabilities >= threshold, targets.bool()
        tp, fp, fn = (predicted & truth).sum(), (predicted & ~truth).sum(), (~predicted & truth).sum()
        return matthews(truth.numel() - tp - fp - fn, fp, fn, tp)


def _num_classes(target: Mapping) -> int | None:
    return int(target["num_classes"]) if "num_classes" in target else None


def _accuracy(target: Mapping) -> torchmetrics.Metric:
    classes = _num_classes(target)
    if classes is None:
        return torchmetrics.classification.BinaryAccuracy()
    return torchmetrics.classification.MulticlassAccuracy(num_classes=classes, average="micro")


def _f1(target: Mapping) -> torchmetrics.Metric:
    """F1: of the positive class (index 1) for 0/1 values and two-class residue labels, else the macro mean."""
    classes = _num_classes(target)
    if classes is None or (classes == 2 and target.get("task") in RESIDUE_TASKS):
        return torchmetrics.classification.BinaryF1Score()
    return torchmetrics.classification.MulticlassF1Score(num_classes=classes, average="macro")


def _mcc(target: Mapping) -> torchmetrics.Metric:
    """Matthews correlation: of the positive class (index 1) for two classes or 0/1 values, else multiclass."""
    classes = _num_classes(target)
    if classes is None or classes == 2:
        return BinaryMCC()
    return torchmetrics.classification.MulticlassMatthewsCorrCoef(num_classes=classes)


def _average_precision(target: Mapping) -> torchmetrics.Metric:
    """Average precision (area under precision-recall): for multilabel targets the macro mean over the terms
    present; of the positive class (index 1) for two classes or 0/1 values; else the macro mean over the
    classes."""
    if target.get("task") == "multilabel":
        return TermAveragePrecision(num_labels=_terms(target))
    classes = _num_classes(target)
    if classes is None or classes == 2:
        return torchmetrics.classification.BinaryAveragePrecision()
    return torchmetrics.classification.MulticlassAveragePrecision(num_classes=classes, average="macro")


def _auroc(target: Mapping) -> torchmetrics.Metric:
    classes = _num_classes(target)
    if classes is None:
        return torchmetrics.classification.BinaryAUROC()
    return torchmetrics.classification.MulticlassAUROC(num_classes=classes)


def _terms(target: Mapping) -> int:
    return len(target["terms"])


class TermAveragePrecision(torchmetrics.classification.MultilabelAveragePrecision):
    """Macro average precision over the terms with at least one positive sample in the set evaluated (a term
    no sample holds has no precision-recall curve: torchmetrics would count it as 0 and warn)."""

    def __init__(self, num_labels: int) -> None:
        super().__init__(num_labels=num_labels, average=None)

    def compute(self) -> torch.Tensor:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="No positive samples found in target")
            values = super().compute()
        present = dim_zero_cat(self.target).sum(0) > 0
        return values[present].mean() if bool(present.any()) else values.new_tensor(0.0)


METRICS: dict[str, Callable[[Mapping], torchmetrics.Metric]] = {
    "accuracy": _accuracy, "f1": _f1, "auroc": _auroc, "mcc": _mcc, "average_precision": _average_precision,
    "f1_micro": lambda target: torchmetrics.classification.MultilabelF1Score(num_labels=_terms(target),
                                                                             average="micro"),
    "f1_macro": lambda target: torchmetrics.classification.MultilabelF1Score(num_labels=_terms(target),
                                                                             average="macro"),
    "fmax": lambda target: Fmax(),
    "mse": lambda target: torchmetrics.MeanSquaredError(),
    "mae": lambda target: torchmetrics.MeanAbsoluteError(),
    "r2": lambda target: torchmetrics.R2Score(),
    "sequence_accuracy": lambda target: SequenceAccuracy(),
}
CLASSIFICATION_METRICS = {"accuracy", "f1", "auroc", "mcc", "average_precision"}
# metrics of the positive class alone: fed its probability (class index 1 of two class logits)
POSITIVE_CLASS_METRICS = (torchmetrics.classification.BinaryF1Score, torchmetrics.classification.BinaryAUROC,
                          BinaryMCC, torchmetrics.classification.BinaryAveragePrecision)
# metrics fed term probabilities [N, M] and integer 0/1 targets of the same shape
MULTILABEL_METRICS = (torchmetrics.classification.MultilabelF1Score,
                      torchmetrics.classification.MultilabelAveragePrecision)


class BatchMetrics(nn.Module):
    """The metrics of one phase: fed (outputs, targets, masks) per batch, computed over the phase."""

    def __init__(self, metrics: Mapping[str, torchmetrics.Metric]) -> None:
        super().__init__()
        self.metrics = nn.ModuleDict(dict(metrics))

    @staticmethod
    def _arguments(name: str, metric: torchmetrics.Metric, outputs: torch.Tensor, targets: torch.Tensor,
                   masks: torch.Tensor | None, missed: torch.Tensor | None = None) -> tuple:
        if isinstance(metric, SequenceAccuracy):
            return outputs, targets, masks
        if isinstance(metric, Fmax):        # logits -> probabilities, so that no threshold reads a logit
            return outputs.sigmoid(), targets, missed
        if isinstance(metric, MULTILABEL_METRICS):
            return outputs.sigmoid(), targets.long()
        if masks is not None:                         # keep the positions the mask keeps
            keep = masks.bool()
            outputs, targets = outputs[keep], targets[keep]
        if name in CLASSIFICATION_METRICS:
            if outputs.dim() == targets.dim() + 1 and outputs.shape[-1] > 1:
                logits = outputs.reshape(-1, outputs.shape[-1])
                if isinstance(metric, POSITIVE_CLASS_METRICS):
                    return logits.softmax(dim=-1)[:, 1], targets.reshape(-1).long()
                return logits, targets.reshape(-1).long()
            # binary: outputs are logits; probabilities, so that torchmetrics never mistakes them for ones
            return outputs.reshape(-1).sigmoid(), targets.reshape(-1).long()
        return outputs.reshape(-1).float(), targets.reshape(-1).float()

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor, masks: torch.Tensor | None = None,
                missed: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Update every metric and return its value on this batch alone (`missed`: each sample's true terms
        outside the model's vocabulary, for the metrics that count them)."""
        return {name: metric(*self._arguments(name, metric, outputs, targets, masks, missed))
                for name, metric in self.metrics.items()}

    def batch_values(self, outputs: torch.Tensor, targets: torch.Tensor, masks: torch.Tensor | None = None,
                     missed: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Every metric's value on this batch alone, stateless (the training path: no metric state to
        update, cache and merge at every step); the same values `forward` returns."""
        return {name: batch_value(metric, *self._arguments(name, metric, outputs, targets, masks, missed))
                for name, metric in self.metrics.items()}

    def update(self, outputs: torch.Tensor, targets: torch.Tensor, masks: torch.Tensor | None = None,
               missed: torch.Tensor | None = None) -> None:
        for name, metric in self.metrics.items():
            metric.update(*self._arguments(name, metric, outputs, targets, masks, missed))

    def compute(self) -> dict[str, torch.Tensor]:
        return {name: metric.compute() for name, metric in self.metrics.items()}

    def reset(self) -> None:
        for metric in self.metrics.values():
            metric.reset()


def batch_value(metric: torchmetrics.Metric, *arguments: Any) -> torch.Tensor:
    """One batch's value of `metric` without touching its state: a plain tensor expression or
    torchmetrics' functional form (arguments already checked by the model's shapes); any other
    metric through a throw-away copy of its state."""
    kind = type(metric)
    if kind is torchmetrics.classification.MulticlassAccuracy and metric.average == "micro":
        outputs, targets = arguments
        return (outputs.argmax(-1) == targets).float().mean()
    if kind is torchmetrics.classification.BinaryAccuracy:
        outputs, targets = arguments
        return ((outputs >= metric.threshold).long() == targets).float().mean()
    if kind is torchmetrics.classification.MulticlassF1Score:
        return tc.multiclass_f1_score(*arguments, num_classes=metric.num_classes, average=metric.average,
                                      validate_args=False)
    if kind is torchmetrics.classification.BinaryF1Score:
        return tc.binary_f1_score(*arguments, threshold=metric.threshold, validate_args=False)
    if kind is torchmetrics.classification.MultilabelF1Score:
        return tc.multilabel_f1_score(*arguments, num_labels=metric.num_labels, threshold=metric.threshold,
                                      average=metric.average, validate_args=False)
    if kind is torchmetrics.MeanSquaredError:
        return F.mse_loss(*arguments)
    if kind is torchmetrics.MeanAbsoluteError:
        return F.l1_loss(*arguments)
    if kind is torchmetrics.R2Score:
        return tf.r2_score(*arguments)
    if kind is torchmetrics.classification.MulticlassAUROC:
        return tc.multiclass_auroc(*arguments, num_classes=metric.num_classes, validate_args=False)
    if kind is torchmetrics.classification.BinaryAUROC:
        return tc.binary_auroc(*arguments, validate_args=False)
    if kind is BinaryMCC:
        return BinaryMCC.batch(*arguments, threshold=metric.threshold)
    if kind is torchmetrics.classification.MulticlassMatthewsCorrCoef:
        return tc.multiclass_matthews_corrcoef(*arguments, num_classes=metric.num_classes, validate_args=False)
    if kind is torchmetrics.classification.BinaryAveragePrecision:
        return tc.binary_average_precision(*arguments, validate_args=False)
    if kind is SequenceAccuracy:
        return SequenceAccuracy.right(*arguments).float().mean()
    fresh = copy.deepcopy(metric)            # any other metric: exact, if slower
    fresh.reset()
    fresh.update(*arguments)
    return fresh.compute()


@dataclass
class Objective:
    """What a model is trained and judged on: one loss and named metrics, comparing outputs with a field."""

    loss_name: str
    metric_names: tuple[str, ...] = ()
    target_field: str = "targets"
    class_weights: Any = None      # training.loss's class_weights: None, 'balanced' or one weight per class

    def __post_init__(self) -> None:
        self.metric_names = tuple(self.metric_names)
        check_objective(self.loss_name, self.metric_names, file=None)
        self.masked = self.loss_name.startswith("masked_")
        self.weight: torch.Tensor | None = None

    def weigh(self, data_definitions: Mapping) -> None:
        """Turn class_weights into one weight per class of the target field (balanced: from its class counts)."""
        self.weight = class_weights(self.class_weights, data_definitions.get(self.target_field, {}))

    def loss(self, outputs: torch.Tensor, batch: Mapping) -> torch.Tensor:
        """The loss of a batch."""
        masks = batch.get("masks") if self.masked else None
        if self.masked and masks is None:
            raise ConfigError(f"the loss {self.loss_name!r} needs a 'masks' field in the batch", key="training.loss",
                              hint="Use the loss without 'masked_', or a problem whose batches carry masks")
        if self.weight is None:
            return LOSSES[self.loss_name](outputs, batch[self.target_field], masks)
        weight = self.weight.to(outputs.device, outputs.dtype)      # no copy once on the outputs' device
        return LOSSES[self.loss_name](outputs, batch[self.target_field], masks, weight=weight)

    def metrics(self, data_definitions: Mapping) -> BatchMetrics:
        """Fresh metric states for one phase (train, val or test)."""
        target = data_definitions.get(self.target_field, {})
        return BatchMetrics({name: METRICS[name](target) for name in self.metric_names})

    def metric_inputs(self, outputs: torch.Tensor, batch: Mapping) -> tuple:
        """What the phase metrics are fed with: outputs, the target field, the masks when the loss
        is a masked one (masks of padded inputs say nothing about the targets of other losses), and the
        samples' true terms outside the vocabulary (`unseen_terms`, multilabel problems; else None)."""
        return (outputs, batch[self.target_field], batch.get("masks") if self.masked else None,
                batch.get(UNSEEN_FIELD))


def check_objective(loss: str, metrics: Sequence[str], *, file: str | None) -> None:
    """Refuse unknown loss or metric names from a configuration, naming the nearest ones."""
    check_objective_names(loss, metrics, losses=LOSSES, metric_names=METRICS, file=file)


def class_weights(option: Any, target: Mapping) -> torch.Tensor | None:
    """One loss weight per class: 'balanced' gives n / (K * n_c) from the training split's class counts that
    the problem records (a class absent from training counts once), a list gives its weights in class order."""
    if option is None:
        return None
    if "num_classes" not in target:
        raise ConfigError("class_weights weigh classes, but these targets have none", key="training.loss.class_weights",
                          hint="Remove class_weights: they suit classification tasks")
    classes, size = target.get("classes") or [], int(target["num_classes"])
    if option == "balanced":
        counts = target.get("class_counts")
        if counts is None:
            raise ConfigError("class_weights: balanced needs the training split's class counts, which this problem "
                              "does not record", key="training.loss.class_weights",
                              hint=f"Give the {size} weights as a list, one per class")
        counts = torch.tensor(counts, dtype=torch.float64)
        return (counts.sum() / (size * counts.clamp_min(1.0))).float()
    if len(option) != size:
        named = f" ({', '.join(map(str, classes))})" if classes else ""
        raise ConfigError(f"class_weights gives {len(option)} weights, but the targets have {size} classes{named}",
                          key="training.loss.class_weights",
                          hint="Give one weight per class, in this order, or write class_weights: balanced")
    return torch.tensor([float(w) for w in option], dtype=torch.float32)
