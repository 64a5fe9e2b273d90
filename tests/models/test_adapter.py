"""pyrosys.models.adapter: weights move by structure across models whose parameter names differ."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from pyrosys.errors import ConfigError
from pyrosys.models import MLP, LeNet5
from pyrosys.models.adapter import adapt
from pyrosys.models.model import Model
from pyrosys.models.modules import MLPEncoder, head_for

DIGITS = {"inputs": {"kind": "image", "shape": [1, 8, 8]}, "targets": {"task": "classification", "num_classes": 10}}


class RenamedMLP(Model):
    """The same layers as MLP under other names (`body`, `out`)."""

    @staticmethod
    def get_params() -> dict:
        return {"hidden_sizes": [16], "dropout": 0.0}

    @staticmethod
    def build(params, data_definitions):
        body = MLPEncoder(64, params["hidden_sizes"])
        return {"body": body, "out": head_for("classification", body.out_features, data_definitions["targets"])}

    def forward(self, inputs):
        return self.models["out"](self.models["body"](inputs))


def trained_mlp() -> MLP:
    torch.manual_seed(0)
    model = MLP.create({"hidden_sizes": [16]}, DIGITS)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter))
    return model


def test_weights_move_into_a_model_with_other_names_but_the_same_structure(tmp_path):
    source = trained_mlp()
    inputs = torch.rand(9, 1, 8, 8)
    for origin in (source, source.save(tmp_path / "bundle")):
        target = RenamedMLP.create({}, DIGITS)
        report = adapt(target, origin)
        assert len(report.matched) == 4 and not report.shape_mismatched and not report.unmatched_target
        assert ("encoder.1.weight", "body.1.weight") in report.matched
        assert torch.equal(target.predict(inputs), source.predict(inputs))


def test_only_named_modules_are_copied_and_frozen():
    source = trained_mlp()
    target = MLP.create({"hidden_sizes": [16]}, DIGITS)
    head_before = target.models["head"][1].weight.clone()
    report = adapt(target, source, modules=["encoder"], freeze=["encoder"])
    assert [t for _, t in report.matched] == ["encoder.1.weight", "encoder.1.bias"]
    assert torch.equal(target.models["encoder"][1].weight, source.models["encoder"][1].weight)
    assert torch.equal(target.models["head"][1].weight, head_before)
    assert not any(p.requires_grad for p in target.models["encoder"].parameters())
    assert all(p.requires_grad for p in target.models["head"].parameters())


def test_shape_mismatches_are_reported_not_copied():
    source = trained_mlp()
    target = MLP.create({"hidden_sizes": [32]}, DIGITS)
    report = adapt(target, source)
    assert report.shape_mismatched[0][:2] == ("encoder.1.weight", "encoder.1.weight")
    assert report.shape_mismatched[0][2:] == ([16, 64], [32, 64])


def test_an_unknown_module_name_is_refused_with_the_real_ones():
    with pytest.raises(ConfigError, match="'encoder'"):
        adapt(MLP.create({}, DIGITS), trained_mlp(), modules=["encoderr"])


def test_a_module_missing_from_the_source_is_refused():
    with pytest.raises(ConfigError, match="no sub-module 'features'"):
        adapt(LeNet5.create({}, DIGITS), trained_mlp(), modules=["features"])


def test_a_missing_source_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no model bundle or checkpoint"):
        adapt(MLP.create({}, DIGITS), tmp_path / "nothing")
