"""pyrosys.problems.scikit_learn: bundled data, a split fixed by the seed, batches cut by tensor indexing."""
from __future__ import annotations

import pytest
import torch

from pyrosys.data_dict import DataDict
from pyrosys.errors import ConfigError
from pyrosys.problems.scikit_learn import Digits
from pyrosys.problems.problem import TensorSplit


def splits(seed: int) -> dict:
    problem = Digits.create({"seed": seed})
    problem.setup()
    return problem.splits


def test_split_is_deterministic_for_a_seed_and_changes_with_it():
    first, again, other = splits(3), splits(3), splits(4)
    assert torch.equal(first["test"].fields["targets"], again["test"].fields["targets"])
    assert torch.equal(first["test"].fields["inputs"], again["test"].fields["inputs"])
    assert not torch.equal(first["test"].fields["inputs"], other["test"].fields["inputs"])


def test_splits_partition_all_1797_images_by_the_fractions():
    parts = splits(0)
    assert [len(parts[name]) for name in ("train", "val", "test")] == [1258, 269, 270]


def test_batches_are_datadicts_shaped_as_the_data_definitions():
    problem = Digits.create({"seed": 0, "batch_size": 16})
    batch = next(iter(problem.loader("train")))
    assert isinstance(batch, DataDict)
    assert list(batch.inputs.shape) == [16, *problem.data_definitions["inputs"]["shape"]]
    assert batch.targets.dtype == torch.int64 and int(batch.targets.max()) < 10


def test_tensor_split_cuts_a_batch_with_one_index_not_per_sample():
    split = TensorSplit({"inputs": torch.arange(10.0).reshape(10, 1), "targets": torch.arange(10)})
    calls = []
    original = split.__getitem__
    split.__getitem__ = lambda i: calls.append(i) or original(i)
    batch = split.__getitems__([3, 1, 4])
    assert batch.targets.tolist() == [3, 1, 4] and calls == []


def test_phase_overrides_apply_to_their_phase_only():
    problem = Digits.create({"seed": 0, "batch_size": 8}, {"test": {"batch_size": 100, "split": "test"}})
    assert problem.loader("train").batch_size == 8
    assert problem.loader("test").batch_size == 100


def test_unknown_parameter_is_refused_with_the_nearest_one():
    with pytest.raises(ConfigError) as caught:
        Digits.create({"batch_sise": 8})
    assert "'batch_size'" in caught.value.hint


def test_unknown_split_name_is_a_config_error():
    problem = Digits.create({"seed": 0}, {"val": {"split": "validation"}})
    with pytest.raises(ConfigError, match="no split 'validation'"):
        problem.loader("val")


def test_tabular_features_are_standardised_with_training_statistics_only():
    from pyrosys.problems.scikit_learn import BreastCancer

    problem = BreastCancer.create({"seed": 1})
    problem.setup()
    train = problem.splits["train"].fields["inputs"]
    assert torch.allclose(train.mean(0), torch.zeros(30), atol=1e-4)
    assert torch.allclose(train.std(0, unbiased=False), torch.ones(30), atol=1e-3)
    val = problem.splits["val"].fields["inputs"]
    assert not torch.allclose(val.mean(0), torch.zeros(30), atol=1e-2)
    definition = problem.data_definitions["inputs"]
    assert definition["kind"] == "vector" and len(definition["standardize"]["mean"]) == 30
    assert problem.data_definitions["targets"]["num_classes"] == 2


def test_diabetes_is_a_regression_with_standardised_targets():
    from pyrosys.problems.scikit_learn import Diabetes

    problem = Diabetes.create({"seed": 1})
    problem.setup()
    definitions = problem.data_definitions
    assert definitions["targets"]["task"] == "regression" and "standardize" in definitions["targets"]
    assert problem.default_loss == "mse" and "r2" in problem.default_metrics
    assert problem.splits["train"].fields["targets"].dtype == torch.float32
    assert sum(len(split) for split in problem.splits.values()) == 442


def test_in_memory_batches_cover_every_sample_once_per_epoch_in_a_seeded_order():
    from pyrosys.problems.problem import TensorBatches

    split = TensorSplit({"inputs": torch.arange(10.0).reshape(10, 1), "targets": torch.arange(10)})
    batches = TensorBatches(split, 4, shuffle=True, drop_last=False)
    torch.manual_seed(3)
    first = [b.targets.tolist() for b in batches]
    torch.manual_seed(3)
    again = [b.targets.tolist() for b in batches]
    assert len(batches) == 3 and [len(b) for b in first] == [4, 4, 2]
    assert sorted(sum(first, [])) == list(range(10)) and first == again
    assert sum(first, []) != list(range(10))                       # shuffled
    ordered = TensorBatches(split, 4, shuffle=False, drop_last=True)
    assert len(ordered) == 2 and [b.targets.tolist() for b in ordered] == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_synthetic_classification_is_generated_from_its_seed():
    from pyrosys.problems.scikit_learn import SyntheticClassification

    one = SyntheticClassification.create({"seed": 1, "samples": 300, "features": 8, "informative": 4, "classes": 3})
    two = SyntheticClassification.create({"seed": 1, "samples": 300, "features": 8, "informative": 4, "classes": 3})
    batch = next(iter(one.loader("val")))
    assert torch.equal(batch.inputs, next(iter(two.loader("val"))).inputs)
    assert one.data_definitions["inputs"]["shape"] == [8] and one.data_definitions["targets"]["num_classes"] == 3
    with pytest.raises(ConfigError):
        SyntheticClassification.create({"seed": 1, "samples": 1}).load_splits()
