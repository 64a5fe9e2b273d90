"""End to end through the console commands: train, test from another folder, reload the bundle."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import torch
import yaml

from pyrosys.callbacks.checkpoint import read_checkpoint
from pyrosys.configuration.loading import leaf_paths
from pyrosys.models.model import Model

pytestmark = pytest.mark.slow

EXPERIMENT = """
default_configs: defaults.yaml
problem: {name: Digits, batch_size: 32}
model: {name: MLP, hidden_sizes: [32]}
training:
  terminal_conditions: {epoch_limit: 3}
logging: {interval: 10}
"""


def without_time_columns(path) -> list[dict]:
    """A statistics CSV's rows without the wall-clock columns, which no seed fixes."""
    with open(path, newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert rows
    return [{k: v for k, v in row.items() if k not in ("batch_time", "samples_per_second")} for row in rows]


def accuracy(output: str) -> str:
    return re.search(r"test accuracy: ([0-9.]+)", output).group(1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cli):
    """One short training run shared by the tests of this module."""
    root = tmp_path_factory.mktemp("e2e")
    (root / "defaults.yaml").write_text("training: {seed: 7, optimizer: {name: Adam, lr: 0.005}}\n")
    (root / "exp.yaml").write_text(EXPERIMENT)
    result = cli("pyrosys-trainer", "--c", "exp.yaml", *cli.FAST, cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((root / "experiments" / "Digits" / "MLP").iterdir())
    assert len(runs) == 1
    return root, runs[0], result.stdout


def test_training_writes_the_experiment_folder(trained):
    _, run, _ = trained
    for name in ("training_configuration.yaml", "status.json", "pyrosys.log", "models/best.ckpt",
                 "models/last.ckpt", "models/best/model.yaml", "models/best/weights.safetensors",
                 "training_statistics.csv", "training_set_agg_statistics.csv",
                 "validation_statistics.csv", "validation_set_agg_statistics.csv"):
        assert (run / name).is_file(), name
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "completed" and status["reason"].startswith("epoch_limit")
    assert status["seed_torch"] == 7 and status["epoch"] == 3
    configuration = yaml.safe_load((run / "training_configuration.yaml").read_text())
    assert configuration["model"] == {"name": "MLP", "hidden_sizes": [32], "dropout": 0.0}
    assert configuration["problem"]["seed"] == 7
    assert len((run / "validation_statistics.csv").read_text().splitlines()) == 1 + 3
    assert len((run / "training_set_agg_statistics.csv").read_text().splitlines()) == 1 + 3
    header = (run / "training_statistics.csv").read_text().splitlines()[0]
    assert header == "episode,epoch,loss,accuracy,learning_rate,batch_time,samples_per_second"


def test_checkpoints_load_weights_only_and_carry_plain_configuration(trained):
    _, run, _ = trained
    checkpoint = torch.load(run / "models" / "best.ckpt", weights_only=True)
    assert checkpoint["pyrosys"]["model"]["class"] == "pyrosys.models.mlp.MLP"
    assert checkpoint["pyrosys"]["configuration"]["training"]["seed"] == 7
    assert read_checkpoint(run / "models" / "last.ckpt")["epoch"] >= 2


def test_tester_from_another_folder_reports_the_trainer_accuracy(trained, tmp_path, cli):
    _, run, train_output = trained
    result = cli("pyrosys-tester", "--m", run / "models" / "best.ckpt", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert round(float(accuracy(result.stdout)), 4) == round(float(accuracy(train_output)), 4)
    tests = sorted(run.glob("testing_*"))
    assert len(tests) == 2        # one by the trainer, one by the tester
    aggregate = yaml.safe_load((tests[-1] / "testing_set_agg_statistics.yaml").read_text())
    assert aggregate["samples"] == 270 and f"{aggregate['accuracy']:.6f}" == accuracy(result.stdout)
    assert not (tmp_path / "experiments").exists()


def test_bundle_predicts_exactly_what_the_best_checkpoint_predicts(trained):
    _, run, _ = trained
    bundle = Model.load(run / "models" / "best")
    checkpoint = read_checkpoint(run / "models" / "best.ckpt")
    description = checkpoint["pyrosys"]["model"]
    model = type(bundle).create(description["params"], description["data_definitions"])
    model.load_state_dict(checkpoint["state_dict"])
    inputs = torch.rand(50, 1, 8, 8)
    assert torch.equal(bundle.predict(inputs), model.predict(inputs))


def test_same_seed_gives_the_same_statistics(trained, cli):
    root, run, _ = trained
    result = cli("pyrosys-trainer", "--c", "exp.yaml", *cli.FAST, "--outdir", "again", cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    (again,) = (root / "again" / "Digits" / "MLP").iterdir()
    for name in ("training_statistics.csv", "validation_statistics.csv", "training_set_agg_statistics.csv",
                 "validation_set_agg_statistics.csv"):
        assert without_time_columns(again / name) == without_time_columns(run / name)


def test_tester_refuses_what_is_not_a_safe_pyrosys_checkpoint(trained, tmp_path, capsys):
    from pyrosys.workers import tester

    _, run, _ = trained
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes((run / "models" / "best.ckpt").read_bytes()[:5000])
    pickled = tmp_path / "pickled.ckpt"
    torch.save({"pyrosys": {}, "state_dict": {}, "payload": Model}, pickled)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    cases = {truncated: "corrupt or truncated", pickled: "refused", foreign: "not a PyroSys checkpoint",
             tmp_path / "absent.ckpt": "does not exist"}
    for path, message in cases.items():             # in this process: the command's own exit path, no restart
        assert tester.main(["--m", str(path)]) == 2, path
        stderr = capsys.readouterr().err
        assert message in stderr and "Traceback" not in stderr, stderr[-2000:]


def test_tester_repeats_report_mean_and_std(trained, tmp_path, cli):
    _, run, _ = trained
    result = cli("pyrosys-tester", "--m", run / "models" / "best.ckpt", "--n", "3", "--outdir", tmp_path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "3 repeats: test loss" in result.stdout and "+- 0.000000" in result.stdout   # fixed data: no spread
    (parent,) = tmp_path.glob("testing_*")
    summary = yaml.safe_load((parent / "testing_repeats.yaml").read_text())
    assert summary["repeats"] == 3 and len(summary["accuracy"]["values"]) == 3
    assert sorted(p.name for p in parent.glob("repeat_*")) == ["repeat_1", "repeat_2", "repeat_3"]
    bad = cli("pyrosys-tester", "--m", run / "models" / "best.ckpt", "--n", "0", cwd=tmp_path)
    assert bad.returncode == 2 and "--n" in bad.stderr


def folder_layout(folder) -> dict:
    """What the experiment folder holds, independent of times: files (time stamps and TensorBoard event
    names masked), every CSV file's columns, the saved configuration's keys, status.json's keys."""
    def masked(name: str) -> str:
        parts = ["testing_<time>" if p.startswith("testing_") and "." not in p else p for p in name.split("/")]
        return "tensorboard/<events>" if parts[0] == "tensorboard" else "/".join(parts)

    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    with open(folder / "training_configuration.yaml") as stream:
        configuration = yaml.safe_load(stream)
    return {"files": sorted({masked(f) for f in files}),
            "csv_columns": {masked(f): next(csv.reader(open(folder / f))) for f in files if f.endswith(".csv")},
            "configuration_keys": sorted(leaf_paths(configuration)),
            "status_keys": sorted(json.loads((folder / "status.json").read_text()))}


def test_the_experiment_folder_keeps_its_layout(trained):
    """The layout written before the run pipeline was reorganised (tests/workers/data): the same files,
    CSV columns, configuration keys and status keys."""
    _, run, _ = trained
    expected = json.loads((Path(__file__).parent / "data" / "experiment_layout.json").read_text())
    assert folder_layout(run) == expected
