"""Data that resolve but cannot train or test: a split that ends up empty, a single class, text that is not
UTF-8, a table the csv module cannot read, a manifest's broken regular expression, labels or features
that are not finite numbers. Each is refused when the data are read, before the experiment folder:
exit status 2, one paragraph naming the file, the line (or row) and the column or key, no traceback."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from pyrosys.errors import ConfigError
from pyrosys.problems.problem import InMemoryProblem, Problem

# the shared check of a refusal (the tests are no package: pytest imports them by their path)
_spec = importlib.util.spec_from_file_location("test_values_for_data", Path(__file__).with_name("test_values.py"))
values = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(values)

RUN = """\
model: {name: MODEL}
training: {seed: 5, terminal_conditions: {epoch_limit: 1}, trainer: {enable_progress_bar: false}}
logging: {mlflow: null, tensorboard: null}
"""
PROTEIN = "problem: {name: ProteinSequences, path: seqs.csv, fractions: [1, 1, 1]}\n" + RUN.replace("MODEL",
                                                                                                  "ProteinCNN")
REGRESSION = PROTEIN.replace("fractions: [1, 1, 1]", "fractions: [1, 1, 1], task: regression, label_column: gravy")
FASTA = PROTEIN.replace("seqs.csv", "seqs.fasta")
MANIFEST = """\
problem:
  name: Manifest
  path: m.csv
  loaders: {inputs: {name: LoadColumns, startswith: feature_}, targets: {name: LoadClass, column: label}}
""" + RUN.replace("MODEL", "MLP")
DIGITS = values.BASE


def table(count: int, labels: str = "ab", gravy: str | None = None, row: int = 2) -> str:
    """A sequence table of `count` rows; `gravy` replaces the regression label on line `row`."""
    lines = [f"s{i},{'MKVLAGW'[: 2 + i % 5]},{labels[i % len(labels)]},"
             + (gravy if gravy is not None and i + 2 == row else f"{i / 10}") for i in range(count)]
    return "id,sequence,label,gravy\n" + "\n".join(lines) + "\n"


def manifest(splits: str = "train,val,test", labels: str = "yes,no", feature: str | None = None, row: int = 2) -> str:
    """A manifest of 12 rows; `feature` replaces feature_a on line `row`."""
    names, classes = splits.split(","), labels.split(",")
    return "id,split,label,feature_a,feature_b,image\n" + "".join(
        f"s{i},{names[i % len(names)]},{classes[i % len(classes)]},"
        f"{feature if feature is not None and i + 2 == row else i},{i * 2},img{i}.npy\n" for i in range(12))


NUMPY_MANIFEST = MANIFEST.replace("{name: LoadColumns, startswith: feature_}", "{name: LoadNumpy, column: image}")
# name: (files, more flags, fragments the paragraph must hold); bytes are written as they are
CORPUS = {
    # a split that ends up empty
    "fractions_leave_test_empty": ({"exp.yaml": DIGITS.replace("batch_size: 64", "fractions: [1, 1, 1.0e-4]")}, [],
                                   ["exp.yaml", "problem.fractions", "'test'", "holds no samples"]),
    "four_row_csv": ({"exp.yaml": PROTEIN.replace(", fractions: [1, 1, 1]", ""), "seqs.csv": table(4)}, [],
                     ["seqs.csv", "problem.fractions", "no samples"]),
    "split_column_without_val_rows": ({"exp.yaml": PROTEIN.replace("fractions: [1, 1, 1]", "split_column: part"),
                                       "seqs.csv": "sequence,label,part\nMKV,a,train\nMKK,b,train\nMVV,a,test\n"},
                                      [], ["seqs.csv", "problem.split_column", "'val'"]),
    "manifest_without_test_rows": ({"exp.yaml": MANIFEST, "m.csv": manifest("train,val")}, [],
                                   ["m.csv", "problem.split_column", "'test'"]),
    "drop_last_drops_every_batch": ({"exp.yaml": DIGITS}, ["--set", "problem.drop_last=true",
                                                          "problem.batch_size=1500"],
                                    ["problem.drop_last", "fewer than one batch"]),
    # a classification with a single class
    "single_class_table": ({"exp.yaml": PROTEIN, "seqs.csv": table(9, labels="a")}, [],
                           ["seqs.csv", "problem.label_column", "single class"]),
    "single_class_manifest": ({"exp.yaml": MANIFEST, "m.csv": manifest(labels="yes")}, [],
                              ["m.csv", "problem.loaders.targets", "single class"]),
    # text that is not UTF-8
    "csv_not_utf8": ({"exp.yaml": PROTEIN, "seqs.csv": table(6).encode().replace(b"s3,", b"s\xe93,")}, [],
                     ["seqs.csv", "line 5, column 2", "UTF-8"]),
    "fasta_not_utf8": ({"exp.yaml": FASTA, "seqs.fasta": b">P1 label=a\nMKV\n>P2 label=b\nMK\n>P3 label=\xff\nMV\n"},
                       [], ["seqs.fasta", "line 5", "UTF-8"]),
    "manifest_not_utf8": ({"exp.yaml": MANIFEST, "m.csv": manifest().encode().replace(b"s4,", b"s4\xa0\xa1,")}, [],
                          ["m.csv", "line 6", "UTF-8"]),
    # a table the csv module cannot read
    "csv_field_over_the_limit": ({"exp.yaml": PROTEIN, "seqs.csv": table(3) + "s9," + "M" * 140_000 + ",a,1\n"}, [],
                                 ["seqs.csv", "line 5", "field limit"]),
    "csv_unclosed_quote": ({"exp.yaml": PROTEIN, "seqs.csv": 'id,sequence,label,gravy\ns0,"MKV,a,1\n'
                                                             + ("s1,MKV,b,2\n" + "M" * 70_000 + "\n") * 2}, [],
                           ["seqs.csv", "line 2", "unclosed quote"]),
    # a manifest's loader that cannot be built
    "manifest_regex_bracket": ({"exp.yaml": MANIFEST.replace("startswith: feature_", "regex: '['"),
                                "m.csv": manifest()}, [], ["problem.loaders.inputs", "regex", "'['"]),
    # labels and features that are not finite numbers
    "regression_label_nan": ({"exp.yaml": REGRESSION, "seqs.csv": table(9, gravy="nan", row=4)}, [],
                             ["seqs.csv", "line 4", "column 'gravy'", "'nan'", "problem.label_column"]),
    "regression_label_inf": ({"exp.yaml": REGRESSION, "seqs.csv": table(9, gravy="-inf", row=7)}, [],
                             ["seqs.csv", "line 7", "'-inf'"]),
    "regression_label_missing": ({"exp.yaml": REGRESSION, "seqs.csv": table(9, gravy="n/a", row=3)}, [],
                                 ["seqs.csv", "line 3", "'n/a'"]),
    "fasta_regression_label_nan": ({"exp.yaml": FASTA.replace("fractions: [1, 1, 1]", "fractions: [1, 1, 1], "
                                                                                       "task: regression"),
                                    "seqs.fasta": ">P1 label=1.5\nMKV\n>P2 label=NaN\nMK\n>P3 label=2\nMV\n"}, [],
                                   ["seqs.fasta", "line 3", "'NaN'"]),
    "manifest_feature_nan": ({"exp.yaml": MANIFEST, "m.csv": manifest(feature="nan", row=5)}, [],
                             ["m.csv", "line 5", "column 'feature_a'", "finite"]),
    "manifest_feature_inf": ({"exp.yaml": MANIFEST, "m.csv": manifest(feature="inf", row=9)}, [],
                             ["m.csv", "line 9", "column 'feature_a'"]),
    "manifest_numpy_file_nan": ({"exp.yaml": NUMPY_MANIFEST, "m.csv": manifest(), "img*.npy": "nan at 3"}, [],
                                ["m.csv", "line 5", "column 'image'", "img3.npy"]),
}


def write_files(folder: Path, files: dict) -> None:
    """Write a case's files; 'img*.npy': 'nan at N' writes twelve small arrays, the Nth holding a NaN."""
    for name, content in files.items():
        if name == "img*.npy":
            for i in range(12):
                np.save(folder / f"img{i}.npy", np.full(3, np.nan if f"at {i}" in content else i, dtype=np.float32))
        elif isinstance(content, bytes):
            (folder / name).write_bytes(content)
        else:
            (folder / name).write_text(content)


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_data_that_cannot_train_or_test_exit_2_naming_file_and_line_with_nothing_written(case, tmp_path, capsys):
    files, flags, fragments = CORPUS[case]
    write_files(tmp_path, files)
    values.refused(tmp_path, capsys, ["--c", str(tmp_path / "exp.yaml"), *flags], fragments)


class Measurements(InMemoryProblem):
    """A problem of the user's own, whose data hold a NaN in its first test sample."""

    def prepare(self) -> tuple[dict, dict]:
        inputs = torch.ones(6, 2)
        inputs[4, 1] = float("nan")
        targets = torch.arange(6.0)
        parts = {"train": slice(0, 3), "val": slice(3, 4), "test": slice(4, 6)}
        return ({name: {"inputs": inputs[part], "targets": targets[part]} for name, part in parts.items()},
                {"inputs": {"kind": "vector", "shape": [2]}, "targets": {"shape": []}})

    task = "regression"


def test_any_in_memory_problem_refuses_values_that_are_not_finite_naming_field_split_and_sample():
    with pytest.raises(ConfigError) as caught:
        Measurements.create({}).setup()
    assert "the inputs of sample 1 of the test split are not finite" in caught.value.message


class Silent(Problem):
    """A problem of the user's own whose validation loader holds no batch."""

    def define_data(self) -> dict:
        return {"inputs": {"kind": "vector", "shape": [2]}, "targets": {"shape": [], "num_classes": 2}}

    def setup(self, stage: str | None = None) -> None:
        pass

    def loader(self, phase: str) -> list:
        return [] if phase == "val" else [{"inputs": torch.ones(1, 2), "targets": torch.zeros(1)}]


def test_a_phase_of_a_problem_of_ones_own_that_holds_no_batch_is_refused_before_training():
    from pyrosys.workers.pipeline.build import build_problem
    from pyrosys.workers.pipeline.resolve import ComponentPlan

    with pytest.raises(ConfigError) as caught:
        build_problem(ComponentPlan(Silent, Silent.get_params(), {}))
    assert caught.value.key == "validation.problem" and "holds no batch" in caught.value.message
