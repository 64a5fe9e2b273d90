"""Projects: the marker file, configuration groups and choices, and components found through the
`pyrosys.components` entry point."""
from __future__ import annotations

import sys

import pytest

from pyrosys import factory
from pyrosys.configuration.loading import load_configuration
from pyrosys.errors import ConfigError
from pyrosys.configuration.project import find_project, split_choices
from pyrosys.workers import grid_trainer, trainer


@pytest.fixture
def project(tmp_path, write):
    write(".pyrosys-project", "package = lab\n")
    write("lab/config/train.yaml", "groups: {data: digits, model: small}\ntraining: {seed: 3}\n")
    write("lab/config/data/digits.yaml", "problem: {name: Digits, batch_size: 16}\n")
    write("lab/config/model/small.yaml", "model: {name: MLP, hidden_sizes: [8]}\n")
    write("lab/config/model/big.yaml", "model: {name: MLP, hidden_sizes: [64, 32]}\n")
    write("lab/config/trainer/callbacks/none.yaml", "training: {callbacks: []}\n")
    return tmp_path


def test_the_project_is_found_from_any_folder_or_file_inside_it(project):
    found = find_project(project / "lab" / "config" / "model" / "big.yaml")
    assert found.root == project and found.package == "lab"
    assert found.groups() == {"data": ["digits"], "model": ["big", "small"], "trainer/callbacks": ["none"]}
    assert find_project(project.parent) is None


def test_group_defaults_and_command_line_choices_pick_their_files(project):
    config = project / "lab" / "config" / "train.yaml"
    assert load_configuration([config]).tree["model"]["hidden_sizes"] == [8]
    tree = load_configuration([config], ["model.dropout=0.5"], {"model": "big"}).tree
    assert tree["model"] == {"name": "MLP", "hidden_sizes": [64, 32], "dropout": 0.5}
    assert tree["problem"]["batch_size"] == 16 and tree["training"]["seed"] == 3


def test_an_unknown_choice_answers_with_the_available_ones(project):
    with pytest.raises(ConfigError) as caught:
        load_configuration([project / "lab" / "config" / "train.yaml"], (), {"model": "vae"})
    assert "no choice 'vae'" in caught.value.message and "big, small" in caught.value.hint


def test_group_choices_and_overrides_are_told_apart(project):
    choices, overrides = split_choices(["model=big", "trainer/callbacks=none", "training.seed=4", "seed=1"],
                                       project / "lab" / "config" / "train.yaml")
    assert choices == {"model": "big", "trainer/callbacks": "none"}
    assert overrides == ["training.seed=4", "seed=1"]


def test_groups_outside_a_project_are_refused(tmp_path, write):
    config = write("alone/train.yaml", "groups: {model: small}\n")
    with pytest.raises(ConfigError) as caught:
        load_configuration([config])
    assert caught.value.key == "groups" and "pyrosys-init" in caught.value.hint


def test_the_trainer_takes_choices_after_its_files_and_lists_a_group(project, capsys, monkeypatch):
    config = project / "lab" / "config" / "train.yaml"
    plan = trainer.resolve(trainer.parser().parse_args(["--c", str(config), "model=big", "training.seed=9"]))
    assert plan.configuration["model"]["hidden_sizes"] == [64, 32] and plan.seed_torch == 9
    capsys.readouterr()
    monkeypatch.chdir(project)
    assert trainer.main(["--list", "model"]) == 0            # the choice train.yaml picks is marked
    assert capsys.readouterr().out.splitlines() == ["big", "small  (default in lab/config/train.yaml)"]
    monkeypatch.chdir(project / "lab")
    assert trainer.main(["--list", "model", "--c", "config/data/digits.yaml"]) == 0     # names no default
    assert capsys.readouterr().out.splitlines() == ["big", "small"]
    assert trainer.main(["--list", "optimizer"]) == 2
    assert "Groups: data, model, trainer/callbacks" in capsys.readouterr().err


def test_a_grid_sweeps_group_choices(project, write):
    from pyrosys.execution.grid_plan import expand

    grid = write("grid.yaml", "grid_tasks: [{default_configs: lab/config/train.yaml}]\n"
                              "grid_search: {model: [small, big], training.optimizer.lr: [0.1]}\n")
    runs = expand(grid).runs
    assert [run.choices for run in runs] == [{"model": "small"}, {"model": "big"}]
    assert all(run.error is None for run in runs)
    assert "model=big" in runs[1].trainer_arguments() and grid_trainer.parser() is not None


def test_components_of_installed_packages_are_found_through_the_entry_point(tmp_path, monkeypatch, distribution):
    distribution("plugin_lab", "[pyrosys.components]\nplugin_lab = plugin_lab\n", '''
        from pyrosys.factory import register
        from pyrosys.models.mlp import MLP

        @register("model")
        class PluginNet(MLP):
            """A model that only an entry point makes known."""
        ''')
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "PluginNet" in factory.registered("model")
    assert factory.resolve({"name": "PluginNet"}, "model").__module__ == "plugin_lab"
    sys.modules.pop("plugin_lab", None)


def test_components_named_in_a_kinds_entry_point_group_are_known_before_and_found_after_import(tmp_path, monkeypatch,
                                                                                              distribution):
    distribution("kind_lab", "[pyrosys.model]\nKindNet = kind_lab:KindNet\n", '''
        from pyrosys.models.mlp import MLP

        class KindNet(MLP):
            """A model that only its pyrosys.model entry point makes known (no @register)."""
        ''')
    monkeypatch.syspath_prepend(str(tmp_path))
    assert factory.indexed_names("model")["KindNet"] == "kind_lab:KindNet"
    factory.check_name({"name": "KindNet", "hidden_sizes": [3]}, "model", source=lambda key: None, key="model")
    assert "kind_lab" not in sys.modules
    assert factory.resolve({"name": "KindNet"}, "model").__module__ == "kind_lab"
    sys.modules.pop("kind_lab", None)


def test_a_kinds_entry_point_that_cannot_be_imported_is_a_config_error(tmp_path, monkeypatch, distribution):
    distribution("broken_lab", "[pyrosys.model]\nBrokenNet = no_such_broken_lab:BrokenNet\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match="'BrokenNet' cannot be loaded"):
        factory.registered("model")
