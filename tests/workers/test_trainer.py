"""pyrosys-trainer: precedence, bad input (status 2, one paragraph, no folder), flags."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pyrosys.workers import trainer

BASE = """
problem: {name: Digits, batch_size: 64}
model: {name: MLP, hidden_sizes: [16]}
training:
  seed: 5
  terminal_conditions: {epoch_limit: 1}
  trainer: {enable_progress_bar: false}
"""


def resolve(*argv):
    return trainer.resolve(trainer.parser().parse_args(list(map(str, argv))))


def test_precedence_component_defaults_then_default_configs_then_files_then_overrides(write):
    write("defaults.yaml", "model: {name: MLP, hidden_sizes: [1], dropout: 0.1}\n"
                           "training: {seed: 1, optimizer: {name: Adam, lr: 0.1}}\n")
    first = write("first.yaml", "default_configs: defaults.yaml\nproblem: {name: Digits}\n"
                                "model: {hidden_sizes: [2]}\ntraining: {seed: 2}\n")
    second = write("second.yaml", "model: {hidden_sizes: [3]}\n")
    plan = resolve("--c", first, second, "--set", "model.hidden_sizes=[4]")
    tree = plan.configuration
    assert tree["model"]["hidden_sizes"] == [4]                # override beats every file
    assert tree["training"]["seed"] == 2                       # the file beats its default_configs
    assert tree["model"]["dropout"] == 0.1                     # default_configs beat component defaults
    assert tree["problem"]["batch_size"] == 64                 # component default, nothing else set it
    assert tree["training"]["optimizer"] == {"name": "Adam", "lr": 0.1}
    plan = resolve("--c", first, second)
    assert plan.configuration["model"]["hidden_sizes"] == [3]  # the later file beats the earlier one


def test_random_seed_is_drawn_and_recorded(write):
    config = write("exp.yaml", BASE.replace("seed: 5", "seed: -1"))
    plan = resolve("--c", config)
    assert plan.configuration["training"]["seed"] == plan.seed_torch >= 0
    assert plan.configuration["problem"]["seed"] == plan.seed_numpy


def test_mi_prometheus_sections_are_accepted(write):
    config = write("mip.yaml", """
        model: {name: MLP}
        training:
          problem: {name: Digits, batch_size: 32}
          optimizer: {name: SGD, lr: 0.01}
          gradient_clipping: 5
          seed_torch: 3
          seed_numpy: 4
          terminal_conditions: {loss_stop: 0.01, episode_limit: 100, epoch_limit: 2}
        validation:
          problem: {name: Digits, batch_size: 64}
        testing:
          problem: {name: Digits, batch_size: 64}
        """)
    plan = resolve("--c", config)
    assert plan.problem.name == "Digits" and plan.problem.phases["train"]["batch_size"] == 32
    assert (plan.seed_torch, plan.seed_numpy, plan.gradient_clipping) == (3, 4, 5.0)
    assert (plan.loss_stop, plan.episode_limit, plan.epoch_limit) == (0.01, 100, 2)


BAD_INPUTS = {
    "unknown_model_name": ({"exp.yaml": BASE.replace("name: MLP", "name: LeNet")}, "exp.yaml",
                           ["no model named 'LeNet'", "'LeNet5'"]),
    "misspelt_key": ({"exp.yaml": BASE.replace("hidden_sizes", "hiden_sizes")}, "exp.yaml",
                     ["model.hiden_sizes", "did you mean 'model.hidden_sizes'"]),
    "misspelt_section_key": ({"exp.yaml": BASE + "validation: {intervall: 0.5}\n"}, "exp.yaml",
                             ["validation.intervall", "'validation.interval'"]),
    "missing_default_configs": ({"exp.yaml": "default_configs: [gone.yaml]\n" + BASE}, "exp.yaml",
                                ["gone.yaml", "default_configs"]),
    "default_configs_cycle": ({"exp.yaml": "default_configs: b.yaml\n" + BASE, "b.yaml": "default_configs: exp.yaml\n"},
                              "exp.yaml", ["cycle", "b.yaml"]),
    "malformed_yaml": ({"exp.yaml": BASE + "logging: {interval: [1, 2}\n"}, "exp.yaml", ["line 8, column"]),
    "target_of_wrong_kind": ({"exp.yaml": BASE.replace("name: MLP", "_target_: subprocess.Popen")}, "exp.yaml",
                             ["'subprocess.Popen' is a class that is not a model"]),
    "target_function": ({"exp.yaml": BASE.replace("name: MLP", "_target_: os.system")}, "exp.yaml",
                        ["not a class"]),
    "zero_epoch_limit": ({"exp.yaml": BASE.replace("epoch_limit: 1", "epoch_limit: 0")}, "exp.yaml",
                         ["training.terminal_conditions.epoch_limit", ">= 1"]),
    "derived_trainer_key": ({"exp.yaml": BASE.replace("enable_progress_bar: false", "max_epochs: 3")}, "exp.yaml",
                            ["training.trainer.max_epochs", "epoch_limit"]),
    "unknown_trainer_argument": ({"exp.yaml": BASE.replace("enable_progress_bar", "enable_progres_bar")},
                                 "exp.yaml", ["enable_progres_bar", "'enable_progress_bar'"]),
    "unknown_optimizer_argument": ({"exp.yaml": BASE + "  optimizer: {name: Adam, lrate: 0.1}\n"}, "exp.yaml",
                                   ["training.optimizer.lrate", "'lr'"]),
    "unknown_optimizer": ({"exp.yaml": BASE + "  optimizer: {name: Adamm}\n"}, "exp.yaml", ["'Adam'"]),
    "bad_seed": ({"exp.yaml": BASE.replace("seed: 5", "seed: abc")}, "exp.yaml", ["training.seed"]),
    "unknown_split": ({"exp.yaml": BASE + "validation: {problem: {split: valid}}\n"}, "exp.yaml",
                      ["no split 'valid'"]),
    "no_problem": ({"exp.yaml": BASE.replace("problem: {name: Digits, batch_size: 64}", "")}, "exp.yaml",
                   ["no problem is named"]),
    "two_problem_classes": ({"exp.yaml": BASE + "testing: {problem: {_target_: pyrosys.problems.problem.Problem}}\n"},
                            "exp.yaml", ["another problem class"]),
    "bad_override": ({"exp.yaml": BASE}, "exp.yaml --set training.seed", ["key.sub=value"]),
    "missing_file": ({}, "absent.yaml", ["absent.yaml", "does not exist"]),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_exits_2_with_one_paragraph_and_no_experiment_folder(case, tmp_path, write, capsys):
    files, argument, expected = BAD_INPUTS[case]
    for name, text in files.items():
        write(name, text)
    first, *rest = argument.split()
    outdir = tmp_path / "experiments"
    status = trainer.main(["--c", str(tmp_path / first), *rest, "--outdir", str(outdir)])
    error = capsys.readouterr().err.strip()
    assert status == 2
    assert error.startswith("Configuration error") and "\n" not in error and "Traceback" not in error
    for text in expected:
        assert text in error
    assert not outdir.exists()


def test_console_command_exits_2_without_traceback(write, tmp_path):
    config = write("exp.yaml", BASE.replace("name: MLP", "name: LeNet"))
    result = subprocess.run([sys.executable, "-m", "pyrosys.workers.trainer", "--c", str(config)],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "Did you mean 'LeNet5'?" in result.stderr
    assert not (tmp_path / "experiments").exists()


def test_help_yaml_errors_and_misspelt_trainer_keys_do_not_import_torch(write):
    config = write("bad.yaml", "model: [\n")
    misspelt = write("misspelt.yaml", BASE + "validation: {monitr: val_loss}\n")
    probe = ("import sys\nfrom pyrosys.workers.trainer import main\n"
             "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
             "print('torch' in sys.modules, 'pytorch_lightning' in sys.modules)\n")
    for argv in (["--help"], ["--c", str(config)], ["--c", str(misspelt)]):
        result = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True)
        assert result.stdout.strip().splitlines()[-1] == "False False", result.stderr
    assert "did you mean 'validation.monitor'?" in result.stderr and "misspelt.yaml" in result.stderr


def test_a_run_in_this_process_leaves_no_variable_of_its_own_behind(write, tmp_path, monkeypatch):
    """The folder the fit names to DDP's other processes lasts as long as the fit: a command this process
    starts later (a torchrun node, a grid's run) must not take it for the folder it was handed."""
    import os

    monkeypatch.delenv("PYROSYS_EXPERIMENT_DIR", raising=False)
    before = {name: value for name, value in os.environ.items() if name.startswith("PYROSYS_")}
    assert trainer.main(["--c", str(write("exp.yaml", BASE)), "--outdir", str(tmp_path / "out"),
                         "--set", "logging.mlflow=null"]) == 0
    assert {name: value for name, value in os.environ.items() if name.startswith("PYROSYS_")} == before


def test_print_config_shows_defaults_and_creates_nothing(write, tmp_path, capsys):
    config = write("exp.yaml", BASE)
    assert trainer.main(["--c", str(config), "--print-config", "--outdir", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "dropout: 0.0" in printed and "fractions:" in printed and "epoch_limit: 1" in printed
    assert not (tmp_path / "out").exists()


def test_unknown_names_and_misspelt_arguments_are_refused_without_importing_torch(write, tmp_path):
    config = write("exp.yaml", BASE)
    write("lab/pyproject.toml", '[project]\nname = "lab"\n'
                                '[project.entry-points."pyrosys.model"]\nLabNet = "lab.n:LabNet"\n')
    write("lab/lab/n.py", "class LabNet:\n    pass\n")
    lab = write("lab/run.yaml", BASE.replace("name: MLP", "name: LabNet"))
    cases = {"there is no model named 'NoSuchModel'": ["--c", config, "--set", "model={name: NoSuchModel}"],
             "Did you mean 'SGD'": ["--c", config, "--set", "training.optimizer.name=SGDD"],
             "in the command line, at key 'training.optimizer.learning_rate': Adam takes no argument":
                 ["--c", config, "--set", "training.optimizer.learning_rate=0.01"],
             "Did you mean 'CosineAnnealingLR'": ["--c", config, "--set", "training.scheduler={name: CosineLR}"],
             "Did you mean 'EarlyStopping'": ["--c", config, "--set", "training.callbacks=[{name: EarlyStoping}]"],
             f"which is not installed in this environment: pip install -e {tmp_path / 'lab'}": ["--c", lab],
             "did you mean 'model.hidden_sizes'?": ["--c", config, "--set", "model.hiden_sizes=[3]"],
             "did you mean 'validation.problem.split'?": ["--c", config, "--set", "validation.problem.splt=val"],
             "at key 'validation.mode'": ["--c", config, "--set", "validation.mode=biggest"],
             "MLP's dropout must be a number in [0, 1), not 1.5. Its default is 0.0":
                 ["--c", config, "--set", "model.dropout=1.5"],
             "at key 'problem.fractions': Digits's fractions must be a list of 3 items":
                 ["--c", config, "--set", "problem.fractions=[0.8, 0.2]"],
             "at key 'validation.problem.batch_size': Digits's batch_size must be a whole number >= 1, not 0.":
                 ["--c", config, "--set", "validation.problem.batch_size=0"],
             "there is no loss named 'cross_entropi'. Did you mean 'cross_entropy'":
                 ["--c", config, "--set", "training.loss=cross_entropi"],
             "there is no metric named 'acuracy'. Did you mean 'accuracy'":
                 ["--c", config, "--set", "training.metrics=[acuracy]"]}
    probe = ("import json, sys\nfrom pyrosys.workers.trainer import main\n"
             "codes = [main(argv) for argv in json.loads(sys.argv[1])]\n"
             "print(codes, 'torch' in sys.modules, 'pytorch_lightning' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", probe, json.dumps([list(map(str, a)) for a in cases.values()])],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.stdout.strip() == f"{[2] * len(cases)} False False", result.stderr
    errors = result.stderr.strip().splitlines()
    assert len(errors) == len(cases) and all(fragment in error for fragment, error in zip(cases, errors)), errors


def test_a_value_set_on_the_default_optimizer_keeps_its_class(write):
    plan = resolve("--c", write("exp.yaml", BASE), "--set", "training.optimizer.lr=0.01")
    assert plan.optimizer == {"name": "Adam", "lr": 0.01}
    assert plan.source("training.optimizer.lr") == "the command line"
    plan = resolve("--c", write("exp.yaml", BASE), "--set", "training.optimizer.name=SGD")
    assert plan.optimizer == {"name": "SGD"}
