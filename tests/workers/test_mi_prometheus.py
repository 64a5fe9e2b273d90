"""IBM's MI-Prometheus files as they are: the ones whose problem and model PyroSys has run, the others are
refused naming file, key and reason. The files are unchanged copies (data/mi_prometheus, with IBM's license)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from pyrosys.errors import ConfigError
from pyrosys.workers import trainer

ROOT = Path(__file__).parent / "data" / "mi_prometheus"
# file -> (PyroSys's problem, MI-Prometheus's problem name)
RUN = {"configs/maes_baselines/lstm/lstm_serial_recall.yaml": ("SerialRecall", "SerialRecallCommandLines"),
       "configs/maes_baselines/lstm/lstm_reverse_recall.yaml": ("ReverseRecall", "ReverseRecallCommandLines")}
# file -> (the file the refusal names, the key, what the message says)
REFUSED = {
    "configs/dwm_baselines/lstm/serial_recall.yaml": (
        "default_settings_simple_task.yaml", "training.terminal_conditions.eposides_limit",
        "did you mean 'training.terminal_conditions.episode_limit'?"),
    "configs/dwm_baselines/lstm/reverse_recall.yaml": (
        "default_settings_simple_task.yaml", "training.terminal_conditions.eposides_limit", "episode_limit"),
    "configs/maes_baselines/es_lstm/es_lstm_serial_recall.yaml": (
        "default_es_lstm.yaml", "model.name",
        "'EncoderSolverLSTM' is an MI-Prometheus model that PyroSys does not have"),
    "configs/maes_baselines/lstm/lstm_odd_recall.yaml": (
        "lstm_odd_recall.yaml", "training.problem.name", "'SkipRecallCommandLines' is an MI-Prometheus problem"),
}
SHORT = ["--set", "training.terminal_conditions.episode_limit=2", "training.curriculum_learning.must_finish=false",
         "training.trainer.enable_progress_bar=false", "logging.mlflow=null"]


def resolve(*argv):
    return trainer.resolve(trainer.parser().parse_args(list(map(str, argv))))


@pytest.mark.parametrize("file", sorted(RUN))
def test_supported_files_resolve_to_pyrosys_names_with_their_meaning(file, monkeypatch):
    monkeypatch.chdir(ROOT)                  # as MI-Prometheus is run: from its repository root
    plan = resolve("--c", file)
    problem, mip_name = RUN[file]
    assert (plan.problem.name, plan.model.name) == (problem, "SequenceRNN")
    assert plan.model.params["cell"] == "lstm" and plan.model.params["hidden_size"] == 256
    train, val, test = (plan.problem.phases[phase] for phase in ("train", "val", "test"))
    assert train["episodes"] == 32000 // 64 and val["episodes"] == test["episodes"] == 1   # size: samples an epoch
    assert (train["control_bits"], train["max_sequence_length"], test["min_sequence_length"]) == (3, 20, 100)
    assert plan.validation_interval == 100 and plan.gradient_clipping == 10 and plan.episode_limit == 100000
    assert plan.configuration["training"]["problem"]["shuffle"] is True                 # sampler: RandomSampler
    assert plan.curriculum["initial_max_sequence_length"] == 5
    tree = plan.configuration
    assert "hidden_state_size" not in tree["model"] and "size" not in tree["training"]["problem"]
    assert f"training.problem.name: {mip_name} -> training.problem.name: {problem}" in plan.loaded.aliases
    assert "model.hidden_state_size -> model.hidden_size" in plan.loaded.aliases


@pytest.mark.parametrize("file", sorted(REFUSED))
def test_other_files_are_refused_naming_file_key_and_reason(file, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(ROOT)
    status = trainer.main(["--c", file, "--outdir", str(tmp_path / "experiments")])
    error = capsys.readouterr().err.strip()
    named, key, reason = REFUSED[file]
    assert status == 2 and "\n" not in error and "Traceback" not in error
    assert f"{named}, at key '{key}'" in error and reason in error
    assert not (tmp_path / "experiments").exists()


def test_dwm_files_run_once_their_typo_is_corrected(tmp_path, monkeypatch):
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    defaults = tmp_path / "configs" / "dwm_baselines" / "default_settings_simple_task.yaml"
    defaults.write_text(defaults.read_text().replace("eposides_limit", "episode_limit"))
    monkeypatch.chdir(tmp_path)
    plan = resolve("--c", "configs/dwm_baselines/lstm/serial_recall.yaml")
    assert (plan.model.params["num_layers"], plan.model.params["hidden_size"], plan.episode_limit) == (3, 512, 100000)
    assert plan.problem.phases["test"]["max_sequence_length"] == 1000


def test_a_maes_file_trains_tests_and_records_its_aliases(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    outdir = tmp_path / "experiments"
    assert trainer.main(["--c", "configs/maes_baselines/lstm/lstm_serial_recall.yaml", *SHORT,
                         "--outdir", str(outdir)]) == 0
    saved = next(outdir.glob("SerialRecall/SequenceRNN/*/training_configuration.yaml")).read_text()
    assert "# MI-Prometheus alias: model.name: LSTM -> model.name: SequenceRNN, model.cell: lstm" in saved
    model = yaml.safe_load(saved)["model"]
    assert model["hidden_size"] == 256 and "hidden_state_size" not in model
    assert "test loss" in capsys.readouterr().out


RECALL = """
model: {name: LSTM, hidden_state_size: 8}
training:
  problem: {name: SerialRecallCommandLines, batch_size: 4, size: 10}
  terminal_conditions: {episode_limit: 5}
"""


def test_dataloader_and_sampler_sections_become_the_problems_loader_parameters(write):
    plan = resolve("--c", write("exp.yaml", RECALL + (
        "  dataloader: {shuffle: false, drop_last: true, num_workers: 0, batch_sampler: null, pin_memory: false, "
        "timeout: 0}\nvalidation: {partial_validation_interval: -1, sampler: {name: SequentialSampler}}\n")))
    train, val = plan.problem.phases["train"], plan.problem.phases["val"]
    assert (train["shuffle"], train["drop_last"], train["episodes"], val["shuffle"]) == (False, True, 3, False)
    assert plan.validation_interval == 1.0                 # partial validation off: validation at epoch ends


@pytest.mark.parametrize("extra, key, message", [
    ("  sampler: {name: SubsetRandomSampler, indices: [0, 55000]}\n", "training.sampler", "has no PyroSys meaning"),
    ("  dataloader: {pin_memory: true}\n", "training.dataloader", "'pin_memory: True' cannot be honoured"),
    ("validation: {partial_validation_interval: 0.5}\n", "validation.partial_validation_interval", "whole number"),
    ("  dataloader: {shuffle: true}\n  sampler: {name: SequentialSampler}\n", "training.sampler",
     "training.problem.shuffle is True"),
])
def test_what_pyrosys_cannot_honour_is_refused(write, extra, key, message):
    with pytest.raises(ConfigError) as caught:
        resolve("--c", write("exp.yaml", RECALL + extra))
    assert caught.value.key == key and message in caught.value.message and caught.value.file.endswith("exp.yaml")


@pytest.mark.integration
def test_the_console_command_runs_a_file_from_a_copy_of_the_repository_root(tmp_path, cli):
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    done = cli("pyrosys-trainer", "--c", "configs/maes_baselines/lstm/lstm_reverse_recall.yaml", *SHORT,
               "--outdir", "experiments", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert list((tmp_path / "experiments" / "ReverseRecall" / "SequenceRNN").glob("*/models/best.ckpt"))
    refused = cli("pyrosys-trainer", "--c", "configs/dwm_baselines/lstm/serial_recall.yaml", cwd=tmp_path)
    assert refused.returncode == 2 and "eposides_limit" in refused.stderr and "Traceback" not in refused.stderr
