"""pyrosys.problems.benchmark: benchmark sets read out of installed wheels (fake ones here, in the same layout),
split 70/10/20 by the seed; an unknown set or a missing package refused before anything is written."""
from __future__ import annotations

import csv
import importlib
from pathlib import Path

import pytest

from pyrosys.errors import ConfigError
from pyrosys.problems import benchmark
from pyrosys.problems.benchmark import ProteinBenchmark
from pyrosys.problems.protein import VOCABULARY
from pyrosys.workers import trainer

SEQUENCES = ["MKTAYIAKQR", "GLFDIVKKVV", "ACDEFGHIKL", "WWPPGGSSTT", "MKVLAAGIVG", "QQRRKKEEDD", "LLLLIIIIVV",
             "CCCCYYYYFF", "NNNNHHHHMM", "KRKRKRKRKR"]


@pytest.fixture
def wheels(tmp_path, monkeypatch, distribution):
    """Fake installed aaanalysis and modlamp packages holding tiny sets in the real files' layouts."""
    for name in ("aaanalysis", "modlamp"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise ImportError('PyroSys reads the data without importing')\n")
        distribution(name, "")
    tables = tmp_path / "aaanalysis" / "_data" / "benchmarks"
    tables.mkdir(parents=True)
    rows = "".join(f"SOL_{i}\tname_{i}\t{s}\t{i % 2}\n" for i, s in enumerate(SEQUENCES))
    rows = rows.replace("MKTAYIAKQR", "MKTA!YIAKQR")                # a chain break, as SEQ_DISULFIDE marks them
    (tables / "SEQ_SOLUBLE.tsv").write_text("entry\tgene\tsequence\tlabel\n" + rows)
    (tables / "AA_FURIN.tsv").write_text("entry\tgene\tsequence\tlabel\nF_1\tf\tMKRR\t0,0,1,0\n")
    (tmp_path / "modlamp" / "data").mkdir()
    peptides = "".join(f"{s}, {i % 2}\n" for i, s in enumerate(SEQUENCES))
    (tmp_path / "modlamp" / "data" / "AMPvsTMset.csv").write_text("10,1,TM,AMP\n" + peptides)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_a_set_is_read_from_its_installed_package_and_split_70_10_20_by_the_seed(wheels):
    problem = ProteinBenchmark.create({"set": "SEQ_SOLUBLE", "seed": 3})
    problem.setup()
    assert problem.data_file() == str(wheels / "aaanalysis" / "_data" / "benchmarks" / "SEQ_SOLUBLE.tsv")
    assert problem.data_definitions["targets"]["classes"] == ["0", "1"]
    assert problem.data_definitions["targets"]["task"] == "classification"
    assert [len(problem.splits[s]) for s in ("train", "val", "test")] == [7, 1, 2]
    again = ProteinBenchmark.create({"set": "SEQ_SOLUBLE", "seed": 3})
    again.setup()
    assert again.splits["test"].fields["inputs"].equal(problem.splits["test"].fields["inputs"])
    lengths = sorted(int(m.sum()) for s in problem.splits.values() for m in s.fields["masks"])
    assert lengths == [10] * 9 + [11]           # the chain break '!' reads as X, one residue


def test_modlamp_files_read_as_its_loaders_read_them_and_residue_sets_ask_a_residue_task(wheels):
    records, _ = benchmark.read_set("AMPvsTM")
    assert [r.sequence for r in records] == SEQUENCES and [r.label for r in records] == ["0", "1"] * 5
    assert ProteinBenchmark.create({"set": "AA_FURIN"}).task == "residue_classification"


def test_the_export_writes_the_problems_split(wheels, tmp_path):
    assert benchmark.main(["AMPvsTM", str(tmp_path / "amp.csv"), "--seed", "3"]) == 0
    rows = list(csv.DictReader((tmp_path / "amp.csv").open()))
    problem = ProteinBenchmark.create({"set": "AMPvsTM", "seed": 3})
    problem.setup()
    test_ids = problem.splits["test"].fields["inputs"][:, 0].tolist()
    assert [r["sequence"][0] for r in rows if r["split"] == "test"] == [VOCABULARY[i] for i in test_ids]
    assert benchmark.main(["AMPvsTN", str(tmp_path / "x.csv")]) == 2 and not (tmp_path / "x.csv").exists()


def test_an_unknown_set_is_refused_naming_the_nearest(wheels):
    with pytest.raises(ConfigError, match="one of 'SEQ_SOLUBLE'.*Did you mean 'SEQ_CAPSID'") as error:
        ProteinBenchmark.create({"set": "SEQ_CAPSD"})
    assert error.value.key == "problem.set"
    assert benchmark.nearest_sets("SEQ_CAPSD")[0] == "SEQ_CAPSID"


def test_a_missing_package_exits_2_with_the_pip_command_and_nothing_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(__import__("sys").modules, "modlamp", None)   # what an uninstalled package looks like
    config = tmp_path / "amp.yaml"
    config.write_text("problem: {name: ProteinBenchmark, set: AMPvsTM}\nmodel: {name: ProteinCNN, channels: [4]}\n"
                      "logging: {mlflow: null, tensorboard: null}\n")
    status = trainer.main(["--c", str(config), "--outdir", str(tmp_path / "experiments")])
    error = capsys.readouterr().err.strip()
    assert status == 2 and "\n" not in error and "Traceback" not in error
    assert "modlamp is not installed" in error and 'pip install "pyrosys[benchmarks]"' in error
    assert not (tmp_path / "experiments").exists()


def test_the_baselines_features_are_composition_without_padding_and_windows_centred_on_each_residue(monkeypatch):
    import numpy as np

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "benchmarks"))
    proteins = importlib.import_module("proteins")
    features = proteins.composition(np.array([[1, 1, 2, 21, 0, 0]]))        # A A C X, then padding
    assert features[0, :2].tolist() == pytest.approx([2 / 3, 1 / 3]) and features[0, :20].sum() == pytest.approx(1)
    assert features[0, 20 + 0] == pytest.approx(0.5) and features[0, 20 + 1] == pytest.approx(0.5)  # AA, AC
    windows = proteins.residue_windows(np.array([[3, 4, 5, 0]]), np.array([[True, True, True, False]]))
    assert windows.shape == (3, 2 * proteins.WINDOW + 1)
    assert windows[:, proteins.WINDOW].tolist() == [3, 4, 5] and windows[0, :proteins.WINDOW].tolist() == [0] * 7
