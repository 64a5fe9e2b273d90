"""Built-in models: each sizes itself from data definitions and refuses data it cannot read."""
from __future__ import annotations

import pytest
import torch

from pyrosys.errors import ConfigError
from pyrosys.models import (MLP, Autoencoder, LeNet5, ProteinCNN, SequenceRNN, SimpleCNN,
                            TransformerClassifier)

IMAGES = {"inputs": {"kind": "image", "shape": [1, 8, 8]}, "targets": {"task": "classification", "num_classes": 10}}
VECTORS = {"inputs": {"kind": "vector", "shape": [30]}, "targets": {"task": "regression", "shape": []}}
TOKENS = {"inputs": {"kind": "tokens", "shape": [20], "vocabulary": ["<pad>", "A", "C", "D", "E"]},
          "targets": {"task": "classification", "num_classes": 3}, "masks": {"shape": [20], "dtype": "bool"}}
BITS = {"inputs": {"kind": "sequence", "shape": [None, 10]}, "targets": {"task": "sequence", "shape": [None, 8]},
        "masks": {"shape": [None], "dtype": "bool"}}


def tokens(n=4, length=20):
    ids = torch.randint(1, 5, (n, length))
    masks = torch.arange(length).expand(n, length) < torch.tensor([[20], [15], [5], [1]])[:n]
    return ids * masks, masks


@pytest.mark.parametrize("model_cls, definitions, inputs, expected", [
    (MLP, IMAGES, torch.rand(4, 1, 8, 8), (4, 10)),
    (MLP, VECTORS, torch.rand(4, 30), (4, 1)),
    (LeNet5, IMAGES, torch.rand(4, 1, 8, 8), (4, 10)),
    (SimpleCNN, IMAGES, torch.rand(4, 1, 8, 8), (4, 10)),
    (Autoencoder, VECTORS, torch.rand(4, 30), (4, 30)),
    (Autoencoder, IMAGES, torch.rand(4, 1, 8, 8), (4, 1, 8, 8)),
])
def test_dense_models_size_themselves_from_the_data(model_cls, definitions, inputs, expected):
    model = model_cls.create({}, definitions)
    assert tuple(model.predict(inputs).shape) == expected


@pytest.mark.parametrize("model_cls", [SequenceRNN, TransformerClassifier, ProteinCNN])
def test_sequence_models_read_tokens_with_masks(model_cls):
    model = model_cls.create({}, TOKENS)
    ids, masks = tokens()
    assert tuple(model.predict(ids, masks=masks).shape) == (4, 3)


@pytest.mark.parametrize("model_cls", [SequenceRNN, TransformerClassifier, ProteinCNN])
def test_padding_does_not_change_a_sequence_answer(model_cls):
    torch.manual_seed(0)
    model = model_cls.create({}, TOKENS).eval()
    ids, masks = tokens()
    changed = ids.clone()
    changed[~masks] = 3              # garbage in the padded positions
    assert torch.allclose(model.predict(ids, masks=masks), model.predict(changed, masks=masks), atol=1e-5)


@pytest.mark.parametrize("model_cls, definitions, inputs", [
    (SequenceRNN, TOKENS, tokens()), (TransformerClassifier, TOKENS, tokens()), (ProteinCNN, TOKENS, tokens()),
    (MLP, VECTORS, (torch.rand(4, 30), None)), (SimpleCNN, IMAGES, (torch.rand(4, 1, 8, 8), None)),
])
def test_multilabel_models_give_one_probability_per_term(model_cls, definitions, inputs):
    terms = {"task": "multilabel", "shape": [5], "terms": ["GO:1", "GO:2", "GO:3", "GO:4", "GO:5"]}
    model = model_cls.create({}, {**definitions, "targets": terms})
    ids, masks = inputs
    probabilities = model.predict_proba(ids, **({"masks": masks} if masks is not None else {}))
    assert probabilities.shape == (4, 5)
    assert not torch.allclose(probabilities.sum(-1), torch.ones(4))     # a sigmoid per term, not a softmax


def test_protein_cnn_mean_max_pooling_feeds_both_poolings_to_the_head_and_ignores_padding():
    torch.manual_seed(0)
    model = ProteinCNN.create({"pooling": "mean_max", "channels": [8]}, TOKENS).eval()
    ids, masks = tokens()
    changed = ids.clone()
    changed[~masks] = 3
    first = next(m for m in model.models["head"].modules() if isinstance(m, torch.nn.Linear))
    assert first.in_features == 16
    assert torch.allclose(model.predict(ids, masks=masks), model.predict(changed, masks=masks), atol=1e-5)


def test_sequence_rnn_answers_every_position_for_sequence_tasks():
    model = SequenceRNN.create({"cell": "gru"}, BITS)
    assert tuple(model.predict(torch.rand(2, 7, 10)).shape) == (2, 7, 8)


def test_autoencoder_offers_encode_and_decode():
    model = Autoencoder.create({"latent_size": 3}, VECTORS)
    codes = model.encode(torch.rand(5, 30))
    assert codes.shape == (5, 3) and model.decode(codes).shape == (5, 30)


@pytest.mark.parametrize("model_cls, definitions, words", [
    (LeNet5, TOKENS, ["LeNet5 reads image inputs", "tokens inputs"]),
    (ProteinCNN, IMAGES, ["ProteinCNN reads tokens inputs", "image inputs"]),
    (TransformerClassifier, BITS, ["serves classification or regression", "sequence task"]),
])
def test_a_model_that_cannot_fit_the_data_is_refused_naming_both_sides(model_cls, definitions, words):
    with pytest.raises(ConfigError) as caught:
        model_cls.create({}, definitions)
    for word in words:
        assert word in caught.value.message


def test_bidirectional_rnn_reads_each_sequence_only_up_to_its_length():
    torch.manual_seed(0)
    model = SequenceRNN.create({"bidirectional": True}, TOKENS).eval()
    ids, masks = tokens()
    changed = ids.clone()
    changed[~masks] = 3
    assert torch.allclose(model.predict(ids, masks=masks), model.predict(changed, masks=masks), atol=1e-5)
