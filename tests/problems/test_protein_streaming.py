"""pyrosys.problems.protein_streaming: ProteinSequences with in_memory: false reads its FASTA file through the on-disk
index and gives the in-memory path's definitions and batches, shared out under DDP, resumed mid-epoch with
DataLoader workers, and trains to the same statistics."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from pyrosys.errors import ConfigError
from pyrosys.problems.batching import Batching
from pyrosys.problems.protein import ProteinSequences
from pyrosys.problems.protein_demo import write_demo
from pyrosys.problems.protein_streaming import StreamedBatches

TASKS = [("classification", "charge_class"), ("regression", "gravy")]


@pytest.fixture
def demo(tmp_path):
    return write_demo(tmp_path / "seqs.fasta", 300, 0)


def problem(path, **params) -> ProteinSequences:
    p = ProteinSequences.create({"path": str(path), "seed": 3, "label_column": "charge_class", **params})
    p.setup()
    return p


def batches(p: ProteinSequences, phase: str) -> list[dict]:
    return [dict(batch) for batch in p.loader(phase)]


@pytest.mark.parametrize("task, column", TASKS)
def test_on_disk_and_in_memory_give_the_same_definitions_and_batches(demo, task, column):
    params = {"task": task, "label_column": column, "max_length": 90, "batching": {"by": "length", "max_tokens": 400}}
    memory, disk = problem(demo, **params), problem(demo, in_memory=False, **params)
    assert disk.data_definitions == memory.data_definitions
    assert {name: len(split) for name, split in disk.splits.items()} == {"train": 240, "val": 30, "test": 30}
    for phase in ("train", "val"):
        expected, streamed = batches(memory, phase), batches(disk, phase)
        assert len(expected) == len(streamed) == len(disk.loader(phase))
        for a, b in zip(expected, streamed):
            assert a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)


def test_without_batching_rows_come_in_a_seeded_order_padded_to_each_batch_s_longest(demo):
    loader = problem(demo, in_memory=False, batch_size=32).loader("train")
    first, second = [dict(b) for b in loader], [dict(b) for b in loader]
    again = batches(problem(demo, in_memory=False, batch_size=32), "train")
    assert [len(b["targets"]) for b in first] == [32] * 7 + [16]
    assert all(b["inputs"].shape[1] == int(b["masks"].sum(1).max()) for b in first)
    assert all(torch.equal(a["inputs"], b["inputs"]) for a, b in zip(first, again))
    assert not all(torch.equal(a["inputs"], b["inputs"]) for a, b in zip(first, second))


def test_ddp_processes_read_disjoint_shares_of_the_split(demo):
    split = problem(demo, in_memory=False).splits["train"]
    shares = [StreamedBatches(split, Batching(16, max_tokens=500, seed=3), True, rank=rank, world=2)
              for rank in (0, 1)]
    seen = [[tuple(b["inputs"][i][b["masks"][i]].tolist()) for b in share for i in range(len(b["inputs"]))]
            for share in shares]
    assert len(shares[0]) == len(shares[1]) and not set(seen[0]) & set(seen[1])
    assert len(seen[0]) + len(seen[1]) == len(split)


def test_loader_workers_resume_mid_epoch_with_the_uninterrupted_run_s_batches(demo, tmp_path, batch_recorder):
    Recorder = batch_recorder

    def fit(model, ckpt=None):
        trainer = pl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, limit_val_batches=0, default_root_dir=str(tmp_path))
        data = problem(demo, in_memory=False, num_workers=2, batching={"max_tokens": 1200})
        trainer.fit(model, datamodule=data, ckpt_path=ckpt)
        assert isinstance(trainer.train_dataloader, StreamedBatches)       # neither wrapped nor replaced
        return model.seen

    straight = fit(Recorder())
    count = len(straight) // 2
    assert sorted(sum(straight[:count], [])) == sorted(sum(straight[count:], [])) and straight[:count] != \
        straight[count:]
    first = fit(Recorder(stop_after=count + 3))                    # stopped 3 batches into the second epoch
    assert first == straight[:count + 3]
    assert first + fit(Recorder(), str(tmp_path / "mid.ckpt")) == straight


def test_a_trainer_run_gives_the_same_training_statistics_on_disk_and_in_memory(demo, write, tmp_path,
                                                                                 trained_statistics):
    def train(in_memory: bool) -> list[dict]:
        config = write(f"exp_{in_memory}.yaml", f"""
            problem: {{name: ProteinSequences, path: seqs.fasta, label_column: charge_class, in_memory: {in_memory},
                       batching: {{by: length, max_tokens: 800}}}}
            model: {{name: ProteinCNN, channels: [8]}}
            training: {{seed: 5, terminal_conditions: {{epoch_limit: 3}}}}
            logging: {{mlflow: null, tensorboard: null}}
            """)
        return trained_statistics(config, tmp_path / f"out_{in_memory}")

    memory, disk = train(True), train(False)
    assert len(memory) >= 4 and memory == disk


def test_tables_on_disk_give_the_in_memory_definitions_and_batches(tmp_path):
    """CSV (a byte-order mark, CRLF, blank lines, quoted fields holding line ends, a split column) and TSV."""
    rng, rows = np.random.default_rng(4), []
    for i in range(90):
        sequence = "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), int(rng.integers(5, 40))))
        rows.append([f"t{i}", sequence, ["a", "b", "c"][i % 3], "train" if i % 5 else ["val", "test"][i % 2],
                     "two\nlines" if i % 4 == 0 else "x", f"{rng.normal():.3f}"])
    for name, delimiter in (("rows.csv", ","), ("rows.tsv", "\t")):
        path = tmp_path / name
        with path.open("w", newline="", encoding="utf-8-sig") as stream:
            writer = csv.writer(stream, delimiter=delimiter, lineterminator="\r\n")
            writer.writerows([["id", "sequence", "family", "split", "note", "value"], *rows[:40], [], *rows[40:]])
        for params in ({"split_column": "split", "label_column": "family"},
                       {"task": "regression", "label_column": "value"}):
            params = {**params, "batching": {"by": "length", "max_tokens": 150}}
            memory, disk = problem(path, **params), problem(path, in_memory=False, **params)
            assert disk.data_definitions == memory.data_definitions
            for phase in ("train", "val", "test"):
                for a, b in zip(batches(memory, phase), batches(disk, phase), strict=True):
                    assert a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)
    record = disk.splits["train"].index.record(0)
    assert (record.identifier, record.line, record.sequence) == ("t0", 3, rows[0][1])


def test_a_table_s_bad_rows_are_refused_on_disk_as_in_memory(tmp_path):
    path = tmp_path / "bad.csv"
    for text, message in (("id,sequence,label,split\na,MKV,x,train\nb,MKV,y,later\n", "split value 'later'"),
                          ("id,sequence,label\na,MKV,x\nb,MK1,y\n", "'1' in b is not an amino-acid letter"),
                          ("id,sequence,label\na,MKV,x\nb,,y\n", "b has an empty sequence")):
        path.write_text(text)
        errors = []
        for in_memory in (True, False):
            with pytest.raises(ConfigError) as caught:
                problem(path, in_memory=in_memory, label_column="label",
                        split_column="split" if "split" in text else None)
            errors.append(caught.value.paragraph())
        assert errors[0] == errors[1] and message in errors[0], errors


@pytest.mark.parametrize("params, message", [
    ({"classes": ["negative", "positive"]}, "is labelled 'neutral', not one of the declared classes"),
    ({"task": "regression"}, "header key 'charge_class=': the regression label 'neutral' of demo"
                             ),
    ({"batching": {"max_tokens": 20}}, "holds 120 residues"),
])
def test_bad_labels_and_budgets_are_refused_as_the_in_memory_path_refuses_them(demo, params, message):
    errors = []
    for in_memory in (True, False):
        with pytest.raises(ConfigError) as caught:
            problem(demo, in_memory=in_memory, **params)
        errors.append(caught.value.paragraph())
    assert errors[0] == errors[1] and message in errors[0], errors


def test_the_index_holds_lengths_not_sequences(demo):
    disk = problem(demo, in_memory=False)
    index = disk.splits["train"].index
    assert isinstance(index.columns["lengths"], np.memmap) and len(index) == 300


@pytest.fixture
def residues(tmp_path):
    """60 records with per-residue classes (`ss=HEC...`) and values (`acc=0.5,1.25,...`), some longer than 30."""
    rng, lines = np.random.default_rng(1), []
    for i in range(60):
        length = int(rng.integers(1, 50))
        sequence = "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), length))
        ss = "".join(rng.choice(list("HEC"), length))
        acc = ",".join(f"{value:.2f}" for value in rng.normal(3.0, 2.0, length))
        lines += [f">r{i} ss={ss} acc={acc}", sequence[:25], sequence[25:]]
    path = tmp_path / "residues.fasta"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("task, column", [("residue_classification", "ss"), ("residue_regression", "acc")])
def test_residue_tasks_on_disk_give_the_in_memory_definitions_and_batches(residues, task, column):
    params = {"task": task, "label_column": column, "max_length": 30, "batching": {"by": "length", "max_tokens": 120}}
    memory, disk = problem(residues, **params), problem(residues, in_memory=False, **params)
    expected, found = memory.data_definitions, disk.data_definitions
    if task == "residue_regression":          # streamed sums: equal to rounding
        statistics = [found["targets"].pop("standardize"), expected["targets"].pop("standardize")]
        assert statistics[0] == {key: pytest.approx(value, rel=1e-12) for key, value in statistics[1].items()}
    assert found == expected and found["targets"]["per_position"]
    for phase in ("train", "val", "test"):
        for a, b in zip(batches(memory, phase), batches(disk, phase), strict=True):
            assert a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in ("inputs", "masks"))
            assert torch.allclose(a["targets"], b["targets"], rtol=1e-6, atol=1e-6)
            assert a["targets"].dtype == b["targets"].dtype and not b["targets"][~b["masks"]].any()


@pytest.mark.parametrize("params, label, message", [
    ({"task": "residue_classification", "classes": ["H", "E"]}, "ss=HEC", "residue 3 of bad is labelled 'C'"),
    ({"task": "residue_classification"}, "ss=HE", "bad has 2 residue labels but its sequence is 3 residues long"),
    ({"task": "residue_regression"}, "ss=1,x,2", "'x' at residue 2 of bad is not a finite number"),
])
def test_bad_residue_labels_are_refused_on_disk_as_in_memory(tmp_path, params, label, message):
    path = tmp_path / "bad.fasta"
    path.write_text(f">good ss=HHH\nMKV\n>bad {label}\nMKV\n>other ss=EEE\nMKV\n"
                    if "regression" not in params["task"] else
                    f">good ss=1,2,3\nMKV\n>bad {label}\nMKV\n>other ss=1,1,1\nMKV\n")
    errors = []
    for in_memory in (True, False):
        with pytest.raises(ConfigError) as caught:
            problem(path, in_memory=in_memory, label_column="ss", **params)
        errors.append(caught.value.paragraph())
    assert errors[0] == errors[1] and message in errors[0], errors


def test_multilabel_on_disk_gives_the_in_memory_terms_targets_and_unseen_counts(tmp_path, caplog):
    rng, lines = np.random.default_rng(2), []
    for i in range(80):
        terms = rng.choice([f"GO:{n:07d}" for n in range(12)], int(rng.integers(1, 4)), replace=False).tolist()
        lines += [f">m{i} go={';'.join(terms + (['GO:rare' + str(i)] if i % 9 == 0 else []))}",
                  "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), int(rng.integers(5, 40))))]
    path = tmp_path / "terms.fasta"
    path.write_text("\n".join(lines) + "\n")
    params = {"task": "multilabel", "label_column": "go", "batching": {"by": "length", "max_tokens": 200}}
    memory, disk = problem(path, **params), problem(path, in_memory=False, **params)
    assert disk.data_definitions == memory.data_definitions and disk.data_definitions["targets"]["unseen"]["terms"]
    for phase in ("train", "val", "test"):
        for a, b in zip(batches(memory, phase), batches(disk, phase), strict=True):
            assert a.keys() == b.keys() == {"inputs", "targets", "masks", "unseen_terms"}
            assert all(torch.equal(a[name], b[name]) and a[name].dtype == b[name].dtype for name in a)


@pytest.mark.parametrize("label, message", [(";", "has no label"), ("GO:only", "none of the terms of m1 (GO:only)")])
def test_bad_multilabel_labels_are_refused_on_disk_as_in_memory(tmp_path, label, message):
    path = tmp_path / "terms.fasta"
    path.write_text("".join(f">m{i} go={label if i == 1 else 'GO:1'}\nMKV\n" for i in range(12)))
    errors = []
    for in_memory in (True, False):
        with pytest.raises(ConfigError) as caught:
            problem(path, in_memory=in_memory, task="multilabel", label_column="go", seed=0)
        errors.append(caught.value.paragraph())
    assert errors[0] == errors[1] and message in errors[0], errors


def test_a_residue_classification_run_gives_the_same_training_statistics_on_disk_and_in_memory(residues, write,
                                                                                                  tmp_path, cli):
    def train(in_memory: bool) -> list[dict]:
        config = write(f"res_{in_memory}.yaml", f"""
            problem: {{name: ProteinSequences, path: residues.fasta, task: residue_classification, label_column: ss,
                       max_length: 30, in_memory: {in_memory}, batching: {{by: length, max_tokens: 200}}}}
            model: {{name: ProteinCNN, channels: [8], kernel_size: 3}}
            training: {{seed: 5, terminal_conditions: {{epoch_limit: 2}}}}
            logging: {{mlflow: null, tensorboard: null}}
            """)
        result = cli("pyrosys-trainer", "--c", config, "--outdir", tmp_path / f"res_{in_memory}", *cli.FAST,
                     cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        (table,) = (tmp_path / f"res_{in_memory}").glob("*/*/*/validation_statistics.csv")
        with table.open(newline="") as lines:
            return [{k: v for k, v in row.items() if "time" not in k and "second" not in k}
                    for row in csv.DictReader(lines)]

    memory = train(True)
    assert len(memory) >= 2 and memory == train(False)


def test_lightning_s_teardown_closes_the_sequence_file(demo):
    import os

    def descriptors() -> list[str]:
        return [name for name in os.listdir("/proc/self/fd")
                if os.path.exists(f"/proc/self/fd/{name}") and os.readlink(f"/proc/self/fd/{name}") == str(demo)]

    p = problem(demo, in_memory=False, batch_size=32)
    assert batches(p, "val") and len(descriptors()) == 1
    p.teardown("fit")
    assert not descriptors() and batches(p, "val") and len(descriptors()) == 1
    p.teardown("validate")
    assert not descriptors()


def test_drop_last_with_a_split_smaller_than_one_batch_is_refused_as_in_memory(demo):
    refusals = []
    for in_memory in (True, False):
        p = ProteinSequences.create({"path": str(demo), "seed": 3, "label_column": "charge_class", "batch_size": 64,
                                     "drop_last": True, "in_memory": in_memory}, {"val": {"split": "val"}})
        assert len(list(p.loader("train"))) == 3
        with pytest.raises(ConfigError) as caught:
            p.loader("val")
        refusals.append((caught.value.message, caught.value.key, caught.value.hint))
    assert refusals[0] == refusals[1] and refusals[1][1] == "problem.drop_last"
    assert "split holds 30 samples, fewer than one batch of 64, and drop_last drops it" in refusals[1][0]
