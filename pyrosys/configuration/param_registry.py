"""ParamRegistry: the one merged parameter tree of a run; ParamInterface: a tracked view of a section.

Components fill their defaults with `add_default_params`, read what they need, and the
registry reports every key nothing read (a likely typo) with the nearest known key.
"""
from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

from pyrosys.configuration.loading import Configuration, leaf_paths, value_at
from pyrosys.errors import ConfigError, nearest
from pyrosys.singleton import Singleton


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def is_spec(value: Any) -> bool:
    """A mapping that names a class (`name` or `_target_`): replaced whole, never merged key by key."""
    return isinstance(value, Mapping) and ("name" in value or "_target_" in value)


def keeps_class(given: Mapping, default: Mapping) -> bool:
    """Whether a mapping set over a default keeps the default's class: it names none, or the same one."""
    named = {key: given[key] for key in ("name", "_target_") if key in given}
    return not named or named == {key: default[key] for key in ("name", "_target_") if key in default}


def fill_defaults(target: dict, defaults: Mapping) -> None:
    """Fill what `target` does not set from `defaults`; a mapping set over a default naming a class merges into
    it unless it names another class (then it replaces it whole, and none of the default's keys leak in)."""
    for key, value in defaults.items():
        if key not in target:
            target[key] = copy.deepcopy(value)
        elif isinstance(target[key], dict) and isinstance(value, Mapping) and value \
                and (not is_spec(value) or keeps_class(target[key], value)):
            fill_defaults(target[key], value)


class ParamRegistry(metaclass=Singleton):
    """The configuration tree of the current run, shared by every component (a singleton)."""

    def __init__(self) -> None:
        self._tree: dict = {}
        self._config = Configuration(tree={})
        self._read: set[str] = set()
        self._known: set[str] = set()
        self._frozen = False

    def load(self, config: Configuration) -> None:
        """Take a loaded configuration as the run's tree (before any component reads it)."""
        if self._frozen:
            raise RuntimeError("the parameter registry is frozen: a worker has started")
        self._config = config
        self._tree = copy.deepcopy(config.tree)
        self._read.clear()
        self._known.clear()

    @property
    def configuration(self) -> Configuration:
        """The loaded configuration (its sources tell which file set which key)."""
        return self._config

    def section(self, path: str = "") -> ParamInterface:
        """A view of the section at dotted `path`, created empty if absent and not frozen."""
        node = self._tree
        for key in filter(None, path.split(".")):
            if not isinstance(node.get(key, {}), dict):
                raise ConfigError(f"'{key}' must be a mapping of parameters, not {node[key]!r}",
                                  file=self._config.source(path), key=path)
            if key not in node:
                if self._frozen:
                    raise RuntimeError(f"the parameter registry is frozen; section '{path}' does not exist")
                node[key] = {}
            node = node[key]
        return ParamInterface(self, path)

    def node(self, path: str) -> Any:
        """The raw value at a dotted path (no read tracking; for the registry's own views)."""
        return value_at(self._tree, path)

    def freeze(self) -> None:
        """Forbid further defaults: the worker has started and the tree is final."""
        self._frozen = True

    @property
    def frozen(self) -> bool:
        return self._frozen

    def mark_read(self, path: str) -> None:
        self._read.add(path)

    def mark_known(self, path: str) -> None:
        self._known.add(path)

    def _is_read(self, path: str) -> bool:
        while path:
            if path in self._read:
                return True
            path = path.rpartition(".")[0]
        return False

    def unread(self) -> list[tuple[str, str | None]]:
        """Every leaf key that nothing read, with the nearest known key in the same section."""
        known = self._known | self._read
        report = []
        for path in leaf_paths(self._tree):
            if self._is_read(path) or path in self._known:
                continue
            parent, _, name = path.rpartition(".")
            siblings = [k.rpartition(".")[2] for k in known if k.rpartition(".")[0] == parent]
            close = nearest(name, siblings, n=1)
            if close:
                report.append((path, _join(parent, close[0])))
            else:
                close = nearest(path, known, n=1)
                report.append((path, close[0] if close else None))
        return report

    def check_unread(self, exclude_source: str | None = None) -> None:
        """Raise one ConfigError listing every key nothing read, each with its nearest known key.

        Keys set by `exclude_source` (a checkpoint's own configuration, say) are not reported.
        """
        report = [(key, near) for key, near in self.unread()
                  if exclude_source is None or self._config.source(key) != exclude_source]
        if report:
            raise unknown_keys_error(report, [self._config.source(key) for key, _ in report])

    def to_dict(self) -> dict:
        """A deep copy of the whole tree, defaults included (what is saved with an experiment)."""
        return copy.deepcopy(self._tree)


def unknown_keys_error(report: list[tuple[str, str | None]], files: list[str | None]) -> ConfigError:
    """The one error for keys nothing reads: each key with its nearest known key, the files that set them."""
    parts = [f"'{key}'" + (f" (did you mean '{near}'?)" if near else "") for key, near in report]
    return ConfigError("unknown key" + ("s " if len(parts) > 1 else " ") + ", ".join(parts)
                       + " - nothing in PyroSys reads " + ("them" if len(parts) > 1 else "it"),
                       file=", ".join(sorted({file or "?" for file in files})), key=report[0][0],
                       hint="Correct the spelling or remove the key; "
                            "`--print-config` shows every key PyroSys knows with its value")


class ParamInterface(Mapping):
    """A read view of one section of the registry that records which keys were read."""

    def __init__(self, registry: ParamRegistry, path: str) -> None:
        self._registry = registry
        self.path = path

    def _node(self) -> dict:
        return self._registry.node(self.path)

    def __getitem__(self, key: str) -> Any:
        node = self._node()
        if key not in node:
            raise ConfigError(f"the required key '{key}' is missing", key=_join(self.path, key),
                              file=self.source(key))
        value = node[key]
        path = _join(self.path, key)
        if isinstance(value, dict):
            self._registry.mark_known(path)
            if not value:
                self._registry.mark_read(path)
            return ParamInterface(self._registry, path)
        self._registry.mark_read(path)
        return copy.deepcopy(value)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._node()))

    def __len__(self) -> int:
        return len(self._node())

    def __contains__(self, key: object) -> bool:
        return key in self._node()

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default

    def source(self, key: str = "") -> str | None:
        """The file that set `key` of this section."""
        return self._registry.configuration.source(_join(self.path, key) if key else self.path)

    def add_default_params(self, defaults: Mapping) -> None:
        """Fill keys the configuration did not set with a component's defaults, and mark them known."""
        if self._registry.frozen:
            raise RuntimeError(f"cannot add defaults to '{self.path}': the parameter registry is frozen")
        fill_defaults(self._node(), defaults)
        for leaf in leaf_paths(defaults, self.path):
            self._registry.mark_known(leaf)

    def add_config_params(self, params: Mapping) -> None:
        """Set values the worker resolved itself (a drawn seed, say), over what the configuration said."""
        if self._registry.frozen:
            raise RuntimeError(f"cannot change '{self.path}': the parameter registry is frozen")
        node = self._node()
        for key, value in params.items():
            node[key] = copy.deepcopy(value)
            self._registry.mark_read(_join(self.path, key))

    def to_dict(self) -> dict:
        """The whole section as plain data, every key in it counted as read."""
        for path in [self.path] if self.path else list(self._node()):
            self._registry.mark_read(path)
        return copy.deepcopy(self._node())

    def __repr__(self) -> str:
        return f"ParamInterface({self.path!r}, {self._node()!r})"
