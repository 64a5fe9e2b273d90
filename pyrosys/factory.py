"""Factories: turn `{name: ...}` or `{_target_: ...}` into a class of the expected kind, then an object.

Each component package declares its kinds with a `Registry` (as mmengine's `MODELS = Registry('model')`
lives beside its models): the base class every choice must subclass, the package whose import fills
the registry, the library namespaces whose classes count as names. This module knows no kind by name:
a kind not declared yet is found through the `pyrosys.kinds` entry points that packages install.

`name:` looks up the registry (filled by `@register`); `_target_:` imports a dotted path. Either way
the class is checked against the kind's base class *before* it is called. A class path read from a
file the user did not write (a checkpoint, a model bundle) is checked on its text before anything is
imported (`check_class_path`): only the known classes of the kind, and modules the user trusts.
"""
from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pyrosys.errors import ConfigError, did_you_mean, nearest

T = TypeVar("T", bound=type)

KINDS_GROUP = "pyrosys.kinds"            # installed packages declare their registries here
ENTRY_POINTS = "pyrosys.components"      # installed packages name here the modules that register components
TRUSTED_MODULES = "PYROSYS_TRUSTED_MODULES"   # module prefixes whose classes a checkpoint or bundle may name
KINDS: dict[str, Registry] = {}
_loaded_entry_points: set[str] = set()


def class_path(cls: type) -> str:
    """The dotted import path of a class (what bundles and checkpoints record)."""
    return f"{cls.__module__}.{cls.__qualname__}"


def _attribute(path: str) -> Any:
    """The object a "module:attribute" path names."""
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


class Registry:
    """The names of one kind of component, and the base class every choice of the kind must subclass.

    `base` is the base class or its "module:Class" path (imported when first needed, so that declaring
    a kind stays cheap); importing `packages` registers the built-in components; the public subclasses
    of `base` in `namespaces` (library modules such as torch.optim) count as names too.
    """

    def __init__(self, kind: str, base: type | str, packages: tuple[str, ...] = (),
                 namespaces: tuple[str, ...] = ()) -> None:
        self.kind, self._base, self.packages, self.namespaces = kind, base, packages, namespaces
        self._classes: dict[str, type] = {}
        KINDS[kind] = self

    @property
    def base(self) -> type:
        """The class every choice of this kind must subclass."""
        if isinstance(self._base, str):
            self._base = _attribute(self._base)
        return self._base

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Class decorator: make a component findable as `name:` (its class name by default)."""
        def decorate(cls: T) -> T:
            key = name or cls.__name__
            existing = self._classes.get(key)
            if existing is not None and existing is not cls and existing.__qualname__ != cls.__qualname__:
                raise ValueError(f"{self.kind} name {key!r} is taken by {existing.__module__}.{existing.__qualname__}")
            self._classes[key] = cls
            for alias in getattr(getattr(cls, "aliases", None), "names", ()):   # MI-Prometheus's names (LSTM)
                self._classes.setdefault(alias, cls)
            return cls

        return decorate

    def names(self) -> dict[str, type]:
        """Every name `name:` accepts: library namespaces, built-in and installed components."""
        for package in self.packages:
            importlib.import_module(package)
        load_entry_points()
        found = {path.rpartition(".")[2]: cls for path, cls in self._library_classes().items()}
        return {**found, **self._classes}

    def _library_classes(self) -> dict[str, type]:
        """The public subclasses of `base` in the library namespaces, by their path there (torch.optim.Adam)."""
        found: dict[str, type] = {}
        for namespace in self.namespaces:
            for attr, value in vars(importlib.import_module(namespace)).items():
                if not attr.startswith("_") and isinstance(value, type) and issubclass(value, self.base) \
                        and value is not self.base:
                    found[f"{namespace}.{attr}"] = value
        return found

    def class_paths(self) -> dict[str, type]:
        """Every dotted path naming a known class of this kind: where each class is defined, and where
        its library namespace offers it. Importing them runs only PyroSys's and installed packages' code."""
        return {**{class_path(cls): cls for cls in self.names().values()}, **self._library_classes()}

    def __repr__(self) -> str:
        return f"Registry({self.kind!r})"


def kind_registry(kind: str | Registry) -> Registry:
    """The registry of a kind: a declared one, or one an installed package declares as an entry point."""
    if isinstance(kind, Registry):
        return kind
    if kind in KINDS:
        return KINDS[kind]
    from importlib.metadata import entry_points

    for point in entry_points(group=KINDS_GROUP, name=kind):
        point.load()                          # declaring the registry puts it into KINDS
    if kind not in KINDS:
        known = sorted({*KINDS, *(point.name for point in entry_points(group=KINDS_GROUP))})
        raise ValueError(f"unknown component kind {kind!r}; known: {known}")
    return KINDS[kind]


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


def register(kind: str | Registry, name: str | None = None) -> Callable[[T], T]:
    """Class decorator: make a component findable as `name:` among its kind (its class name by default)."""
    return kind_registry(kind).register(name)


def base_class(kind: str | Registry) -> type:
    """The class every choice of this kind must subclass."""
    return kind_registry(kind).base


def registered(kind: str | Registry) -> dict[str, type]:
    """Every name `name:` accepts for this kind: registered components and library namespaces."""
    return kind_registry(kind).names()


def trusted_modules() -> tuple[str, ...]:
    """The module prefixes the user trusts beyond the known classes: $PYROSYS_TRUSTED_MODULES, comma-separated."""
    return tuple(part.strip().rstrip(".") for part in os.environ.get(TRUSTED_MODULES, "").split(",") if part.strip())


def check_class_path(path: Any, kind: str | Registry, *, file: str | None, key: str) -> None:
    """Refuse a class path read from a checkpoint or a bundle unless it names a known class of the kind
    (`Registry.class_paths`) or lies under a module the user trusts: checked on the text alone, before any
    import, so that an untrusted file runs no import-time code."""
    registry = kind_registry(kind)
    if not isinstance(path, str) or "." not in path:
        raise ConfigError(f"a {registry.kind} class must be a dotted path such as 'my_lab.models.Net', not {path!r}",
                          file=file, key=key, hint="The file is damaged or was not written by PyroSys")
    known = registry.class_paths()
    module = path.rpartition(".")[0]
    if path in known or any(module == prefix or module.startswith(prefix + ".") for prefix in trusted_modules()):
        return
    close = did_you_mean(path, known) if nearest(path, known) else ""
    raise ConfigError(f"'{path}' is not a {registry.kind} class PyroSys knows (a registered {registry.kind}) nor under "
                      f"a trusted module, and was refused without importing it", file=file, key=key,
                      hint=f"{close} Install the package that provides it (its {ENTRY_POINTS} entry point registers "
                           f"it), or, if you trust this file and its code, set the environment variable "
                           f"{TRUSTED_MODULES}={path.split('.')[0]} (comma-separated module prefixes)")


def _import_target(target: Any, file: str | None, key: str) -> Any:
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


def _named(spec: Mapping, registry: Registry, file: str | None, key: str) -> tuple[Any, str, str]:
    """(the object the spec names, its label, the key that named it) before any check of its kind."""
    kind = registry.kind
    if "name" in spec and "_target_" in spec:
        raise ConfigError(f"a {kind} takes either 'name' or '_target_', not both", file=file, key=key)
    if "_target_" in spec:
        where = f"{key}._target_" if key else "_target_"
        return _import_target(spec["_target_"], file, where), spec["_target_"], where
    if "name" in spec:
        where = f"{key}.name" if key else "name"
        name, choices = spec["name"], registry.names()
        if not isinstance(name, str) or name not in choices:
            raise ConfigError(f"there is no {kind} named {name!r}", file=file, key=where,
                              hint=did_you_mean(str(name), choices)
                              + f" Or name any {registry.base.__name__} class with _target_: package.module.Class")
        return choices[name], name, where
    raise ConfigError(f"the {kind} names no class", file=file, key=key,
                      hint="Add 'name: <registered name>' or '_target_: package.module.Class'")


def resolve(spec: Mapping, kind: str | Registry, *, file: str | None = None, key: str = "") -> type:
    """The class a `{name:}` or `{_target_:}` spec names, checked to be a subclass of the kind's base."""
    registry = kind_registry(kind)
    if not isinstance(spec, Mapping):
        raise ConfigError(f"a {registry.kind} must be given as a mapping with 'name' or '_target_', not {spec!r}",
                          file=file, key=key, hint=f"Write for example '{key or registry.kind}: {{name: ...}}'")
    found, label, where = _named(spec, registry, file, key)
    base = registry.base
    if not (isinstance(found, type) and issubclass(found, base)):
        what = "a class" if isinstance(found, type) else f"a {type(found).__name__}, not a class"
        raise ConfigError(f"'{label}' is {what} that is not a {registry.kind} ({base.__module__}.{base.__qualname__})",
                          file=file, key=where, hint=f"Only subclasses of {base.__qualname__} are accepted here")
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


def instantiate(spec: Mapping, kind: str | Registry, *args: Any, file: str | None = None, key: str = "",
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
