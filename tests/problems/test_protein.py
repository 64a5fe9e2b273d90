"""pyrosys.problems.protein: FASTA and tables in, padded token ids and masks out, bad data named precisely."""
from __future__ import annotations

import re

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


# terms: a dozen sequences; GO:9 (val) and GO:8 (test) occur outside training only
MULTILABEL = """id,sequence,terms,split
a,MKKLLVVAAG,GO:1;GO:2,train
b,MKKRRVVAAG,GO:1,train
c,DDEEAAGGLL,GO:2; GO:3,train
d,DDEEWWGGLL,GO:3,train
e,MKKLLWWAAG,GO:2;GO:1;GO:1,train
f,DDEEAAKKLL,GO:3,train
g,MKKLLVVAAGG,GO:1;GO:9,val
h,DDEEAAGGLW,GO:3,val
i,MKKLLVVAWG,GO:1,test
j,DDEEWWGGLK,GO:2;GO:3;GO:8,test
k,MKKRRVVAGG,GO:1,test
l,DDEEAWGGLL,GO:3,val
"""


def multilabel(path, **params):
    return problem(path, task="multilabel", label_column="terms", split_column="split", **params)


def test_multilabel_terms_come_from_training_and_unseen_ones_are_counted_once(write, caplog):
    p = multilabel(write("terms.csv", MULTILABEL))
    with caplog.at_level("WARNING"):
        p.setup()
        targets = p.data_definitions["targets"]
    assert targets["terms"] == ["GO:1", "GO:2", "GO:3"] and targets["term_counts"] == [3, 3, 3]
    assert targets["unseen"] == {"terms": 2, "annotations": 2} and targets["shape"] == [3]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "2 terms (2 annotations)" in warnings[0] and "terms.csv" in warnings[0]
    train, test = p.splits["train"].fields, p.splits["test"].fields
    assert torch.equal(train["targets"][4], torch.tensor([1.0, 1.0, 0.0]))      # GO:2;GO:1;GO:1
    assert torch.equal(test["targets"][1], torch.tensor([0.0, 1.0, 1.0])) and test["unseen_terms"].tolist() == [0, 1, 0]


def test_multilabel_fasta_terms_are_a_header_key(write):
    p = problem(write("terms.fasta", ">P1 go=GO:2;GO:1\nMKV\n>P2 go=GO:1;GO:2\nMKL\n>P3 go=GO:2;;GO:1\nMKA\n"),
                task="multilabel", label_column="go")
    p.setup()
    assert p.data_definitions["targets"]["terms"] == ["GO:1", "GO:2"]
    assert torch.equal(p.splits["test"].fields["targets"], torch.ones(1, 2))


@pytest.mark.parametrize("text, message", [
    (MULTILABEL.replace("GGLL,GO:3,val", "GGLL,GO:7;GO:8,val"),
     "line 13, column 'terms': none of the terms of l (GO:7, GO:8)"),
    (MULTILABEL.replace("GGLL,GO:3,val", "GGLL, ; ,val"), "line 13: l has no label"),
])
def test_a_multilabel_row_without_training_terms_is_refused_naming_line_and_terms(write, text, message):
    path = write("terms.csv", text)
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        multilabel(path).setup()
    assert caught.value.file == str(path)
