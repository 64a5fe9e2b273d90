"""pyrosys.factory: names and dotted targets become classes of the expected kind, checked before the call."""
from __future__ import annotations

import subprocess

import pytest
import torch

from pyrosys.errors import ConfigError
from pyrosys.factory import instantiate, register, registered, resolve
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
