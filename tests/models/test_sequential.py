"""LeanSequential: the same layers, names and results as nn.Sequential, with no-op layers stepped over."""
from __future__ import annotations

import torch
from torch import nn

from pyrosys.models.modules import MLPEncoder
from pyrosys.models.modules.sequential import LeanSequential


def test_results_names_and_indices_are_those_of_nn_sequential():
    torch.manual_seed(0)
    layers = [nn.Flatten(), nn.Linear(64, 8), nn.ReLU(), nn.Dropout(0.0), nn.Linear(8, 3)]
    lean, plain = LeanSequential(*layers), nn.Sequential(*layers)
    for inputs in (torch.randn(5, 64), torch.randn(5, 1, 8, 8)):     # flat already, and images to flatten
        assert torch.equal(lean.train()(inputs), plain.train()(inputs))
    assert list(lean.state_dict()) == list(plain.state_dict()) and lean[4] is layers[4] and len(lean) == 5


def test_no_op_layers_are_not_called():
    calls = []
    encoder = MLPEncoder(64, [8], dropout=0.0)
    for layer in encoder:
        layer.register_forward_hook(lambda module, *_: calls.append(type(module).__name__))
    encoder(torch.randn(2, 64))
    assert calls == ["Linear", "ReLU"]
    calls.clear()
    encoder(torch.randn(2, 1, 8, 8))
    assert calls == ["Flatten", "Linear", "ReLU"]


def test_dropout_above_zero_still_drops_in_training_only():
    encoder = MLPEncoder(64, [256], dropout=0.5)
    inputs = torch.ones(4, 64)
    encoder.train()
    trained = encoder(inputs)
    encoder.eval()
    assert (trained == 0).float().mean() > 0.3 and (encoder(inputs) == 0).float().mean() < (trained == 0).float().mean()
