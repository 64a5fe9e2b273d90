"""Values nobody checked until they crashed: every component declares each parameter's type and range
beside its default (`constraints()`), and a value outside it, a pl.Trainer argument Lightning refuses, or
a monitor the run never logs is refused before anything is built or written: exit status 2, one
paragraph naming the file and the key, no traceback, no experiment folder."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

from pyrosys.configuration.constraints import (Integer, ListOf, Number, OneOf, OptionalOf, check_params,
                                               declared_constraints)
from pyrosys.errors import ConfigError
from pyrosys.factory import registered
from pyrosys.workers import trainer


def sibling(name: str) -> ModuleType:
    """Another test module of this folder (the tests are no package: pytest imports them by their path)."""
    spec = importlib.util.spec_from_file_location(f"{name}_for_{__name__}", Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def refused(tmp_path: Path, capsys: pytest.CaptureFixture, argv: list[str], fragments: list[str]) -> None:
    """The trainer, run in tmp_path with --outdir under it, exits with status 2 and one paragraph holding every
    fragment, no traceback, and leaves no experiment folder."""
    outdir = tmp_path / "experiments"
    os.chdir(tmp_path)
    status = trainer.main([*argv, "--outdir", str(outdir)])
    error = capsys.readouterr().err.strip()
    assert status == 2, error
    assert error.startswith("Configuration error") and "\n" not in error and "Traceback" not in error
    for fragment in fragments:
        assert fragment in error, (fragment, error)
    assert not outdir.exists()                                  # no experiment folder


BASE = sibling("test_bad_inputs").BASE.replace("{mlflow: null}", "{mlflow: null, tensorboard: null}")
SEQUENCES = "id,sequence,label,gravy\n" + "".join(
    f"s{i},{'MKVLA'[:1 + i % 5]}{'DE' * (i % 3)},{'ab'[i % 2]},{i / 10}\n" for i in range(12))
PROTEIN = """\
problem: {name: ProteinSequences, path: seqs.csv, fractions: [1, 1, 1]}
model: {name: ProteinCNN, channels: [8]}
training: {seed: 5, terminal_conditions: {epoch_limit: 1}, trainer: {enable_progress_bar: false}}
logging: {mlflow: null, tensorboard: null}
"""


def edit(old: str, new: str, base: str = BASE) -> str:
    assert old in base
    return base.replace(old, new)


# name: (configuration, --set overrides, fragments the paragraph must hold)
CORPUS = {
    # the model's parameters
    "hidden_sizes_negative": (BASE, ["model.hidden_sizes=[-5]"], ["model.hidden_sizes", "-5", ">= 1"]),
    "hidden_sizes_text": (BASE, ["model.hidden_sizes=[abc]"], ["model.hidden_sizes", "'abc'"]),
    "hidden_sizes_float_huge": (BASE, ["model.hidden_sizes=[1e11]"], ["model.hidden_sizes", "whole number"]),
    "hidden_sizes_too_big_for_memory": (BASE, ["model.hidden_sizes=[100000000000]"], ["exp.yaml", "'model'",
                                                                                      "memory"]),
    "hidden_sizes_zero": (edit("hidden_sizes: [16]", "hidden_sizes: [0]"), [], ["exp.yaml", "model.hidden_sizes"]),
    "hidden_sizes_not_a_list": (BASE, ["model.hidden_sizes=16"], ["model.hidden_sizes", "a list"]),
    "dropout_above_one": (edit("hidden_sizes: [16]", "hidden_sizes: [16], dropout: 1.5"), [],
                          ["exp.yaml", "model.dropout", "[0, 1)"]),
    "dropout_text": (BASE, ["model.dropout=half"], ["model.dropout"]),
    "lenet_channels_zero": (edit("name: MLP, hidden_sizes: [16]", "name: LeNet5, channels: [0, 4]"), [],
                            ["model.channels"]),
    "simple_cnn_dropout_nan": (edit("name: MLP, hidden_sizes: [16]", "name: SimpleCNN, dropout: .nan"), [],
                               ["model.dropout"]),
    "autoencoder_latent_zero": (edit("name: MLP, hidden_sizes: [16]", "name: Autoencoder, latent_size: 0"), [],
                                ["model.latent_size"]),
    "protein_cnn_even_kernel": (edit("channels: [8]", "channels: [8], kernel_size: 4", PROTEIN), [],
                                ["model.kernel_size", "odd"]),
    "protein_cnn_pooling": (edit("channels: [8]", "channels: [8], pooling: maxx", PROTEIN), [],
                            ["model.pooling", "'max'"]),
    "rnn_cell": (edit("name: ProteinCNN, channels: [8]", "name: SequenceRNN, cell: lstn", PROTEIN), [],
                 ["model.cell", "'lstm'"]),
    "rnn_layers_zero": (edit("name: ProteinCNN, channels: [8]", "name: SequenceRNN, num_layers: 0", PROTEIN), [],
                        ["model.num_layers"]),
    "transformer_heads_do_not_divide_dim": (edit("name: ProteinCNN, channels: [8]",
                                                 "name: TransformerClassifier, dim: 10, heads: 4", PROTEIN), [],
                                            ["exp.yaml", "model.heads", "multiple"]),
    "transformer_max_length_below_the_data": (edit("name: ProteinCNN, channels: [8]",
                                                   "name: TransformerClassifier, max_length: 2", PROTEIN), [],
                                              ["exp.yaml", "model.max_length"]),
    # the problem's parameters, shared and per phase
    "batch_size_negative": (edit("batch_size: 64", "batch_size: -3"), [], ["exp.yaml", "problem.batch_size"]),
    "batch_size_text": (BASE, ["problem.batch_size=big"], ["problem.batch_size", "'big'"]),
    "batch_size_zero": (BASE, ["problem.batch_size=0"], ["problem.batch_size"]),
    "batch_size_fraction": (BASE, ["problem.batch_size=2.5"], ["problem.batch_size", "2.5"]),
    "batch_size_of_a_phase": (BASE + "testing: {problem: {batch_size: 0}}\n", [],
                              ["exp.yaml", "testing.problem.batch_size"]),
    "batch_size_of_training": (BASE, ["training.problem.batch_size=-1"], ["training.problem.batch_size"]),
    "num_workers_negative": (BASE, ["problem.num_workers=-1"], ["problem.num_workers", ">= 0"]),
    "problem_seed_text": (BASE, ["problem.seed=abc"], ["problem.seed"]),
    "problem_seed_negative": (BASE, ["problem.seed=-4"], ["problem.seed"]),
    "shuffle_text": (BASE, ["problem.shuffle=sometimes"], ["problem.shuffle", "true or false"]),
    "drop_last_number": (BASE, ["problem.drop_last=2"], ["problem.drop_last"]),
    "fractions_two": (BASE, ["problem.fractions=[0.5,0.5]"], ["problem.fractions", "3 items"]),
    "fractions_negative": (BASE, ["problem.fractions=[0.8,-0.1,0.3]"], ["problem.fractions"]),
    "split_empty_name": (BASE, ["validation.problem.split=''"], ["validation.problem.split"]),
    "protein_max_length_zero": (edit("fractions: [1, 1, 1]", "fractions: [1, 1, 1], max_length: 0", PROTEIN), [],
                                ["exp.yaml", "problem.max_length"]),
    "protein_max_length_negative": (PROTEIN, ["problem.max_length=-1"], ["problem.max_length"]),
    "protein_task": (PROTEIN, ["problem.task=regresion"], ["problem.task", "'regression'"]),
    "tabular_standardize_text": (edit("name: Digits", "name: BreastCancer"), ["problem.standardize=yes please"],
                                 ["problem.standardize"]),
    "recall_control_bits": (edit("name: ProteinCNN, channels: [8]", "name: SequenceRNN",
                                 edit("name: ProteinSequences, path: seqs.csv, fractions: [1, 1, 1]",
                                      "name: SerialRecall, control_bits: 1", PROTEIN)), [], ["problem.control_bits"]),
    "synthetic_informative_above_features": (edit("name: Digits", "name: SyntheticClassification, samples: 60, "
                                                                   "features: 4, informative: 8"), [],
                                             ["exp.yaml", "problem.informative"]),
    # the trainer's own sections
    "validation_interval_nan": (BASE, ["validation.interval=.nan"], ["validation.interval", "nan"]),
    "validation_interval_inf": (BASE, ["validation.interval=.inf"], ["validation.interval"]),
    "validation_interval_negative_inf": (BASE, ["validation.interval=-.inf"], ["validation.interval"]),
    "precision_banana": (edit("enable_progress_bar: false", "enable_progress_bar: false, precision: banana"), [],
                         ["exp.yaml", "training.trainer.precision", "banana"]),
    "accelerator_gpu_without_one": (BASE, ["training.trainer.accelerator=gpu"], ["training.trainer.accelerator"]),
    "devices_zero": (BASE, ["training.trainer.devices=0"], ["training.trainer.devices"]),
    "monitor_unknown": (BASE + "validation: {monitor: val_banana}\n", [],
                        ["exp.yaml", "validation.monitor", "val_banana", "val_loss"]),
    "monitor_metric_not_computed": (BASE, ["validation.monitor=val_f1"], ["validation.monitor", "val_accuracy"]),
    "monitor_of_early_stopping": (BASE, ["training.terminal_conditions.early_stopping={monitor: loss, patience: 2}"],
                                  ["training.terminal_conditions.early_stopping.monitor", "val_loss"]),
}


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_a_bad_value_exits_2_naming_file_and_key_with_nothing_written(case, tmp_path, capsys):
    text, overrides, fragments = CORPUS[case]
    if case == "accelerator_gpu_without_one" and gpu_here():
        pytest.skip("this machine has a GPU")
    (tmp_path / "exp.yaml").write_text(text)
    (tmp_path / "seqs.csv").write_text(SEQUENCES)
    refused(tmp_path, capsys, ["--c", str(tmp_path / "exp.yaml"), *(["--set", *overrides] if overrides else [])],
            fragments)


def gpu_here() -> bool:
    import torch

    return torch.cuda.is_available()


def test_the_gpu_flag_on_a_machine_without_one_is_named(tmp_path, capsys):
    if gpu_here():
        pytest.skip("this machine has a GPU")
    (tmp_path / "exp.yaml").write_text(BASE)
    refused(tmp_path, capsys, ["--c", str(tmp_path / "exp.yaml"), "--gpu"], ["the command line", "'--gpu'"])


def components() -> list[type]:
    return [cls for kind in ("model", "problem") for name, cls in sorted(registered(kind).items())
            if getattr(cls, "__module__", "").startswith("pyrosys.")]


@pytest.mark.parametrize("cls", components(), ids=lambda cls: cls.__name__)
def test_every_built_in_component_declares_each_parameter_and_its_defaults_satisfy_them(cls):
    defaults = cls.get_params()
    declared = declared_constraints(cls)
    assert set(declared) == set(defaults), f"{cls.__name__} declares no constraint for " \
                                           f"{sorted(set(defaults) - set(declared))}"
    check_params(cls, defaults, section="x", defaults=defaults)


def test_python_users_get_the_same_refusal_from_problem_create():
    from pyrosys.problems.scikit_learn import Digits

    with pytest.raises(ConfigError) as caught:
        Digits.create({"batch_size": 0})
    assert caught.value.key == "problem.batch_size" and "whole number >= 1" in caught.value.message
    with pytest.raises(ConfigError) as caught:
        Digits.create({}, {"test": {"num_workers": -2}})
    assert caught.value.key == "test.problem.num_workers"


@pytest.mark.parametrize("constraint, good, bad, words", [
    (Integer(low=1), [1, 7], [0, 2.0, True, "3", None], "a whole number >= 1"),
    (Integer(low=1, odd=True), [1, 5], [2, 0], "an odd whole number >= 1"),
    (Number(low=0, high=1, high_open=True), [0, 0.5, 0.999], [1, -0.1, float("nan"), float("inf"), False],
     "a number in [0, 1)"),
    (ListOf(Integer(low=1), min_length=1), [[1], [2, 3]], [[], [0], "1", (1,)], "a list of 1 or more items"),
    (OneOf("max", "mean"), ["max"], ["Max", 1, None], "one of 'max', 'mean'"),
    (OptionalOf(Integer(low=0)), [None, 0], [-1, "x"], "null or a whole number >= 0"),
])
def test_constraints_accept_and_describe(constraint, good, bad, words):
    assert all(constraint.accepts(value) for value in good)
    assert not any(constraint.accepts(value) for value in bad)
    assert words in constraint.describe()
