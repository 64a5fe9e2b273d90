"""pyrosys.configuration.param_registry: a singleton tree, tracked views, defaults, freezing, unread keys."""
from __future__ import annotations

import pytest

from pyrosys.configuration.loading import Configuration
from pyrosys.errors import ConfigError
from pyrosys.configuration.param_registry import ParamRegistry, fill_defaults


def registry_with(tree: dict, source: str = "exp.yaml") -> ParamRegistry:
    from pyrosys.configuration.loading import leaf_paths

    registry = ParamRegistry()
    registry.load(Configuration(tree=tree, sources={leaf: source for leaf in leaf_paths(tree)}, files=[source]))
    return registry


def test_registry_is_a_singleton_until_reset():
    assert ParamRegistry() is ParamRegistry()
    first = ParamRegistry()
    ParamRegistry.reset()
    assert ParamRegistry() is not first


def test_defaults_fill_only_what_the_configuration_left_out():
    registry = registry_with({"model": {"hidden": 32}})
    section = registry.section("model")
    section.add_default_params({"hidden": 8, "dropout": 0.5, "block": {"depth": 2}})
    assert section.to_dict() == {"hidden": 32, "dropout": 0.5, "block": {"depth": 2}}


def test_defaults_never_merge_into_a_class_spec_given_by_the_configuration():
    registry = registry_with({"training": {"optimizer": {"_target_": "torch.optim.SGD", "lr": 0.1}}})
    registry.section("training").add_default_params({"optimizer": {"name": "Adam", "lr": 0.001}})
    assert registry.to_dict()["training"]["optimizer"] == {"_target_": "torch.optim.SGD", "lr": 0.1}


def test_unread_keys_are_reported_with_the_nearest_known_key():
    registry = registry_with({"model": {"name": "MLP", "hiden_sizes": [4]}})
    section = registry.section("model")
    section.add_default_params({"hidden_sizes": [8], "dropout": 0.0})
    assert section["name"] == "MLP"
    _ = section["hidden_sizes"], section["dropout"]
    assert registry.unread() == [("model.hiden_sizes", "model.hidden_sizes")]
    with pytest.raises(ConfigError) as caught:
        registry.check_unread()
    assert "did you mean 'model.hidden_sizes'" in caught.value.paragraph()
    assert caught.value.file == "exp.yaml"


def test_keys_read_whole_through_to_dict_are_not_reported():
    registry = registry_with({"training": {"trainer": {"precision": 32, "devices": 1}}})
    registry.section("training")["trainer"].to_dict()
    assert registry.unread() == []


def test_frozen_registry_refuses_new_defaults():
    registry = registry_with({"model": {}})
    registry.freeze()
    with pytest.raises(RuntimeError, match="frozen"):
        registry.section("model").add_default_params({"x": 1})


def test_values_handed_out_are_copies():
    registry = registry_with({"model": {"sizes": [1, 2]}})
    registry.section("model")["sizes"].append(3)
    assert registry.to_dict()["model"]["sizes"] == [1, 2]


def test_check_unread_can_ignore_keys_from_one_source():
    registry = registry_with({"training": {"seed": 1}}, source="the checkpoint")
    registry.check_unread(exclude_source="the checkpoint")
    with pytest.raises(ConfigError):
        registry.check_unread()


def test_a_section_that_is_not_a_mapping_is_a_config_error():
    registry = registry_with({"model": 3})
    with pytest.raises(ConfigError, match="must be a mapping"):
        registry.section("model")


def test_a_value_set_on_a_default_keeps_its_class_and_another_class_replaces_it_whole():
    default = {"optimizer": {"name": "Adam", "lr": 0.001, "betas": [0.9, 0.99]}}
    for given, expected in (({"lr": 0.01}, {"name": "Adam", "lr": 0.01, "betas": [0.9, 0.99]}),
                            ({"name": "Adam", "eps": 1.0}, {"name": "Adam", "eps": 1.0, "lr": 0.001,
                                                            "betas": [0.9, 0.99]}),
                            ({"name": "SGD", "momentum": 0.9}, {"name": "SGD", "momentum": 0.9}),
                            ({"_target_": "torch.optim.SGD"}, {"_target_": "torch.optim.SGD"})):
        tree = {"optimizer": dict(given)}
        fill_defaults(tree, default)
        assert tree["optimizer"] == expected, given
