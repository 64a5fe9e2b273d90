"""PhaseBuffer: per-batch statistics kept as they come, turned into rows and aggregates in one go."""
from __future__ import annotations

import pytest
import torch

from pyrosys.callbacks.statistics import PhaseBuffer


def test_rows_last_and_aggregate_from_batches_of_tensors_and_numbers():
    buffer = PhaseBuffer()
    buffer.add({"loss": torch.tensor(2.0), "accuracy": torch.tensor(0.5)}, 10)
    buffer.add({"loss": torch.tensor(1.0, dtype=torch.float64), "accuracy": 1}, 30)
    assert buffer.rows() == [{"loss": 2.0, "accuracy": 0.5}, {"loss": 1.0, "accuracy": 1.0}]
    assert buffer.last() == {"loss": 1.0, "accuracy": 1.0}
    aggregate = buffer.aggregate()
    assert aggregate["loss"] == pytest.approx(1.25) and aggregate["loss_mean"] == pytest.approx(1.5)
    assert aggregate["loss_min"] == 1.0 and aggregate["loss_max"] == 2.0 and aggregate["samples"] == 40.0
    buffer.clear()
    assert len(buffer) == 0 and buffer.rows() == []


def test_values_attached_to_a_graph_are_kept_without_it():
    weight = torch.tensor(3.0, requires_grad=True)
    buffer = PhaseBuffer()
    buffer.add({"loss": weight * 2}, 1)
    assert not buffer.table.requires_grad and buffer.table.grad_fn is None and buffer.last() == {"loss": 6.0}


def tensors_held(buffer: PhaseBuffer) -> int:
    """The tensors a buffer's attributes hold, through lists, tuples, sets and dicts."""
    count, stack = 0, list(vars(buffer).values())
    while stack:
        item = stack.pop()
        if isinstance(item, torch.Tensor):
            count += 1
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set)):
            stack.extend(item)
    return count


def test_a_long_epoch_s_statistics_hold_one_table_not_a_tensor_a_value():
    buffer = PhaseBuffer()
    for step in range(10_000):
        buffer.add({"loss": torch.tensor(1.0 / (step + 1)), "accuracy": torch.tensor(0.5)}, 8)
    assert tensors_held(buffer) == 1 and buffer.table.numel() <= 2 * 10_000 * 2   # its room: 16 bytes a batch
    assert len(buffer) == 10_000 and buffer.aggregate()["loss_max"] == 1.0
    assert buffer.rows()[-1]["loss"] == pytest.approx(1e-4)
