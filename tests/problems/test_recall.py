"""pyrosys.problems.recall: generated store/recall samples, masks on the answer, a growing curriculum."""
from __future__ import annotations

import pytest
import torch

from pyrosys.errors import ConfigError
from pyrosys.problems.recall import ReverseRecall, SerialRecall


def batch(problem_cls, length=4, **params):
    problem = problem_cls.create({"data_bits": 3, "seed": 1, **params})
    return problem.generate(5, length, torch.Generator().manual_seed(0))


def test_serial_recall_answers_the_stored_words_in_order_after_the_recall_marker():
    sample = batch(SerialRecall)
    assert sample.inputs.shape == (5, 10, 5) and sample.targets.shape == (5, 10, 3)
    assert torch.all(sample.inputs[:, 0, 0] == 1) and torch.all(sample.inputs[:, 5, 1] == 1)
    stored = sample.inputs[:, 1:5, 2:]
    assert torch.equal(sample.targets[:, 6:], stored)
    assert sample.masks[:, 6:].all() and not sample.masks[:, :6].any()
    assert not sample.inputs[:, 6:].any()           # nothing to copy from during the answer


def test_reverse_recall_answers_the_stored_words_last_first():
    sample = batch(ReverseRecall)
    assert torch.equal(sample.targets[:, 6:], sample.inputs[:, 1:5, 2:].flip(1))


def test_generated_batches_are_deterministic_and_lengths_stay_in_range():
    problem = SerialRecall.create({"seed": 3, "min_sequence_length": 2, "max_sequence_length": 4, "episodes": 20})
    first = [b.inputs for b in problem.loader("val")]
    again = [b.inputs for b in problem.loader("val")]
    assert all(torch.equal(a, b) for a, b in zip(first, again)) and len(first) == 20
    assert {(b.shape[1] - 2) // 2 for b in first} <= {2, 3, 4}


def test_curriculum_grows_the_maximum_length_every_interval():
    problem = SerialRecall.create({"seed": 0, "max_sequence_length": 6, "episodes": 40})
    problem.set_curriculum({"initial_max_sequence_length": 2, "interval": 10})
    lengths = [(b.inputs.shape[1] - 2) // 2 for b in problem.loader("train")]
    assert max(lengths[:10]) <= 2 and max(lengths[10:20]) <= 3 and max(lengths) <= 6
    assert problem.current_max_length == 5 and problem.curriculum_end() == 40


def test_impossible_lengths_are_a_config_error():
    with pytest.raises(ConfigError, match="above max_sequence_length"):
        SerialRecall.create({"min_sequence_length": 5, "max_sequence_length": 3}).setup()
    with pytest.raises(ConfigError, match="data_bits"):
        SerialRecall.create({"data_bits": 0}).setup()


def test_words_are_sized_by_the_phases_which_must_agree():
    # MI-Prometheus's files give control_bits and data_bits per phase only (training/validation/testing.problem)
    problem = SerialRecall.create({}, {phase: {"control_bits": 3, "data_bits": 4} for phase in ("train", "val", "test")})
    assert problem.data_definitions["inputs"]["shape"] == [None, 7]
    assert next(iter(problem.loader("val")))["inputs"].shape[-1] == 7
    with pytest.raises(ConfigError, match="data_bits differ"):
        SerialRecall.create({}, {"train": {"data_bits": 4}}).setup()
