"""pyrosys.problems.batching: token-budget batches of similar lengths, padded to their own longest, reshuffled
every epoch from the seed, shared out equally between DDP processes, and resumed mid-epoch batch for batch."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from pyrosys.errors import ConfigError
from pyrosys.problems.batching import Batching, PlannedBatches
from pyrosys.problems.protein import TOKEN, ProteinSequences

LENGTHS = np.random.default_rng(0).integers(1, 60, 101)


def split_of(lengths: np.ndarray) -> dict[str, torch.Tensor]:
    """Token ids (1 where a residue is, 0 padding), masks and targets of sequences of the given lengths."""
    masks = torch.arange(int(lengths.max()))[None, :] < torch.as_tensor(lengths)[:, None]
    return {"inputs": masks.long() * (1 + torch.arange(len(lengths))[:, None] % 20), "masks": masks,
            "targets": torch.arange(len(lengths))}


def batches(epochs=(0,), processed=None, **params) -> list[list[torch.Tensor]]:
    loader = PlannedBatches(split_of(LENGTHS), ["inputs", "masks"], Batching(**{"batch_size": 8, **params}),
                            shuffle=True, processed=processed)
    return [[batch["targets"] for batch in loader] for _ in epochs]


def test_a_token_budget_plan_holds_every_sample_once_within_the_budget_padded_to_each_batch_s_longest():
    loader = PlannedBatches(split_of(LENGTHS), ["inputs", "masks"], Batching(8, max_tokens=120), shuffle=True)
    seen = []
    for batch in loader:
        rows, width = batch["inputs"].shape
        assert rows * width <= 120 and batch["masks"].shape == (rows, width)
        assert width == int(LENGTHS[batch["targets"].numpy()].max()) == int(batch["masks"].sum(1).max())
        seen += batch["targets"].tolist()
    assert sorted(seen) == list(range(len(LENGTHS))) and len(loader) == len(list(loader))
    spread = [np.ptp(LENGTHS[b["targets"].numpy()]) for b in loader]
    assert np.mean(spread) < np.ptp(LENGTHS) / 5                 # similar lengths share a batch


def test_fixed_rows_in_random_order_are_padded_to_each_batch_s_longest_too():
    loader = PlannedBatches(split_of(LENGTHS), ["inputs", "masks"], Batching(8, by="order"), shuffle=True)
    sizes = [(len(b["targets"]), b["inputs"].shape[1], int(LENGTHS[b["targets"].numpy()].max())) for b in loader]
    assert sorted(rows for rows, _, _ in sizes) == [5] + [8] * 12 and all(w == longest for _, w, longest in sizes)


def test_the_batch_order_differs_between_epochs_and_repeats_for_the_same_seed():
    first, second = batches(epochs=(0, 1), max_tokens=120, seed=7)
    again = batches(epochs=(0, 1), max_tokens=120, seed=7)
    other = batches(epochs=(0,), max_tokens=120, seed=8)[0]
    same = all(torch.equal(a, b) for a, b in zip(first, second))
    assert not same and all(torch.equal(a, b) for a, b in zip(first + second, again[0] + again[1]))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


def test_validation_batches_are_not_shuffled():
    loader = PlannedBatches(split_of(LENGTHS), ["inputs", "masks"], Batching(8, max_tokens=120), shuffle=False)
    epochs = [torch.cat([b["targets"] for b in loader]) for _ in range(2)]
    assert torch.equal(*epochs) and np.all(np.diff(LENGTHS[epochs[0].numpy()]) >= 0)


@pytest.mark.parametrize("drop_last", [False, True])
def test_ddp_processes_get_disjoint_shares_of_equal_count(drop_last):
    plan = Batching(8, max_tokens=120, seed=1, drop_last=drop_last)
    assert len(plan.plan(LENGTHS, 0, True)) % 3                  # a remainder to handle
    shares = [plan.plan(LENGTHS, 0, True, rank=rank, world=3) for rank in range(3)]
    samples = [np.concatenate(share).tolist() for share in shares]
    assert len({len(share) for share in shares}) == 1
    assert len(set().union(*samples)) == sum(map(len, samples))           # disjoint
    assert (sum(map(len, samples)) == len(LENGTHS)) != drop_last          # all covered, or the remainder dropped
    assert all(len(b) * LENGTHS[b].max() <= 120 for share in shares for b in share)


def test_a_restored_epoch_goes_on_with_the_uninterrupted_batches():
    straight = batches(epochs=(0, 1), max_tokens=120, seed=2)
    interrupted = PlannedBatches(split_of(LENGTHS), ["inputs", "masks"], Batching(8, max_tokens=120, seed=2), True)
    list(interrupted)
    seen = []
    for batch in interrupted:                                  # epoch 1, cut short after 4 batches
        seen.append(batch["targets"])
        if len(seen) == 4:
            break
    resumed = PlannedBatches(split_of(LENGTHS), ["inputs", "masks"], Batching(8, max_tokens=120, seed=2), True,
                             processed=lambda: 4)
    resumed.load_state_dict(interrupted.state_dict())
    rest = [batch["targets"] for batch in resumed]
    assert len(seen + rest) == len(straight[1]) and all(torch.equal(a, b) for a, b in zip(seen + rest, straight[1]))


FASTA = "".join(f">S{i} label={'ab'[i % 2]}\n{'MKVLAG' * (1 + i % 7)}{'ACDEFGHIKLMNPQRSTVWY'[i % 20]}\n"
                for i in range(40))


def problem(write, **params) -> ProteinSequences:
    return ProteinSequences.create({"path": str(write("seqs.fasta", FASTA)), "seed": 0, "fractions": [0.5, 0.25, 0.25],
                                    "batching": {"by": "length", "max_tokens": 96}, **params})


def test_protein_sequences_trim_their_per_position_fields_to_each_batch_s_longest(write):
    p = problem(write)
    assert p.positional_fields() == ["inputs", "masks"]
    for phase in ("train", "test"):
        for batch in p.loader(phase):
            assert batch["inputs"].shape == batch["masks"].shape and batch["inputs"].numel() <= 96
            assert batch["masks"][:, -1].any() and batch["targets"].shape == (len(batch["inputs"]),)


def test_residue_targets_are_trimmed_with_the_inputs_they_label(write):
    residues = "".join(f">R{i} label={'0' * (5 + i % 9)}{'1' * (i % 2)}\n{'MKVLAGSTWYEQN'[:5 + i % 9]}{'C' * (i % 2)}\n"
                       for i in range(30))
    p = ProteinSequences.create({"path": str(write("residues.fasta", residues)), "seed": 0,
                                 "task": "residue_classification", "batching": {"by": "length", "max_tokens": 40}})
    assert p.positional_fields() == ["inputs", "targets", "masks"]
    for batch in p.loader("train"):
        assert batch["targets"].shape == batch["inputs"].shape and batch["masks"][:, -1].any()
        assert torch.equal(batch["targets"][batch["masks"]] == 1, batch["inputs"][batch["masks"]] == TOKEN["C"])


@pytest.mark.parametrize("batching, message", [
    ({"max_tokens": 40}, "line 13: S6 holds 43 residues, more than a batch of max_tokens 40 can hold"),
    ({"by": "order", "max_tokens": 100}, "takes no max_tokens"),
])
def test_a_batching_that_cannot_cut_the_data_is_refused(write, batching, message):
    with pytest.raises(ConfigError, match=message) as caught:
        problem(write, batching=batching).setup()
    assert caught.value.key == "problem.batching.max_tokens" and (caught.value.hint or "").startswith(
        "Raise max_tokens to at least 43" if "order" not in batching.values() else "Remove")


def test_the_longest_after_truncation_is_named_as_truncated(write):
    with pytest.raises(ConfigError, match="S4 holds 29 residues \\(after truncation to max_length\\)"):
        problem(write, max_length=29, batching={"max_tokens": 20}).setup()


def test_a_misspelt_batching_key_is_refused_with_the_nearest_name(write):
    with pytest.raises(ConfigError, match="batching must be null .* or a mapping of by: one of 'length', 'order'") as \
            caught:
        problem(write, batching={"max_token": 64})
    assert "Did you mean 'max_tokens'?" in caught.value.hint


def test_lightning_trains_on_the_plan_and_resumes_mid_epoch_with_the_uninterrupted_batches(write, tmp_path,
                                                                                            batch_recorder):
    Recorder = batch_recorder

    def fit(model, ckpt=None):
        trainer = pl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, limit_val_batches=0, default_root_dir=str(tmp_path))
        trainer.fit(model, datamodule=problem(write, batching={"max_tokens": 48}), ckpt_path=ckpt)
        assert isinstance(trainer.train_dataloader, PlannedBatches)        # neither wrapped nor replaced
        return model.seen

    straight = fit(Recorder())
    count = len(straight) // 2
    epochs = straight[:count], straight[count:]
    assert sorted(sum(epochs[0], [])) == sorted(sum(epochs[1], [])) and epochs[0] != epochs[1]
    first = fit(Recorder(stop_after=count + 2))                   # stopped 2 batches into the second epoch
    assert first == straight[:count + 2]
    assert first + fit(Recorder(), str(tmp_path / "mid.ckpt")) == straight


@pytest.mark.reliability
def test_ddp_over_gloo_gives_each_of_two_processes_its_share_of_the_plan(write, tmp_path, cli):
    """pyrosys-trainer under DDP (two CPU processes, gloo) trains each process on its share: as many steps
    an epoch as one process's share of the plan holds (about 40 s on 2 cores)."""
    batching = {"by": "length", "max_tokens": 96}
    config = write("exp.yaml", f"problem: {{name: ProteinSequences, path: seqs.fasta, fractions: [0.5, 0.25, 0.25], "
                               f"batching: {batching}}}\nmodel: {{name: ProteinCNN, channels: [4]}}\n"
                               "training: {seed: 3, terminal_conditions: {epoch_limit: 2}, trainer: {strategy: ddp, "
                               "devices: 2, accelerator: cpu, enable_progress_bar: false}}\nlogging: {mlflow: null}\n")
    p = problem(write, seed=3)
    share = PlannedBatches(p.phase_split("train").fields, ["inputs", "masks"],
                           Batching.from_params(batching, p.phases["train"]), True, rank=0, world=2)
    result = cli("pyrosys-trainer", "--c", config, "--outdir", tmp_path / "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (aggregate,) = (tmp_path / "out").glob("*/*/*/training_set_agg_statistics.csv")
    with aggregate.open(newline="") as rows:
        assert [int(row["episode"]) for row in csv.DictReader(rows)] == [len(share), 2 * len(share)]
