"""Factories: turn `{name: ...}` or `{_target_: ...}` into a class of the expected kind, then an object.

`name:` looks up a registry filled by `@register`; `_target_:` imports a dotted path. Either way
the class is checked against the base class expected at that place *before* it is called.
"""
from __future__ import annotations

import importlib
import inspect
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pyrosys.errors import ConfigError, did_you_mean

T = TypeVar("T", bound=type)


@dataclass(frozen=True)
class Kind:
    """A place in a configuration where a class is named, and what that class must be."""

    name: str
    base: str                       # "module:Class" of the base class every choice must subclass
    packages: tuple[str, ...] = ()  # imported to fill the registry with built-in components
    namespaces: tuple[str, ...] = ()  # modules whose public subclasses of `base` count as names


KINDS: dict[str, Kind] = {
    "model": Kind("model", "pyrosys.models.model:Model", packages=("pyrosys.models",)),
    "problem": Kind("problem", "pyrosys.problems.problem:Problem", packages=("pyrosys.problems",)),
    "loader": Kind("loader", "pyrosys.problems.manifest:Loader", packages=("pyrosys.problems",)),
    "optimizer": Kind("optimizer", "torch.optim:Optimizer", namespaces=("torch.optim",)),
    "scheduler": Kind("scheduler", "torch.optim.lr_scheduler:LRScheduler",
                      namespaces=("torch.optim.lr_scheduler",)),
    "callback": Kind("callback", "pytorch_lightning.callbacks:Callback",
                     namespaces=("pytorch_lightning.callbacks",)),
}

_REGISTRY: dict[str, dict[str, type]] = defaultdict(dict)
ENTRY_POINTS = "pyrosys.components"      # installed packages name here the modules that register components
_loaded_entry_points: set[str] = set()


def load_entry_points() -> None:
    """Import every module an installed package names in the `pyrosys.components` entry-point group, so
    that its @register decorators run and `name:` finds its components (once per process)."""
    from importlib.metadata import entry_points

    for point in entry_points(group=ENTRY_POINTS):
        if point.value in _loaded_entry_points:
            continue
        _loaded_entry_points.add(point.value)
        try:
            point.load()
        except Exception as error:  # noqa: BLE001 - a broken plugin is a configuration problem to report
            raise ConfigError(f"the components of '{point.name}' cannot be loaded ({type(error).__name__}: {error})",
                              file=point.value, key=ENTRY_POINTS,
                              hint="Fix or uninstall the package that declares this entry point") from None


def register(kind: str, name: str | None = None) -> Callable[[T], T]:
    """Class decorator: make a component findable as `name:` (its class name by default)."""
    if kind not in KINDS:
        raise ValueError(f"unknown component kind {kind!r}; known: {sorted(KINDS)}")

    def decorate(cls: T) -> T:
        key = name or cls.__name__
        existing = _REGISTRY[kind].get(key)
        if existing is not None and existing is not cls and existing.__qualname__ != cls.__qualname__:
            raise ValueError(f"{kind} name {key!r} is taken by {existing.__module__}.{existing.__qualname__}")
        _REGISTRY[kind][key] = cls
        return cls

    return decorate


def base_class(kind: str) -> type:
    """The class every choice of this kind must subclass."""
    module, _, attr = KINDS[kind].base.partition(":")
    return getattr(importlib.import_module(module), attr)


def registered(kind: str) -> dict[str, type]:
    """Every name `name:` accepts for this kind: registered components and library namespaces."""
    spec = KINDS[kind]
    for package in spec.packages:
        importlib.import_module(package)
    load_entry_points()
    names: dict[str, type] = {}
    base = base_class(kind)
    for namespace in spec.namespaces:
        module = importlib.import_module(namespace)
        for attr, value in vars(module).items():
            if not attr.startswith("_") and isinstance(value, type) and issubclass(value, base) \
                    and value is not base:
                names[attr] = value
    names.update(_REGISTRY[kind])
    return names


def _import_target(target: Any, kind: str, file: str | None, key: str) -> Any:
    if not isinstance(target, str) or "." not in target:
        raise ConfigError(f"_target_ must be a dotted path such as 'my_lab.models.Net', not {target!r}",
                          file=file, key=key)
    module_name, _, attr = target.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"the module '{module_name}' of _target_ '{target}' cannot be imported ({error})",
                          file=file, key=key,
                          hint="Install the package that provides it, or correct the path") from None
    if not hasattr(module, attr):
        public = [n for n in vars(module) if not n.startswith("_")]
        raise ConfigError(f"'{module_name}' has no attribute '{attr}'", file=file, key=key,
                          hint=did_you_mean(attr, public))
    return getattr(module, attr)


def resolve(spec: Mapping, kind: str, *, file: str | None = None, key: str = "") -> type:
    """The class a `{name:}` or `{_target_:}` spec names, checked to be a subclass of the kind's base."""
    if not isinstance(spec, Mapping):
        raise ConfigError(f"a {kind} must be given as a mapping with 'name' or '_target_', not {spec!r}",
                          file=file, key=key, hint=f"Write for example '{key or kind}: {{name: ...}}'")
    if "name" in spec and "_target_" in spec:
        raise ConfigError(f"a {kind} takes either 'name' or '_target_', not both", file=file, key=key)
    base = base_class(kind)
    if "_target_" in spec:
        where = f"{key}._target_" if key else "_target_"
        found = _import_target(spec["_target_"], kind, file, where)
        label = spec["_target_"]
    elif "name" in spec:
        where = f"{key}.name" if key else "name"
        name = spec["name"]
        choices = registered(kind)
        if not isinstance(name, str) or name not in choices:
            raise ConfigError(f"there is no {kind} named {name!r}", file=file, key=where,
                              hint=did_you_mean(str(name), choices)
                              + f" Or name any {base.__name__} class with _target_: package.module.Class")
        found, label = choices[name], name
    else:
        raise ConfigError(f"the {kind} names no class", file=file, key=key,
                          hint="Add 'name: <registered name>' or '_target_: package.module.Class'")
    if not (isinstance(found, type) and issubclass(found, base)):
        what = "a class" if isinstance(found, type) else f"a {type(found).__name__}, not a class"
        raise ConfigError(f"'{label}' is {what} that is not a {kind} ({base.__module__}.{base.__qualname__})",
                          file=file, key=where,
                          hint=f"Only subclasses of {base.__qualname__} are accepted here")
    return found


def check_arguments(cls: type, arguments: Mapping, *, file: str | None, key: str,
                    given: tuple[str, ...] = ()) -> None:
    """Refuse keyword arguments the class's constructor does not take, naming the nearest ones."""
    try:
        parameters = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    accepted = [n for n, p in parameters.items()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n not in given]
    for name, value in arguments.items():
        if name not in accepted:
            raise ConfigError(f"{cls.__name__} takes no argument '{name}'", file=file, key=f"{key}.{name}",
                              hint=did_you_mean(name, accepted))
        default = parameters[name].default
        if isinstance(default, (int, float)) and not isinstance(default, bool) and isinstance(value, str):
            raise ConfigError(f"{cls.__name__} expects a number for '{name}', not the string {value!r}",
                              file=file, key=f"{key}.{name}", hint="Write numbers unquoted, e.g. 0.001 or 1.0e-3")


def instantiate(spec: Mapping, kind: str, *args: Any, file: str | None = None, key: str = "",
                given: tuple[str, ...] = ()) -> Any:
    """Resolve, check and call: the object a spec describes, built with its remaining keys as arguments.

    `args` are passed positionally first (an optimizer's parameters, say); `given` names them.
    """
    cls = resolve(spec, kind, file=file, key=key)
    arguments = {k: v for k, v in spec.items() if k not in ("name", "_target_")}
    check_arguments(cls, arguments, file=file, key=key, given=given)
    try:
        return cls(*args, **arguments)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{cls.__name__} refused its arguments: {error}", file=file, key=key) from None
