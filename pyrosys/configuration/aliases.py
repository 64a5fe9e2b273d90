"""Aliases: the names and keys a component (or a section) answers to in MI-Prometheus's files, and what they mean.

A component class declares `aliases = Aliases(...)` beside its get_params(): its MI-Prometheus names with the
parameters each implies (`LSTM` is SequenceRNN with `cell: lstm`), keys renamed (`hidden_state_size` ->
`hidden_size`), keys converted (`size`, samples an epoch -> `episodes`, batches an epoch) and keys PyroSys
honours at one value only (`bias: 0.5`). `apply_aliases` rewrites one section of a loaded configuration to
PyroSys's own names before anything reads it, keeps each key's source file, and returns one line per alias
applied: the saved configuration shows PyroSys's names, and those lines record what was translated.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pyrosys.configuration.loading import Configuration, leaf_paths, value_at
from pyrosys.errors import ConfigError

FRAMEWORK = "MI-Prometheus"


@dataclass(frozen=True)
class Fixed:
    """A key PyroSys honours at one value only: that value is accepted (and dropped), any other refused."""

    value: Any
    meaning: str       # what PyroSys does, e.g. "bits are drawn with probability 0.5"


# a converter: (the value, the section's parameters with the component's defaults under them) -> PyroSys's
# parameters, as keys relative to the section (dotted paths reach into sub-sections: "problem.shuffle");
# it raises ValueError, saying why, for a value it cannot translate
Converter = Callable[[Any, Mapping], dict]


@dataclass(frozen=True)
class Aliases:
    """Another framework's names and keys for one component or section, and their PyroSys meaning."""

    names: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)   # another name -> parameters it implies
    keys: Mapping[str, str] = field(default_factory=dict)                  # another key -> PyroSys's key
    converted: Mapping[str, Converter] = field(default_factory=dict)       # another key -> its PyroSys parameters
    fixed: Mapping[str, Fixed] = field(default_factory=dict)               # keys honoured at one value only


def alias_comments(aliases: Iterable[str]) -> str:
    """The translations applied, as YAML comment lines for the top of a resolved configuration."""
    return "".join(f"# {FRAMEWORK} alias: {alias}\n" for alias in aliases)


def apply_aliases(configuration: Configuration, path: str, aliases: Aliases, own_name: str | None = None,
                  context: Mapping | None = None) -> list[str]:
    """Rewrite the section at `path` to PyroSys's names (`own_name`: the class the section names) in place;
    `context` holds the values converters may need (defaults, shared sections). Returns what was done."""
    section = value_at(configuration.tree, path)
    if not isinstance(section, dict):
        return []
    done = []
    name = section.get("name")
    if own_name is not None and isinstance(name, str) and name in aliases.names:
        implied = {"name": own_name, **aliases.names[name]}
        done.append(f"{path}.name: {name} -> " + ", ".join(f"{path}.{k}: {v}" for k, v in implied.items()))
        _set(configuration, path, "name", implied, name_key="name")
    for key in list(section):
        if key in aliases.keys:
            value = section[key]
            _set(configuration, path, key, {aliases.keys[key]: value})
            done.append(f"{path}.{key} -> {path}.{aliases.keys[key]}")
        elif key in aliases.converted:
            try:
                converted = aliases.converted[key](section[key], {**(context or {}), **section})
            except ValueError as error:
                raise ConfigError(str(error), file=configuration.source(f"{path}.{key}"), key=f"{path}.{key}") from None
            done.append(f"{path}.{key}: {section[key]} -> "
                        + ", ".join(f"{path}.{k}: {v}" for k, v in converted.items()))
            _set(configuration, path, key, converted)
        elif key in aliases.fixed:
            _accept_fixed(configuration, path, key, aliases.fixed[key])
            done.append(f"{path}.{key}: {aliases.fixed[key].value} accepted ({aliases.fixed[key].meaning})")
    return done


def _accept_fixed(configuration: Configuration, path: str, key: str, fixed: Fixed) -> None:
    """Drop a key given at the one value PyroSys honours; refuse any other value."""
    section = value_at(configuration.tree, path)
    if section[key] != fixed.value:
        raise ConfigError(f"{FRAMEWORK}'s '{key}: {section[key]!r}' cannot be honoured: in PyroSys {fixed.meaning}",
                          file=configuration.source(f"{path}.{key}"), key=f"{path}.{key}",
                          hint=f"Remove the key, or set it to {fixed.value!r}")
    del section[key]
    configuration.sources.pop(f"{path}.{key}", None)


def _set(configuration: Configuration, path: str, old: str, values: Mapping, name_key: str | None = None) -> None:
    """Replace key `old` of the section at `path` by `values` (dotted keys reach into sub-sections), keeping
    the file that set `old` as their source; a value the section already holds differently is a conflict."""
    section = value_at(configuration.tree, path)
    source = configuration.source(f"{path}.{old}")
    section.pop(old)
    configuration.sources.pop(f"{path}.{old}", None)
    for key, value in values.items():
        *parents, leaf = key.split(".")
        node = section
        for parent in parents:
            node = node.setdefault(parent, {})
        full = ".".join([path, key])
        if leaf in node and node[leaf] != value and key != name_key:
            raise ConfigError(f"'{path}.{old}' ({FRAMEWORK}) means {full}: {value!r}, but {full} is "
                              f"{node[leaf]!r}", file=source, key=f"{path}.{old}", hint="Keep one of the two")
        node[leaf] = value
        if source is not None:
            configuration.sources.update({leaf_path: source for leaf_path in leaf_paths({full: value})})
