"""pyrosys.problems.protein: FASTA and tables in, padded token ids and masks out, bad data named precisely."""
from __future__ import annotations

import pytest
import torch

from pyrosys.errors import ConfigError
from pyrosys.problems.protein import VOCABULARY, ProteinSequences
from pyrosys.problems.protein_demo import KYTE_DOOLITTLE, charge_class, gravy, write_demo

FASTA = """>P1 label=membrane
MKTLLV
ILAG
>P2 label=soluble
mkdeer
>P3 label=membrane
XBZUOAC
"""


def problem(path, **params):
    return ProteinSequences.create({"path": str(path), "seed": 0, "fractions": [1, 1, 1], **params})


def test_fasta_records_become_padded_tokens_masks_and_classes(write):
    p = problem(write("seqs.fasta", FASTA))
    p.setup()
    definitions = p.data_definitions
    assert definitions["inputs"]["kind"] == "tokens" and definitions["inputs"]["shape"] == [10]
    assert definitions["targets"]["classes"] == ["membrane", "soluble"]
    everything = torch.cat([p.splits[s].fields["masks"].sum(1) for s in ("train", "val", "test")])
    assert sorted(everything.tolist()) == [6, 7, 10]
    ids = torch.cat([p.splits[s].fields["inputs"] for s in ("train", "val", "test")])
    assert set(ids.unique().tolist()) <= set(range(len(VOCABULARY)))


def test_tables_with_a_split_column_and_regression_labels(write):
    path = write("seqs.tsv", "id\tseq\tvalue\tpart\na\tMKV\t1.5\ttrain\nb\tAAAA\t2.5\ttrain\n"
                             "c\tWW\t0.5\tval\nd\tCC\t3.0\ttest\n")
    p = problem(path, sequence_column="seq", label_column="value", split_column="part", task="regression",
                standardize=False)
    p.setup()
    assert torch.equal(p.splits["train"].fields["targets"], torch.tensor([1.5, 2.5]))
    assert len(p.splits["val"]) == 1 and p.data_definitions["targets"]["task"] == "regression"


def test_long_sequences_are_truncated_to_max_length(write):
    p = problem(write("seqs.csv", "sequence,label\nMKVLAAGGGG,a\nMK,b\nMKV,a\n"), max_length=4)
    p.setup()
    assert p.data_definitions["inputs"]["shape"] == [4]


def test_an_invalid_letter_is_named_with_its_line_and_column(write):
    path = write("bad.fasta", ">P1 label=a\nMKTL\nMKJV\n")
    with pytest.raises(ConfigError) as caught:
        problem(path).setup()
    assert "line 3, column 3: 'J'" in caught.value.message and caught.value.file == str(path)


def test_an_invalid_letter_in_a_table_names_line_and_column(write):
    path = write("bad.csv", "sequence,label\nMKV,a\nMK1V,b\n")
    with pytest.raises(ConfigError, match="line 3, column 'sequence', letter 3: '1'"):
        problem(path).setup()


@pytest.mark.parametrize("name, text, message", [
    ("empty.fasta", "", "holds no sequences"),
    ("empty.csv", "sequence,label\n", "holds no sequences"),
    ("nolabel.csv", "sequence,class\nMKV,a\n", "no column 'label'"),
    ("badsplit.csv", "sequence,label,split\nMKV,a,training\n", "'training' is not train, val or test"),
    ("orphan.fasta", "MKV\n>P1 label=a\nMKV\n", "before the first '>' header"),
    ("nolabel.fasta", ">P1\nMKV\n", "has no label"),
])
def test_bad_files_are_config_errors_naming_the_file(write, name, text, message):
    params = {"split_column": "split"} if "split" in text else {}
    path = write(name, text)
    with pytest.raises(ConfigError, match=message) as caught:
        problem(path, **params).setup()
    assert caught.value.file == str(path)


def test_demo_generator_labels_are_the_real_properties(tmp_path):
    assert gravy("AIV") == pytest.approx((1.8 + 4.5 + 4.2) / 3)
    assert charge_class("KKKR") == "positive" and charge_class("DEDE") == "negative"
    path = write_demo(tmp_path / "demo.csv", count=50, seed=1)
    rows = path.read_text().splitlines()[1:]
    for row in rows:
        _, sequence, value, charge = row.split(",")
        assert float(value) == pytest.approx(gravy(sequence), abs=1e-4) and charge == charge_class(sequence)
    assert set("".join(r.split(",")[1] for r in rows)) <= set(KYTE_DOOLITTLE)
    fasta = write_demo(tmp_path / "demo.fasta", count=5, seed=1)
    p = problem(fasta, task="regression", label_column="gravy")
    p.setup()
    assert sum(len(split) for split in p.splits.values()) == 5
