"""pyrosys.configuration.aliases: another framework's names and keys rewritten to PyroSys's, sources kept."""
from __future__ import annotations

import pytest

from pyrosys.configuration.aliases import Aliases, Fixed, apply_aliases
from pyrosys.configuration.loading import load_configuration
from pyrosys.errors import ConfigError


def double_size(value: object, params: dict) -> dict:
    if not isinstance(value, int):
        raise ValueError(f"size is a number, not {value!r}")
    return {"episodes": value // params["batch_size"], "loader.shuffle": True}


ALIASES = Aliases(names={"LSTM": {"cell": "lstm"}}, keys={"hidden_state_size": "hidden_size"},
                  converted={"size": double_size}, fixed={"bias": Fixed(0.5, "bits are fair coins")})


def test_names_and_keys_are_rewritten_recorded_and_keep_their_source_file(write):
    path = write("model.yaml", "model: {name: LSTM, hidden_state_size: 7, size: 64, bias: 0.5}\n")
    configuration = load_configuration([path])
    done = apply_aliases(configuration, "model", ALIASES, "SequenceRNN", {"batch_size": 32})
    assert configuration.tree["model"] == {"name": "SequenceRNN", "cell": "lstm", "hidden_size": 7, "episodes": 2,
                                           "loader": {"shuffle": True}}
    assert done == ["model.name: LSTM -> model.name: SequenceRNN, model.cell: lstm", "model.hidden_state_size -> model.hidden_size",
                    "model.size: 64 -> model.episodes: 2, model.loader.shuffle: True",
                    "model.bias: 0.5 accepted (bits are fair coins)"]
    assert configuration.sources["model.hidden_size"] == configuration.sources["model.loader.shuffle"] == str(path)
    assert "model.hidden_state_size" not in configuration.sources


@pytest.mark.parametrize("text, key, message", [
    ("model: {name: LSTM, cell: gru}\n", "model.name", "means model.cell: 'lstm', but model.cell is 'gru'"),
    ("model: {hidden_state_size: 7, hidden_size: 8}\n", "model.hidden_state_size", "model.hidden_size is 8"),
    ("model: {bias: 0.7}\n", "model.bias", "in PyroSys bits are fair coins"),
    ("model: {size: many}\n", "model.size", "size is a number, not 'many'"),
])
def test_what_cannot_be_honoured_is_refused_naming_file_and_key(write, text, key, message):
    path = write("model.yaml", text)
    configuration = load_configuration([path])
    with pytest.raises(ConfigError) as caught:
        apply_aliases(configuration, "model", ALIASES, "SequenceRNN", {"batch_size": 32})
    assert (caught.value.key, caught.value.file) == (key, str(path)) and message in caught.value.message
