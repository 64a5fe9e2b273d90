"""The bad-input corpus: every malformed input a researcher might hand PyroSys exits with status 2 and
one paragraph naming the file and the key, with no traceback and nothing written; and property-based
fuzzing of the configuration loader and the command line finds no uncaught exception."""
from __future__ import annotations

import os
import string
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyrosys.configuration.loading import load_configuration, parse_override
from pyrosys.errors import ConfigError
from pyrosys.workers import grid_trainer, predictor, tester, trainer

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
BASE = """\
problem: {name: Digits, batch_size: 64}
model: {name: MLP, hidden_sizes: [16]}
training:
  seed: 5
  terminal_conditions: {epoch_limit: 1}
  trainer: {enable_progress_bar: false}
logging: {mlflow: null}
"""
PROTEIN = f"""\
problem: {{name: ProteinSequences, path: seqs.csv, task: regression, label_column: gravy}}
model: {{name: ProteinCNN, channels: [8]}}
training: {{terminal_conditions: {{epoch_limit: 1}}}}
"""
TERMS = PROTEIN.replace("task: regression, label_column: gravy", "task: multilabel, label_column: terms, "
                                                                 "split_column: split")

LAB = '[project]\nname = "lab"\n\n[project.entry-points."pyrosys.model"]\nLabNet = "lab.nets:LabNet"\n'


def edit(old: str, new: str) -> str:
    assert old in BASE
    return BASE.replace(old, new)


# name: (files, worker, argv, fragments the message must hold); {tmp} is the test's folder
CORPUS = {
    # YAML itself
    "yaml_unclosed_bracket": ({"exp.yaml": BASE + "logging: {interval: [1, 2}\n"}, "trainer", "--c {tmp}/exp.yaml", ["exp.yaml", "line"]),
    "yaml_tab_indent": ({"exp.yaml": "problem:\n\tname: Digits\n"}, "trainer", "--c {tmp}/exp.yaml", ["exp.yaml", "line"]),
    "yaml_duplicate_key": ({"exp.yaml": BASE + "model: {name: LeNet5}\n"}, "trainer", "--c {tmp}/exp.yaml", ["duplicate key"]),
    "yaml_top_level_list": ({"exp.yaml": "- problem\n- model\n"}, "trainer", "--c {tmp}/exp.yaml", ["not a mapping"]),
    "yaml_number_key": ({"exp.yaml": BASE + "1: one\n"}, "trainer", "--c {tmp}/exp.yaml", ["not a string"]),
    "yaml_python_tag": ({"exp.yaml": "problem: !!python/name:os.system\n"}, "trainer", "--c {tmp}/exp.yaml", ["Python tags"]),
    "yaml_not_utf8": ({"exp.yaml": b"problem: \xff\xfe\n"}, "trainer", "--c {tmp}/exp.yaml", ["exp.yaml", "cannot be read"]),
    "config_missing": ({}, "trainer", "--c {tmp}/absent.yaml", ["absent.yaml", "does not exist"]),
    "config_is_a_folder": ({"sub/x.yaml": BASE}, "trainer", "--c {tmp}/sub", ["folder"]),
    "config_empty": ({"exp.yaml": ""}, "trainer", "--c {tmp}/exp.yaml", ["problem"]),
    # unknown keys and names
    "unknown_section": ({"exp.yaml": BASE + "trainingg: {seed: 1}\n"}, "trainer", "--c {tmp}/exp.yaml", ["'trainingg'", "'training'"]),
    "unknown_training_key": ({"exp.yaml": edit("seed: 5", "seed: 5\n  optimiser: {lr: 0.1}")}, "trainer", "--c {tmp}/exp.yaml", ["training.optimiser", "training.optimizer"]),
    "unknown_model_key": ({"exp.yaml": edit("hidden_sizes", "hiden_sizes")}, "trainer", "--c {tmp}/exp.yaml", ["model.hiden_sizes", "model.hidden_sizes"]),
    "unknown_problem_key": ({"exp.yaml": edit("batch_size: 64", "batchsize: 64")}, "trainer", "--c {tmp}/exp.yaml", ["problem.batchsize"]),
    "unknown_model_name": ({"exp.yaml": edit("name: MLP", "name: MLPP")}, "trainer", "--c {tmp}/exp.yaml", ["'MLP'"]),
    "unknown_problem_name": ({"exp.yaml": edit("name: Digits", "name: Digit")}, "trainer", "--c {tmp}/exp.yaml", ["'Digits'"]),
    "unknown_optimizer": ({"exp.yaml": edit("seed: 5", "seed: 5\n  optimizer: {name: Adamm}")}, "trainer", "--c {tmp}/exp.yaml", ["'Adam'"]),
    "unknown_scheduler": ({"exp.yaml": edit("seed: 5", "seed: 5\n  scheduler: {name: CosineAnealingLR}")}, "trainer", "--c {tmp}/exp.yaml", ["training.scheduler.name", "'CosineAnnealingLR'"]),
    "unknown_callback_name": ({"exp.yaml": edit("seed: 5", "seed: 5\n  callbacks: [{name: EarlyStoping}]")}, "trainer", "--c {tmp}/exp.yaml", ["training.callbacks.0.name", "'EarlyStopping'"]),
    "override_misspelt_optimizer_argument": ({"exp.yaml": BASE}, "trainer", "--c {tmp}/exp.yaml --set training.optimizer.learning_rate=0.01", ["in the command line", "training.optimizer.learning_rate", "Adam"]),
    "override_unknown_optimizer": ({"exp.yaml": BASE}, "trainer", "--c {tmp}/exp.yaml --set training.optimizer.name=Adamm", ["in the command line", "'Adam'"]),
    "name_of_a_project_not_installed": ({"lab/pyproject.toml": LAB, "lab/lab/nets.py": "class LabNet:\n    pass\n", "lab/exp.yaml": edit("name: MLP", "name: LabNet")},
                                        "trainer", "--c {tmp}/lab/exp.yaml", ["'LabNet' is defined inside project", "not installed", "pip install -e {tmp}/lab"]),
    "unknown_optimizer_argument": ({"exp.yaml": edit("seed: 5", "seed: 5\n  optimizer: {name: Adam, lrate: 0.1}")}, "trainer", "--c {tmp}/exp.yaml", ["training.optimizer.lrate"]),
    "unknown_loss": ({"exp.yaml": edit("seed: 5", "seed: 5\n  loss: cross_entropyy")}, "trainer", "--c {tmp}/exp.yaml", ["training.loss", "cross_entropy"]),
    "unknown_metric": ({"exp.yaml": edit("seed: 5", "seed: 5\n  metrics: [acuracy]")}, "trainer", "--c {tmp}/exp.yaml", ["training.metrics", "accuracy"]),
    "loss_of_another_task": ({"exp.yaml": edit("seed: 5", "seed: 5\n  loss: mse")}, "trainer", "--c {tmp}/exp.yaml", ["training.loss", "classification"]),
    "unknown_trainer_argument": ({"exp.yaml": edit("enable_progress_bar", "enable_progres_bar")}, "trainer", "--c {tmp}/exp.yaml", ["enable_progress_bar"]),
    "derived_trainer_key": ({"exp.yaml": edit("enable_progress_bar: false", "max_epochs: 3")}, "trainer", "--c {tmp}/exp.yaml", ["training.trainer.max_epochs", "epoch_limit"]),
    # default_configs and interpolation
    "default_configs_missing": ({"exp.yaml": "default_configs: gone.yaml\n" + BASE}, "trainer", "--c {tmp}/exp.yaml", ["gone.yaml", "default_configs"]),
    "default_configs_cycle": ({"exp.yaml": "default_configs: b.yaml\n" + BASE, "b.yaml": "default_configs: exp.yaml\n"}, "trainer", "--c {tmp}/exp.yaml", ["cycle"]),
    "default_configs_wrong_type": ({"exp.yaml": "default_configs: 3\n" + BASE}, "trainer", "--c {tmp}/exp.yaml", ["default_configs"]),
    "broken_interpolation": ({"exp.yaml": edit("seed: 5", "seed: ${training.nothing}")}, "trainer", "--c {tmp}/exp.yaml", ["training.seed", "interpolation"]),
    "missing_mandatory_value": ({"exp.yaml": edit("seed: 5", "seed: '???'")}, "trainer", "--c {tmp}/exp.yaml", ["training.seed"]),
    # wrong values and types
    "zero_epoch_limit": ({"exp.yaml": edit("epoch_limit: 1", "epoch_limit: 0")}, "trainer", "--c {tmp}/exp.yaml", ["training.terminal_conditions.epoch_limit"]),
    "negative_episode_limit": ({"exp.yaml": edit("epoch_limit: 1", "epoch_limit: 1, episode_limit: -5")}, "trainer", "--c {tmp}/exp.yaml", ["training.terminal_conditions.episode_limit"]),
    "epoch_limit_text": ({"exp.yaml": edit("epoch_limit: 1", "epoch_limit: many")}, "trainer", "--c {tmp}/exp.yaml", ["training.terminal_conditions.epoch_limit"]),
    "validation_interval_too_big": ({"exp.yaml": BASE + "validation: {interval: 1.5}\n"}, "trainer", "--c {tmp}/exp.yaml", ["validation.interval"]),
    "validation_mode": ({"exp.yaml": BASE + "validation: {mode: biggest}\n"}, "trainer", "--c {tmp}/exp.yaml", ["validation.mode"]),
    "logging_interval_zero": ({"exp.yaml": edit("logging: {mlflow: null}", "logging: {mlflow: null, interval: 0}")}, "trainer", "--c {tmp}/exp.yaml", ["logging.interval"]),
    "tensorboard_level": ({"exp.yaml": edit("logging: {mlflow: null}", "logging: {mlflow: null, tensorboard: 5}")}, "trainer", "--c {tmp}/exp.yaml", ["logging.tensorboard"]),
    "seed_text": ({"exp.yaml": edit("seed: 5", "seed: abc")}, "trainer", "--c {tmp}/exp.yaml", ["training.seed"]),
    "model_value_out_of_range": ({"exp.yaml": edit("hidden_sizes: [16]", "hidden_sizes: [16], dropout: 1.5")}, "trainer", "--c {tmp}/exp.yaml", ["exp.yaml", "model.dropout", "in [0, 1)", "Its default is 0.0"]),
    "override_problem_value_out_of_range": ({"exp.yaml": BASE}, "trainer", "--c {tmp}/exp.yaml --set problem.fractions=[0.8,0.2]", ["in the command line", "problem.fractions", "3 items"]),
    "callbacks_not_a_list": ({"exp.yaml": edit("seed: 5", "seed: 5\n  callbacks: {_target_: x}")}, "trainer", "--c {tmp}/exp.yaml", ["training.callbacks"]),
    # classes of the wrong kind
    "target_popen": ({"exp.yaml": edit("name: MLP", "_target_: subprocess.Popen")}, "trainer", "--c {tmp}/exp.yaml", ["subprocess.Popen"]),
    "target_os_system": ({"exp.yaml": edit("name: MLP", "_target_: os.system")}, "trainer", "--c {tmp}/exp.yaml", ["os.system"]),
    "callback_of_wrong_kind": ({"exp.yaml": edit("seed: 5", "seed: 5\n  callbacks: [{_target_: collections.OrderedDict}]")}, "trainer", "--c {tmp}/exp.yaml", ["training.callbacks.0", "collections.OrderedDict"]),
    "problem_target_model": ({"exp.yaml": edit("name: Digits, batch_size: 64", "_target_: pyrosys.models.mlp.MLP")}, "trainer", "--c {tmp}/exp.yaml", ["pyrosys.models.mlp.MLP"]),
    # the command line
    "override_without_value": ({"exp.yaml": BASE}, "trainer", "--c {tmp}/exp.yaml --set training.seed", ["key.sub=value"]),
    "override_bad_yaml": ({"exp.yaml": BASE}, "trainer", "--c {tmp}/exp.yaml --set model.hidden_sizes=[1,", ["model.hidden_sizes"]),
    "resume_with_weights": ({"exp.yaml": BASE}, "trainer", "--c {tmp}/exp.yaml --resume {tmp} --m {tmp}/x.ckpt", ["--resume", "--m"]),
    "resume_not_an_experiment": ({}, "trainer", "--resume {tmp}", ["--resume", "training_configuration.yaml"]),
    "outdir_is_a_file": ({"exp.yaml": BASE, "taken": "a file\n"}, "trainer", "--c {tmp}/exp.yaml --outdir {tmp}/taken", ["--outdir"]),
    # data files
    "data_file_empty": ({"exp.yaml": PROTEIN, "seqs.csv": ""}, "trainer", "--c {tmp}/exp.yaml", ["seqs.csv"]),
    "data_file_missing_column": ({"exp.yaml": PROTEIN, "seqs.csv": "id,sequence\na,MKV\n"}, "trainer", "--c {tmp}/exp.yaml", ["seqs.csv", "gravy"]),
    "data_file_missing": ({"exp.yaml": PROTEIN}, "trainer", "--c {tmp}/exp.yaml", ["seqs.csv"]),
    "data_multilabel_no_training_term": ({"exp.yaml": TERMS, "seqs.csv": "sequence,terms,split\nMKV,GO:1,train\n"
                                          "MKL,GO:2,train\nMKA,GO:1,val\nMKW,GO:7;GO:8,test\n"}, "trainer",
                                         "--c {tmp}/exp.yaml", ["seqs.csv", "line 5", "GO:7, GO:8", "training split"]),
    "data_max_tokens_below_longest": ({"exp.yaml": PROTEIN.replace("gravy}", "gravy, batching: {max_tokens: 4}}"),
                                       "seqs.csv": "id,sequence,gravy\na,MKVLA,1\nb,MK,2\nc,MKV,0\n"}, "trainer",
                                      "--c {tmp}/exp.yaml", ["seqs.csv", "problem.batching.max_tokens", "a holds 5 residues"]),
    "benchmark_set_unknown": ({"exp.yaml": "problem: {name: ProteinBenchmark, set: SEQ_SOLUBL}\nmodel: {name: ProteinCNN}\n"},
                              "trainer", "--c {tmp}/exp.yaml", ["exp.yaml", "problem.set", "'SEQ_SOLUBLE'"]),
    # checkpoints
    "checkpoint_missing": ({}, "tester", "--m {tmp}/none.ckpt", ["none.ckpt", "does not exist"]),
    "checkpoint_truncated": ({"cut.ckpt": "truncated"}, "tester", "--m {tmp}/cut.ckpt", ["cut.ckpt", "corrupt or truncated"]),
    "checkpoint_not_pyrosys": ({"foreign.ckpt": "foreign"}, "tester", "--m {tmp}/foreign.ckpt", ["foreign.ckpt", "not a PyroSys checkpoint"]),
    "checkpoint_of_another_model": ({"exp.yaml": edit("name: MLP, hidden_sizes: [16]", "name: LeNet5"), "lenet.ckpt": "lenet"}, "trainer",
                                    "--c {tmp}/exp.yaml --m {tmp}/lenet.ckpt", ["lenet.ckpt"]),
    "tester_zero_repeats": ({"foreign.ckpt": "foreign"}, "tester", "--m {tmp}/foreign.ckpt --n 0", ["--n"]),
    # grids and the predictor
    "grid_file_unknown_key": ({"grid.yaml": "grid_tasks: [{default_configs: exp.yaml}]\ngrid_serch: {}\n", "exp.yaml": BASE}, "grid", "--c {tmp}/grid.yaml --outdir {tmp}/out", ["grid_serch", "grid_search"]),
    "grid_zero_concurrency": ({"exp.yaml": BASE}, "grid", "--c {tmp}/exp.yaml --max-concurrent 0 --outdir {tmp}/out", ["--max-concurrent"]),
    "grid_resume_not_a_grid": ({}, "grid", "--resume {tmp}", ["grid.yaml"]),
    "predictor_missing_input": ({"foreign.ckpt": "foreign"}, "predictor", "--m {tmp}/foreign.ckpt --input {tmp}/none.npy", ["foreign.ckpt"]),
}
WORKERS = {"trainer": trainer.main, "tester": tester.main, "grid": grid_trainer.main, "predictor": predictor.main}


def test_the_corpus_holds_at_least_forty_inputs():
    assert len(CORPUS) >= 40


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, bytes]:
    """Real checkpoint bytes: a LeNet5's, a truncated one, a foreign torch file."""
    root = tmp_path_factory.mktemp("ckpt")
    assert trainer.main(["--c", str(CONFIGS / "digits/lenet5.yaml"), "--outdir", str(root), "--run-name", "lenet",
                         "--set", "training.terminal_conditions.episode_limit=2", "logging.mlflow=null",
                         "logging.tensorboard=null", "training.trainer.enable_progress_bar=false"]) == 0
    lenet = (root / "lenet" / "models" / "best.ckpt").read_bytes()
    torch.save({"weights": torch.zeros(2)}, root / "foreign.ckpt")
    return {"lenet": lenet, "truncated": lenet[: len(lenet) // 2], "foreign": (root / "foreign.ckpt").read_bytes()}


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_bad_input_exits_2_naming_file_and_key_with_nothing_written(case, tmp_path, capsys, checkpoints):
    files, worker, argv, fragments = CORPUS[case]
    for name, content in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".ckpt"):
            path.write_bytes(checkpoints[content])
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    before = sorted(p for p in tmp_path.rglob("*"))
    os.chdir(tmp_path)
    status = WORKERS[worker](argv.format(tmp=tmp_path).split() + (["--outdir", str(tmp_path / "experiments")]
                                                                  if worker == "trainer" and "--outdir" not in argv else []))
    error = capsys.readouterr().err.strip()
    assert status == 2, error
    assert error.startswith("Configuration error") and "\n" not in error and "Traceback" not in error
    for fragment in fragments:
        assert fragment.format(tmp=tmp_path) in error, (fragment, error)
    assert sorted(p for p in tmp_path.rglob("*")) == before             # nothing written


YAML_TEXT = st.text(alphabet=string.printable + "äé\u00a0", max_size=200)
KEYS = st.from_regex(r"[a-z_]{1,8}(\.[a-z_]{1,8}){0,3}", fullmatch=True)


def load_text(folder: Path, text: str) -> None:
    """Load `text` as a configuration file: it resolves, or raises a ConfigError, nothing else."""
    path = folder / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_configuration([path])
    except ConfigError:
        pass


@pytest.mark.reliability
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=YAML_TEXT)
def test_fuzzed_configuration_text_raises_nothing_but_config_errors(tmp_path, text):
    load_text(tmp_path, text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=YAML_TEXT)
def test_fuzzed_configuration_text_raises_nothing_but_config_errors_quick(tmp_path, text):
    load_text(tmp_path, text)


@settings(max_examples=200, deadline=None)
@given(key=KEYS, value=YAML_TEXT)
def test_fuzzed_overrides_raise_nothing_but_config_errors(key, value):
    try:
        parse_override(f"{key}={value}")
    except ConfigError:
        pass


@pytest.mark.reliability
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sections=st.dictionaries(st.sampled_from(["problem", "model", "training", "validation", "logging", "testing"]),
                                st.dictionaries(KEYS, st.one_of(st.integers(-3, 3), st.floats(allow_nan=True),
                                                                st.text(max_size=8), st.booleans(), st.none(),
                                                                st.lists(st.integers(), max_size=3)), max_size=4),
                                max_size=6))
def test_fuzzed_trainer_configurations_exit_2_or_resolve_never_crash(tmp_path, sections, capsys):
    import yaml

    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(sections))
    try:
        trainer.resolve(trainer.parser().parse_args(["--c", str(path)]))
    except ConfigError:
        pass


FLAGS = st.lists(st.one_of(st.sampled_from(["--c", "--set", "--seed", "--li", "--tensorboard", "--mlflow", "--m",
                                            "--resume", "--outdir", "--savetag", "--ll", "--gpu", "--run-name"]),
                           st.text(alphabet=string.ascii_letters + string.digits + "._=-/{}[]:, ", max_size=12)),
                 max_size=8)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=FLAGS)
def test_fuzzed_command_lines_answer_with_status_0_or_2_and_never_crash(argv, capsys):
    config = str(CONFIGS / "digits/mlp.yaml")
    try:
        status = trainer.main(["--c", config, *argv, "--print-config"])
    except SystemExit as stop:                         # argparse's own refusal (status 2) or --help (0)
        status = stop.code
    capsys.readouterr()
    assert status in (0, 2)
