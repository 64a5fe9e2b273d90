"""Searches: the `search:` section of a grid file, read and checked before any trial (nothing imported but YAML).

    search:
      sampler: tpe            # random | tpe | cmaes | grid | qmc   (Optuna's samplers)
      trials: 40              # trials of each study (one study per task and grid_search combination)
      seed: 0
      space:
        training.optimizer.lr: {low: 1.0e-4, high: 1.0e-1, log: true}     # floats (log scale)
        model.hidden_sizes: {choices: [[64], [128], [128, 64]]}           # any YAML values
        model.layers: {low: 1, high: 4}                                    # whole numbers: integers
      pruner: {name: median, warmup_validations: 2}   # median | percentile | hyperband | none
      repetitions: 1          # seeds per trial; the objective is the mean of their best validation values

The objective is each run's `validation.monitor` at its best validation (by `validation.mode`).
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from pyrosys.errors import ConfigError, did_you_mean

SAMPLERS = ("random", "tpe", "cmaes", "grid", "qmc")
PRUNERS = {"median": ("warmup_validations", "startup_trials"),
           "percentile": ("percentile", "warmup_validations", "startup_trials"),
           "hyperband": ("min_validations", "max_validations", "reduction_factor"),
           "none": ()}
SEARCH_KEYS = ("sampler", "trials", "seed", "space", "pruner", "repetitions")
NUMBER_KEYS = ("low", "high", "log", "step")
INSTALL = 'pip install "pyrosys[search]"'


@dataclass
class SearchSpec:
    """A checked search: sampler, trials per study, seed, space, pruner, repetitions per trial."""

    sampler: str = "tpe"
    trials: int = 20
    seed: int | None = None
    space: dict[str, dict] = field(default_factory=dict)
    pruner: dict = field(default_factory=lambda: {"name": "none"})
    repetitions: int = 1

    def to_dict(self) -> dict:
        return asdict(self)

    def budget(self) -> int:
        """Trials each study runs: `trials`, and no more than the grid sampler's combinations (past them, it
        would train configurations again)."""
        if self.sampler != "grid":
            return self.trials
        return min(self.trials, math.prod(len(entry["choices"]) for entry in self.space.values()))

    def kind(self, key: str) -> str:
        """float, int or choices: what a space key samples."""
        entry = self.space[key]
        if "choices" in entry:
            return "choices"
        return "int" if all(_whole(entry[k]) for k in ("low", "high")) and _whole(entry.get("step", 1)) else "float"


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_search(data: Any, file: str) -> SearchSpec:
    """The `search:` mapping of a grid file checked, each refusal naming its key and what to write."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"must be a mapping, not {type(data).__name__}", file=file, key="search")
    for key in data:
        if key not in SEARCH_KEYS:
            raise ConfigError("is not a search key", file=file, key=f"search.{key}",
                              hint=did_you_mean(str(key), SEARCH_KEYS) + " A search has " + ", ".join(SEARCH_KEYS))
    spec = SearchSpec(**{key: data[key] for key in SEARCH_KEYS if key in data and key != "pruner"})
    if spec.sampler not in SAMPLERS:
        raise ConfigError(f"the sampler {spec.sampler!r} is not one PyroSys knows", file=file, key="search.sampler",
                          hint=did_you_mean(str(spec.sampler), SAMPLERS) + " Samplers: " + ", ".join(SAMPLERS))
    for key, low in (("trials", 1), ("repetitions", 1)):
        value = getattr(spec, key)
        if not _whole(value) or value < low:
            raise ConfigError(f"must be a positive whole number, not {value!r}", file=file, key=f"search.{key}",
                              hint=f"Write for example 'search: {{{key}: {20 if key == 'trials' else 1}}}'")
    if spec.seed is not None and not _whole(spec.seed):
        raise ConfigError(f"must be a whole number or null, not {spec.seed!r}", file=file, key="search.seed")
    if not isinstance(spec.space, Mapping) or not spec.space:
        raise ConfigError("the search space names at least one configuration key", file=file, key="search.space",
                          hint="Write for example 'space: {training.optimizer.lr: {low: 1.0e-4, high: 1.0e-1, "
                               "log: true}}'")
    spec.space = {str(key): _checked_entry(key, entry, file) for key, entry in spec.space.items()}
    spec.pruner = _checked_pruner(data.get("pruner"), file)
    if spec.sampler == "grid" and any("choices" not in entry for entry in spec.space.values()):
        raise ConfigError("the grid sampler tries listed values: every space key needs choices", file=file,
                          key="search.space", hint="Write {choices: [...]} for each key, or use another sampler")
    return spec


def _checked_entry(key: Any, entry: Any, file: str) -> dict:
    """One space key: {choices: [...]} or {low, high[, log][, step]}, each refusal its own message."""
    where = f"search.space.{key}"
    if not isinstance(entry, Mapping):
        raise ConfigError(f"a space key gives a range or choices, not {entry!r}", file=file, key=where,
                          hint="Write {low: 0.0, high: 0.5}, {low: 1.0e-4, high: 1.0e-1, log: true} or "
                               "{choices: [a, b]}")
    entry = dict(entry)
    if "choices" in entry:
        if set(entry) != {"choices"}:
            raise ConfigError("choices stand alone (no low, high or log beside them)", file=file, key=where)
        if not isinstance(entry["choices"], list) or not entry["choices"]:
            raise ConfigError(f"choices list at least one value, not {entry['choices']!r}", file=file,
                              key=f"{where}.choices", hint="Write for example 'choices: [[64], [128, 64]]'")
        return entry
    for name in entry:
        if name not in NUMBER_KEYS:
            raise ConfigError("is not a key of a search range", file=file, key=f"{where}.{name}",
                              hint=did_you_mean(str(name), (*NUMBER_KEYS, "choices")))
    for name in ("low", "high"):
        if not _number(entry.get(name)):
            raise ConfigError(f"a range needs a number for {name}, not {entry.get(name)!r}", file=file,
                              key=f"{where}.{name}", hint="Write for example {low: 0.0, high: 0.5}")
    if entry["low"] > entry["high"]:
        raise ConfigError(f"low ({entry['low']}) is above high ({entry['high']})", file=file, key=f"{where}.low",
                          hint="Swap them")
    if not isinstance(entry.get("log", False), bool):
        raise ConfigError(f"log is true or false, not {entry['log']!r}", file=file, key=f"{where}.log")
    if entry.get("log") and entry["low"] <= 0:
        raise ConfigError(f"a log-scale range needs low > 0, not {entry['low']}", file=file, key=f"{where}.low",
                          hint="Give a positive low (1.0e-5, say), or drop log: true")
    if "step" in entry and (not _number(entry["step"]) or entry["step"] <= 0 or entry.get("log")):
        raise ConfigError(f"step is a positive number on a linear range, not {entry['step']!r}", file=file,
                          key=f"{where}.step")
    return entry


def _checked_pruner(value: Any, file: str) -> dict:
    """The pruner as {name, ...its settings}; none by default."""
    pruner = {"name": value} if isinstance(value, str) else dict(value or {"name": "none"})
    name = pruner.get("name")
    if name not in PRUNERS:
        raise ConfigError(f"the pruner {name!r} is not one PyroSys knows", file=file, key="search.pruner.name",
                          hint=did_you_mean(str(name), PRUNERS) + " Pruners: " + ", ".join(PRUNERS))
    for key, setting in pruner.items():
        if key == "name":
            continue
        if key not in PRUNERS[name]:
            raise ConfigError(f"is not a setting of the {name} pruner", file=file, key=f"search.pruner.{key}",
                              hint=did_you_mean(str(key), PRUNERS[name]) + " Its settings: "
                                   + (", ".join(PRUNERS[name]) or "none"))
        if key == "max_validations" and setting == "auto":
            continue
        low = 1 if key in ("min_validations", "max_validations", "reduction_factor") else 0
        if key == "percentile":
            if not _number(setting) or not 0 < setting < 100:
                raise ConfigError(f"percentile is between 0 and 100, not {setting!r}", file=file,
                                  key="search.pruner.percentile")
        elif not _whole(setting) or setting < low:
            raise ConfigError(f"must be a whole number of at least {low}, not {setting!r}", file=file,
                              key=f"search.pruner.{key}")
    return pruner


def encode_choice(value: Any) -> str | int | float | bool | None:
    """A choice as Optuna stores it: plain scalars as they are, lists and mappings as JSON text."""
    return value if value is None or isinstance(value, (str, int, float, bool)) else json.dumps(value)


def decode_choice(value: Any, choices: list) -> Any:
    """The configuration value of a stored choice (the choice whose encoding it is)."""
    for choice in choices:
        if encode_choice(choice) == value:
            return choice
    return value


def check_search_keys(spec: SearchSpec, sweep_keys: list[str], file: str) -> None:
    """A key may be searched or swept, not both."""
    both = [key for key in spec.space if key in sweep_keys]
    if both:
        raise ConfigError(f"{both[0]} is both searched and swept", file=file, key=f"search.space.{both[0]}",
                          hint="Keep it in search.space or in grid_search, not both")
