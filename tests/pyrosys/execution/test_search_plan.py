"""The search section of a grid file: what it accepts, what it refuses (with the key and what to write), and how
choices travel through Optuna's storage."""
from __future__ import annotations

import sys

import pytest

from pyrosys.errors import ConfigError
from pyrosys.execution.search_plan import check_search_keys, decode_choice, encode_choice, read_search

SPACE = {"training.optimizer.lr": {"low": 1.0e-4, "high": 0.1, "log": True},
         "model.hidden_sizes": {"choices": [[64], [128, 64]]}, "model.layers": {"low": 1, "high": 4}}


def test_a_search_is_read_with_its_defaults_and_kinds():
    spec = read_search({"space": SPACE, "trials": 8, "pruner": {"name": "median", "warmup_validations": 2}}, "g.yaml")
    assert (spec.sampler, spec.trials, spec.repetitions, spec.pruner) == \
        ("tpe", 8, 1, {"name": "median", "warmup_validations": 2})
    assert [spec.kind(key) for key in SPACE] == ["float", "choices", "int"]
    assert read_search({"space": SPACE, "pruner": "none"}, "g.yaml").pruner == {"name": "none"}


@pytest.mark.parametrize("search, key, words", [
    ({"space": {"a.b": {"low": 2, "high": 1}}}, "search.space.a.b.low", "low (2) is above high (1)"),
    ({"space": {"a.b": {"low": 0, "high": 1, "log": True}}}, "search.space.a.b.low", "needs low > 0"),
    ({"space": {"a.b": {"choices": []}}}, "search.space.a.b.choices", "at least one value"),
    ({"space": {"a.b": {"lo": 0, "high": 1}}}, "search.space.a.b.lo", "is not a key of a search range"),
    ({"space": {"a.b": 3}}, "search.space.a.b", "gives a range or choices"),
    ({"space": SPACE, "trials": 0}, "search.trials", "positive whole number"),
    ({"space": SPACE, "trials": 2.5}, "search.trials", "positive whole number"),
    ({"space": SPACE, "sampler": "tpee"}, "search.sampler", "is not one PyroSys knows"),
    ({"space": SPACE, "pruner": {"name": "medium"}}, "search.pruner.name", "is not one PyroSys knows"),
    ({"space": SPACE, "pruner": {"name": "median", "warmup": 2}}, "search.pruner.warmup", "is not a setting"),
    ({"space": SPACE, "sampler": "grid"}, "search.space", "needs choices"),
    ({"space": {}}, "search.space", "at least one configuration key"),
    ({"spaces": SPACE}, "search.spaces", "is not a search key"),
])
def test_bad_searches_are_refused_naming_the_key(search, key, words):
    with pytest.raises(ConfigError) as caught:
        read_search(search, "grid.yaml")
    assert caught.value.key == key and words in caught.value.message and caught.value.file == "grid.yaml"


def test_the_nearest_sampler_is_suggested_and_a_key_is_not_both_searched_and_swept():
    with pytest.raises(ConfigError) as caught:
        read_search({"space": SPACE, "sampler": "tpee"}, "grid.yaml")
    assert "'tpe'" in caught.value.hint
    with pytest.raises(ConfigError, match="both searched and swept"):
        check_search_keys(read_search({"space": SPACE}, "g.yaml"), ["model.layers"], "g.yaml")


def test_list_choices_are_stored_as_json_text_and_read_back_as_lists():
    choices = [[64], [128, 64], "relu", 3, None]
    assert [encode_choice(c) for c in choices] == ["[64]", "[128, 64]", "relu", 3, None]
    assert [decode_choice(encode_choice(c), choices) for c in choices] == choices


def test_a_search_without_optuna_is_refused_with_the_pip_command(monkeypatch):
    from pyrosys.execution.study import optuna_module
    monkeypatch.setitem(sys.modules, "optuna", None)           # import optuna now raises ImportError
    with pytest.raises(ConfigError) as caught:
        optuna_module()
    assert 'pip install "pyrosys[search]"' in caught.value.hint


def test_a_search_over_a_project_group_picks_its_choices_as_a_sweep_does(tmp_path):
    from pyrosys.execution.grid_plan import expand, trial_run
    from pyrosys.workers import init
    project = init.create("my_lab", tmp_path)
    grid = project / "search.yaml"
    grid.write_text("grid_tasks: [{default_configs: my_lab/config/train.yaml}]\n"
                    "grid_search: {data: [example, digits]}\n"
                    "search: {trials: 2, space: {model: {choices: [example, mlp]}, training.optimizer.lr: "
                    "{low: 1.0e-4, high: 1.0e-2}}}\n")
    plan = expand(grid, seed=0)
    assert plan.runs == [] and [base.choices for base in plan.bases] == [{"data": "example"}, {"data": "digits"}]
    run = trial_run(plan.bases[1], {"model": "mlp", "training.optimizer.lr": 0.001}, 7, 0, 1)
    assert run.choices == {"data": "digits", "model": "mlp"} and run.overrides[-1] == "training.optimizer.lr=0.001"
    assert (run.name, run.study, run.trial) == (f"{plan.bases[1].name}_t007", plan.bases[1].name, 7)
    assert "--c" in run.trainer_arguments() and "model=mlp" in run.trainer_arguments()
