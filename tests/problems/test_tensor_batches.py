"""In-memory batches resume mid-epoch: a checkpoint keeps the epoch's order, and the iteration after a
restore goes on past the batches the trainer processed, with the uninterrupted iteration's batches."""
from __future__ import annotations

import torch

from pyrosys.problems.problem import TensorBatches, TensorSplit


def batches(split: TensorSplit, **kwargs) -> TensorBatches:
    return TensorBatches(split, batch_size=4, shuffle=True, drop_last=False, **kwargs)


def test_a_restored_epoch_goes_on_with_its_order_past_the_batches_processed():
    split = TensorSplit({"inputs": torch.arange(30.0)})
    torch.manual_seed(0)
    straight = [batch["inputs"] for batch in batches(split)]
    torch.manual_seed(0)
    interrupted = batches(split)
    seen = []
    for batch in interrupted:
        seen.append(batch["inputs"])
        if len(seen) == 3:
            break
    state = interrupted.state_dict()
    torch.manual_seed(123)                                    # another process, other random state
    resumed = batches(split, processed=lambda: 3)
    resumed.load_state_dict(state)
    rest = [batch["inputs"] for batch in resumed]
    assert len(rest) == len(straight) - 3
    assert all(torch.equal(a, b) for a, b in zip(seen + rest, straight))


def test_a_restore_at_an_epoch_s_end_or_start_draws_a_new_order():
    split = TensorSplit({"inputs": torch.arange(30.0)})
    for processed in (0, 8):                                  # 8 batches: the whole epoch
        loader = batches(split, processed=lambda done=processed: done)
        loader.load_state_dict({"order": torch.arange(30)})
        assert len(list(loader)) == 8 and not torch.equal(loader.order, torch.arange(30))
