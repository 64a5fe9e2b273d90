"""pyrosys.factory: names and dotted targets become classes of the expected kind, checked before the call."""
from __future__ import annotations

import json
import subprocess

import pytest
import torch

from pyrosys.errors import ConfigError
from pyrosys.factory import class_path, instantiate, register, registered, resolve
from pyrosys.models.lenet5 import LeNet5
from pyrosys.models.model import Model


def test_registered_names_resolve_to_their_classes():
    assert resolve({"name": "LeNet5"}, "model") is LeNet5
    assert resolve({"name": "Adam"}, "optimizer") is torch.optim.Adam


def test_dotted_target_resolves_when_it_is_of_the_right_kind():
    assert resolve({"_target_": "pyrosys.models.lenet5.LeNet5"}, "model") is LeNet5


def test_unknown_name_answers_with_the_nearest_registered_names():
    with pytest.raises(ConfigError) as caught:
        resolve({"name": "LeNet"}, "model", file="exp.yaml", key="model")
    assert "'LeNet5'" in caught.value.hint
    assert caught.value.key == "model.name"


def test_target_of_the_wrong_kind_is_refused_before_it_is_called(tmp_path):
    marker = tmp_path / "called"
    with pytest.raises(ConfigError, match="not a model"):
        instantiate({"_target_": "subprocess.Popen", "args": ["touch", str(marker)]}, "model")
    with pytest.raises(ConfigError, match="not a class"):
        instantiate({"_target_": "os.system", "command": f"touch {marker}"}, "model")
    assert not marker.exists()
    assert subprocess.Popen is not None


def test_target_in_a_missing_module_is_a_config_error():
    with pytest.raises(ConfigError, match="cannot be imported"):
        resolve({"_target_": "no_such_lab.models.Net"}, "model")


def test_name_and_target_together_are_refused():
    with pytest.raises(ConfigError, match="not both"):
        resolve({"name": "MLP", "_target_": "pyrosys.models.mlp.MLP"}, "model")


def test_unknown_constructor_argument_answers_with_the_nearest_ones():
    parameters = [torch.nn.Parameter(torch.zeros(1))]
    with pytest.raises(ConfigError) as caught:
        instantiate({"name": "Adam", "lr": 0.1, "weight_decy": 0.1}, "optimizer", parameters, given=("params",),
                    key="training.optimizer")
    assert caught.value.key == "training.optimizer.weight_decy"
    assert "'weight_decay'" in caught.value.hint


def test_string_where_a_number_is_expected_is_a_config_error():
    parameters = [torch.nn.Parameter(torch.zeros(1))]
    with pytest.raises(ConfigError, match="expects a number"):
        instantiate({"name": "SGD", "lr": "fast"}, "optimizer", parameters, given=("params",))


def test_decorator_registers_user_components_by_name():
    @register("model", name="TinyTestModel")
    class Tiny(Model):
        @staticmethod
        def build(params, data_definitions):
            return {"net": torch.nn.Linear(1, 1)}

    assert registered("model")["TinyTestModel"] is Tiny
    assert resolve({"name": "TinyTestModel"}, "model") is Tiny


def test_a_non_mapping_spec_is_a_config_error():
    with pytest.raises(ConfigError, match="mapping"):
        resolve("LeNet5", "model", key="model")


def test_the_namespace_index_is_what_the_installed_libraries_and_kinds_give_now():
    from pyrosys.factory import NAMESPACE_INDEX, namespace_index_now

    assert json.loads(NAMESPACE_INDEX.read_text()) == namespace_index_now(), (
        "the namespace index is out of date: python -c 'from pyrosys.factory import write_namespace_index; "
        "write_namespace_index()'")


def test_the_names_known_without_importing_are_the_registered_names_of_every_kind():
    from pyrosys.factory import NAMESPACE_INDEX, indexed_names

    kinds = json.loads(NAMESPACE_INDEX.read_text())
    assert {"model", "problem", "loader", "optimizer", "scheduler", "callback", "worker"} <= set(kinds)
    for kind in kinds:
        known = indexed_names(kind)
        assert known is not None and set(known) == set(registered(kind)), kind
        assert all(class_path(registered(kind)[name]) == where.replace(":", ".") or where.startswith(("torch.",
                   "pytorch_lightning.")) for name, where in known.items()), kind


def test_a_legacy_components_entry_point_sends_names_through_the_import(tmp_path, monkeypatch, distribution):
    from pyrosys.factory import check_name, indexed_names

    distribution("old_lab", "[pyrosys.components]\nold_lab = old_lab\n")
    assert indexed_names("model") is not None
    with pytest.raises(ConfigError, match="no model named 'Nett'"):
        check_name({"name": "Nett"}, "model", source=lambda key: "exp.yaml", key="model")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert indexed_names("model") is None
    check_name({"name": "Nett"}, "model", source=lambda key: "exp.yaml", key="model")   # left to resolve()


def test_an_optimizer_argument_is_checked_against_the_index_naming_the_file_that_set_it():
    from pyrosys.factory import check_name

    sources = {"training.optimizer.name": "defaults.yaml", "training.optimizer.learning_rate": "the command line"}
    with pytest.raises(ConfigError) as caught:
        check_name({"name": "Adam", "learning_rate": 0.1}, "optimizer", source=sources.get, key="training.optimizer")
    assert (caught.value.file, caught.value.key) == ("the command line", "training.optimizer.learning_rate")
    with pytest.raises(ConfigError, match="expects a number"):
        check_name({"name": "SGD", "lr": "fast"}, "optimizer", source=sources.get, key="training.optimizer")
    check_name({"name": "Adam", "lr": 0.1, "betas": [0.9, 0.99]}, "optimizer", source=sources.get, key="o")
