"""pyrosys.configuration.loading: safe YAML, default_configs, several files, overrides, interpolation, errors."""
from __future__ import annotations

import pytest

from pyrosys.configuration.loading import COMMAND_LINE, load_configuration, load_yaml, parse_override
from pyrosys.errors import ConfigError


def test_later_file_wins_over_earlier_and_overrides_win_over_files(write):
    first = write("a.yaml", "model: {name: MLP, dropout: 0.1}\nproblem: {batch_size: 8}\n")
    second = write("b.yaml", "model: {dropout: 0.2}\n")
    config = load_configuration([first, second], ["problem.batch_size=16"])
    assert config.tree["model"] == {"name": "MLP", "dropout": 0.2}
    assert config.tree["problem"]["batch_size"] == 16
    assert config.source("model.dropout") == str(second)
    assert config.source("problem.batch_size") == COMMAND_LINE


def test_file_wins_over_its_default_configs_which_load_depth_first_in_order(write):
    write("defaults/base.yaml", "training: {seed: 1, optimizer: {name: SGD, lr: 0.1}}\n")
    write("defaults/second.yaml", "default_configs: base.yaml\ntraining: {seed: 2}\n")
    write("defaults/third.yaml", "training: {optimizer: {lr: 0.3}}\n")
    experiment = write("exp/run.yaml", "default_configs: [../defaults/second.yaml, ../defaults/third.yaml]\n"
                                       "training: {seed: 4}\n")
    tree = load_configuration([experiment]).tree
    assert tree["training"] == {"seed": 4, "optimizer": {"name": "SGD", "lr": 0.3}}
    assert "default_configs" not in tree


def test_default_configs_accepts_a_comma_separated_string(write):
    write("one.yaml", "a: 1\n")
    write("two.yaml", "b: 2\n")
    tree = load_configuration([write("run.yaml", "default_configs: one.yaml, two.yaml\nc: 3\n")]).tree
    assert tree == {"a": 1, "b": 2, "c": 3}


def test_mi_prometheus_comma_separated_config_list_is_accepted(write):
    first, second = write("a.yaml", "x: 1\n"), write("b.yaml", "x: 2\n")
    assert load_configuration([f"{first},{second}"]).tree == {"x": 2}


def test_interpolation_resolves_after_merging(write):
    first = write("a.yaml", "problem: {name: Digits}\nlogging: {run: '${problem.name}-${model.name}'}\n")
    second = write("b.yaml", "model: {name: MLP}\n")
    assert load_configuration([first, second]).tree["logging"]["run"] == "Digits-MLP"


def test_overrides_are_read_as_yaml_values():
    assert parse_override("a.b=1.0e-3") == ("a.b", 0.001)
    assert parse_override("a.b=1e-3") == ("a.b", 0.001)
    assert parse_override("a=[1, 2]") == ("a", [1, 2])
    assert parse_override("a=true") == ("a", True)
    assert parse_override("a.b=text") == ("a.b", "text")


def test_override_without_equals_sign_is_a_config_error():
    with pytest.raises(ConfigError, match="key.sub=value"):
        parse_override("training.seed")


def test_missing_default_configs_file_names_the_including_file_and_the_places_tried(write, tmp_path, monkeypatch):
    path = write("exp/run.yaml", "default_configs: [nowhere.yaml]\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_configuration([path])
    assert caught.value.file == str(path.resolve())
    assert caught.value.key == "default_configs"
    tried = [str(folder / "nowhere.yaml") for folder in (path.parent, tmp_path, *tmp_path.parents)]
    assert caught.value.message.count("(absent)") == len(tried) and all(place in caught.value.message
                                                                        for place in tried)


def test_default_configs_are_found_beside_the_file_then_in_the_current_folder_then_above(write, tmp_path,
                                                                                          monkeypatch):
    # MI-Prometheus names default_configs from its repository root, where the user runs it
    write("repo/configs/defaults.yaml", "problem: {batch_size: 8}\nmodel: {dropout: 0.1}\n")
    run = write("repo/configs/lstm/run.yaml", "default_configs: configs/defaults.yaml\nmodel: {name: MLP}\n")
    monkeypatch.chdir(tmp_path / "repo")
    assert load_configuration([run]).tree["problem"] == {"batch_size": 8}
    monkeypatch.chdir(tmp_path)                         # run elsewhere: found in a folder above the file
    assert load_configuration([run]).tree["model"] == {"dropout": 0.1, "name": "MLP"}
    write("repo/configs/lstm/configs/defaults.yaml", "problem: {batch_size: 16}\n")
    assert load_configuration([run]).tree["problem"] == {"batch_size": 16}    # beside the file comes first


def test_parameters_given_before_any_class_is_named_are_kept_when_a_later_file_names_it(write):
    write("defaults.yaml", "training: {problem: {batch_size: 8}}\n")
    run = write("run.yaml", "default_configs: defaults.yaml\ntraining: {problem: {name: SerialRecall}}\n")
    assert load_configuration([run]).tree["training"]["problem"] == {"batch_size": 8, "name": "SerialRecall"}


def test_default_configs_cycle_is_detected_and_shown(write):
    write("a.yaml", "default_configs: b.yaml\n")
    write("b.yaml", "default_configs: c.yaml\n")
    write("c.yaml", "default_configs: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle") as caught:
        load_configuration([write("run.yaml", "default_configs: a.yaml\n")])
    assert "a.yaml -> " in caught.value.message and caught.value.message.endswith("a.yaml")


def test_same_default_included_twice_without_a_cycle_is_fine(write):
    write("base.yaml", "x: 1\n")
    write("left.yaml", "default_configs: base.yaml\n")
    write("right.yaml", "default_configs: base.yaml\n")
    assert load_configuration([write("run.yaml", "default_configs: [left.yaml, right.yaml]\n")]).tree == {"x": 1}


def test_malformed_yaml_reports_line_and_column(write):
    path = write("bad.yaml", "model:\n  name: MLP\n  sizes: [1, 2\n")
    with pytest.raises(ConfigError) as caught:
        load_yaml(path)
    assert f"{path}, line 4, column 1" in caught.value.paragraph()


def test_python_tags_are_refused(write):
    path = write("evil.yaml", "model: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="Python tags"):
        load_yaml(path)


def test_duplicate_key_in_one_mapping_is_refused(write):
    with pytest.raises(ConfigError, match="duplicate key 'name'"):
        load_yaml(write("dup.yaml", "model:\n  name: MLP\n  name: LeNet5\n"))


def test_top_level_that_is_not_a_mapping_is_refused(write):
    with pytest.raises(ConfigError, match="not a mapping"):
        load_yaml(write("list.yaml", "- a\n- b\n"))


def test_broken_interpolation_names_key_and_file(write):
    path = write("run.yaml", "logging: {run: '${model.nme}'}\nmodel: {name: MLP}\n")
    with pytest.raises(ConfigError) as caught:
        load_configuration([path])
    assert caught.value.key == "logging.run"
    assert caught.value.file == str(path)


def test_missing_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_configuration([tmp_path / "absent.yaml"])


def test_a_mapping_naming_another_class_replaces_the_earlier_one_whole(write):
    first = write("a.yaml", "model: {name: LeNet5, channels: [4, 8]}\ntraining: {optimizer: {name: Adam, betas: [0.8, 0.9]}}\n")
    second = write("b.yaml", "model: {name: MLP}\ntraining: {optimizer: {name: Adam, lr: 0.1}}\n")
    tree = load_configuration([first, second], ["training.optimizer={_target_: torch.optim.SGD, lr: 0.5}"]).tree
    assert tree["model"] == {"name": "MLP"}
    assert tree["training"]["optimizer"] == {"_target_": "torch.optim.SGD", "lr": 0.5}
    tree = load_configuration([first, second]).tree
    assert tree["training"]["optimizer"] == {"name": "Adam", "betas": [0.8, 0.9], "lr": 0.1}


def test_a_key_set_on_the_command_line_is_the_command_lines_even_inside_a_default_section(write):
    defaults = write("defaults.yaml", "training: {optimizer: {name: Adam, lr: 0.001}}\n")
    config = load_configuration([write("run.yaml", "default_configs: defaults.yaml\nmodel: {name: MLP}\n")],
                                ["training.optimizer.learning_rate=0.01", "training.scheduler.T_max=3"])
    assert config.source("training.optimizer.learning_rate") == COMMAND_LINE
    assert config.source("training.optimizer.lr") == str(defaults)
    assert config.source("training.scheduler.T_max") == COMMAND_LINE
    assert config.source("training.scheduler.name") is None           # nobody set it: a default
    assert config.source("model.dropout") is None and config.source("problem") == config.files[-1]


@pytest.mark.parametrize("order", [0, 1])
def test_naming_another_class_on_the_command_line_drops_the_old_classs_keys_and_keeps_the_command_lines(
        write, order):
    run = write("run.yaml", "training: {optimizer: {name: Adam, lr: 0.001, betas: [0.8, 0.9]}}\n")
    overrides = ["training.optimizer.lr=0.01", "training.optimizer.name=SGD"]
    config = load_configuration([run], overrides[::-1] if order else overrides)
    assert config.tree["training"]["optimizer"] == {"name": "SGD", "lr": 0.01}
    assert config.source("training.optimizer.betas") is None
    same = load_configuration([run], ["training.optimizer.name=Adam"]).tree["training"]["optimizer"]
    assert same == {"name": "Adam", "lr": 0.001, "betas": [0.8, 0.9]}
