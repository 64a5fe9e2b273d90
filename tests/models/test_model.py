"""pyrosys.models: get_params / build / create / save / load; bundles rebuild with nothing else."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from pyrosys.errors import ConfigError
from pyrosys.models.lenet5 import LeNet5
from pyrosys.models.mlp import MLP
from pyrosys.models.model import Model
from pyrosys.problems.scikit_learn import Digits

DIGITS = Digits.create({"seed": 0}).data_definitions


def test_create_fills_defaults_and_sizes_from_data_definitions():
    model = MLP.create({"hidden_sizes": [32]}, DIGITS)
    assert model.params == {"hidden_sizes": [32], "dropout": 0.0}
    assert model.models["encoder"][1].in_features == 64
    assert model.models["head"][-1].out_features == 10


def test_lenet5_sizes_itself_for_8x8_images():
    model = LeNet5.create({}, DIGITS)
    assert model(torch.zeros(5, 1, 8, 8)).shape == (5, 10)
    assert set(model.models) == {"features", "classifier"}


def test_create_refuses_unknown_parameters_with_the_nearest_one():
    with pytest.raises(ConfigError) as caught:
        LeNet5.create({"chanels": [4, 8]}, DIGITS)
    assert caught.value.key == "model.chanels" and "'channels'" in caught.value.hint


def test_bundle_round_trip_predicts_exactly_the_same(tmp_path):
    torch.manual_seed(0)
    model = LeNet5.create({"channels": [4, 8]}, DIGITS)
    inputs = torch.rand(7, 1, 8, 8)
    folder = model.save(tmp_path / "bundle")
    assert sorted(p.name for p in folder.iterdir()) == ["model.yaml", "weights.safetensors"]
    loaded = Model.load(folder)
    assert type(loaded) is LeNet5 and loaded.params == model.params
    assert torch.equal(loaded.predict(inputs), model.predict(inputs))


def test_loading_a_bundle_as_another_model_class_is_refused(tmp_path):
    folder = MLP.create({}, DIGITS).save(tmp_path / "mlp")
    with pytest.raises(ConfigError, match="holds a MLP, not a LeNet5"):
        LeNet5.load(folder)


def test_bundle_naming_a_class_that_is_not_a_model_is_refused(tmp_path):
    folder = MLP.create({}, DIGITS).save(tmp_path / "mlp")
    text = (folder / "model.yaml").read_text().replace("pyrosys.models.mlp.MLP", "subprocess.Popen")
    (folder / "model.yaml").write_text(text)
    with pytest.raises(ConfigError, match="not a model"):
        Model.load(folder)


def test_bundle_weights_of_another_shape_are_refused(tmp_path):
    folder = MLP.create({"hidden_sizes": [16]}, DIGITS).save(tmp_path / "mlp")
    text = (folder / "model.yaml").read_text().replace("- 16", "- 32")
    (folder / "model.yaml").write_text(text)
    with pytest.raises(ConfigError, match="do not fit"):
        Model.load(folder)


def test_steps_need_an_attached_objective():
    model = MLP.create({}, DIGITS)
    with pytest.raises(RuntimeError, match="objective"):
        model.training_step({"inputs": torch.zeros(2, 1, 8, 8), "targets": torch.zeros(2, dtype=torch.long)}, 0)


def test_lightning_s_hook_name_is_a_plain_attribute_and_modules_still_register():
    model = MLP.create({"hidden_sizes": [8]}, DIGITS)
    model._current_fx_name = "training_step"
    assert model.__dict__["_current_fx_name"] == "training_step" and "_current_fx_name" not in model._modules
    model.extra = nn.Linear(2, 2)
    assert "extra" in model._modules and "extra.weight" in model.state_dict()
