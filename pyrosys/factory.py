"""Factories: turn `{name: ...}` or `{_target_: ...}` into a class of the expected kind, then an object.

Each component package declares its kinds with a `Registry` (as mmengine's `MODELS = Registry('model')`
lives beside its models): the base class every choice must subclass, the package whose import fills
the registry, the library namespaces whose classes count as names. This module knows no kind by name:
a kind not declared yet is found through the `pyrosys.kinds` entry points that packages install.

`name:` looks up the registry (filled by `@register`); `_target_:` imports a dotted path. Either way
the class is checked against the kind's base class *before* it is called. Whether a name is known is
answered first without importing anything (`check_name`, before torch on the configuration path): from
the per-kind entry-point groups packages install (`pyrosys.model`: `Name = module:Class`) and the
namespace index, `namespace_index.json`, which lists the library namespaces' classes and their
constructor arguments for the library versions it was written from (`write_namespace_index`; a test
compares it with the live registries). A class path read from a
file the user did not write (a checkpoint, a model bundle) is checked on its text before anything is
imported (`check_class_path`): only the known classes of the kind, and modules the user trusts.
"""
from __future__ import annotations

import functools
import importlib
import inspect
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pyrosys.configuration.project import uninstalled_project_defining
from pyrosys.errors import ConfigError, did_you_mean, nearest

T = TypeVar("T", bound=type)

KINDS_GROUP = "pyrosys.kinds"            # installed packages declare their registries here
ENTRY_POINTS = "pyrosys.components"      # older projects name here the modules that register components
NAMESPACE_INDEX = Path(__file__).with_name("namespace_index.json")   # written by write_namespace_index
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
        """Every name `name:` accepts: library namespaces, built-in and installed components (imported)."""
        for package in self.packages:
            importlib.import_module(package)
        load_entry_points()
        found = {path.rpartition(".")[2]: cls for path, cls in self._library_classes().items()}
        declared = {point.name: point for point in installed_entry_points(component_group(self.kind))}
        return {**found, **{name: loaded(point) for name, point in declared.items() if name not in self._classes},
                **self._classes}

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


def component_group(kind: str) -> str:
    """The entry-point group in which installed packages name their components of a kind: `Name = module:Class`."""
    return f"pyrosys.{kind}"


@functools.cache
def _all_entry_points(path: tuple[str, ...]) -> Any:
    from importlib.metadata import entry_points

    return entry_points()


def installed_entry_points(group: str) -> tuple[Any, ...]:
    """The entry points of a group that installed packages declare (read once for a sys.path, without
    importing them)."""
    return tuple(_all_entry_points(tuple(sys.path)).select(group=group))


@functools.cache
def _namespace_index() -> dict:
    try:
        return json.loads(NAMESPACE_INDEX.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _indexed_library(kind: str) -> dict[str, dict] | None:
    """The kind's library classes as the namespace index lists them, or None where the index does not hold the
    kind or was written from other versions of the libraries than those installed."""
    from importlib.metadata import PackageNotFoundError, version

    entry = _namespace_index().get(kind)
    if entry is None:
        return None
    for distribution, written in entry["versions"].items():
        try:
            if version(distribution) != written:
                return None
        except PackageNotFoundError:
            return None
    return entry["classes"]


def indexed_names(kind: str) -> dict[str, str] | None:
    """Every name `name:` accepts for a kind, with where its class is, read from package metadata and the
    namespace index without importing any component; None where only importing can tell (the index does
    not hold the installed libraries, or a package registers its components through `pyrosys.components`)."""
    library, declared = _indexed_library(kind), installed_entry_points(component_group(kind))
    if library is None or installed_entry_points(ENTRY_POINTS) or not (library or declared):
        return None                              # (nothing declared: an install older than its setup.cfg)
    names = {name: entry["path"] for name, entry in library.items()}
    names.update({point.name: point.value for point in declared})
    if kind in KINDS:                            # components registered in this process (@register)
        names.update({name: class_path(cls) for name, cls in KINDS[kind]._classes.items()})
    return names


def unknown_name(name: Any, kind: str, names: Iterable[str], base: str, *, file: str | None, key: str) -> ConfigError:
    """The refusal of an unknown `name:`: a project around the configuration that defines it but is not
    installed is named with the command that installs it; otherwise the nearest names."""
    project = uninstalled_project_defining(str(name), file)
    if project is not None:
        return ConfigError(f"'{name}' is defined inside project {project.root} (package {project.name}), which is "
                           f"not installed in this environment: pip install -e {project.root}", file=file, key=key,
                           hint=f"PyroSys finds a project's components through the {component_group(kind)} "
                                f"entry points it installs")
    return ConfigError(f"there is no {kind} named {name!r}", file=file, key=key,
                       hint=did_you_mean(str(name), names) + f" Or name any {base} class with _target_: "
                                                             "package.module.Class")


def check_name(spec: Any, kind: str, *, source: Callable[[str], str | None], key: str) -> None:
    """Refuse an unknown `name:` of a kind from metadata alone, before any component (and torch) is imported,
    and arguments an indexed library class does not take; what the metadata cannot judge is left to `resolve`.
    `source` tells the file (or the command line) that set a key."""
    if not isinstance(spec, Mapping) or "_target_" in spec or not isinstance(spec.get("name"), str):
        return
    names = indexed_names(kind)
    if names is None:
        return
    name, entry = spec["name"], _namespace_index()[kind]
    if name not in names:
        raise unknown_name(name, kind, names, entry["base"], file=source(f"{key}.name"), key=f"{key}.name")
    indexed = entry["classes"].get(name)
    if indexed is not None and indexed["path"] == names[name]:
        _check_accepted(name, indexed["parameters"], {k: v for k, v in spec.items() if k != "name"},
                        source=source, key=key, given=())


def namespace_index_now() -> dict:
    """The namespace index as the installed libraries give it now, for every kind installed packages declare
    (imports them all: for writing the index and for the test that keeps it true)."""
    from importlib.metadata import entry_points, packages_distributions, version

    owners, index = packages_distributions(), {}
    for point in sorted(entry_points(group=KINDS_GROUP), key=lambda point: point.name):
        registry = kind_registry(point.name)
        distributions = sorted({owner for namespace in registry.namespaces
                                for owner in owners.get(namespace.partition(".")[0], ())})
        index[point.name] = {
            "base": registry.base.__name__, "versions": {name: version(name) for name in distributions},
            "classes": {path.rpartition(".")[2]: {"path": path, "parameters": accepted_arguments(cls)}
                        for path, cls in sorted(registry._library_classes().items())}}
    return index


def write_namespace_index() -> None:
    """Write the namespace index again (after an upgrade of torch or Lightning):
    python -c "from pyrosys.factory import write_namespace_index; write_namespace_index()"."""
    NAMESPACE_INDEX.write_text(json.dumps(namespace_index_now(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    _namespace_index.cache_clear()


def load_entry_points() -> None:
    """Import every module an installed package names in the `pyrosys.components` entry-point group, so
    that its @register decorators run and `name:` finds its components (once per process)."""
    from importlib.metadata import entry_points

    for point in entry_points(group=ENTRY_POINTS):
        if point.value in _loaded_entry_points:
            continue
        _loaded_entry_points.add(point.value)
        loaded(point)


def loaded(point: Any) -> Any:
    """What an installed package's entry point names, imported; a package that fails to import is a
    configuration problem to report (which package, what to do), not a traceback."""
    try:
        return point.load()
    except Exception as error:  # noqa: BLE001 - a broken plugin is a configuration problem to report
        raise ConfigError(f"the components of '{point.name}' cannot be loaded ({type(error).__name__}: {error})",
                          file=point.value, key=point.group,
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
            raise unknown_name(name, kind, choices, registry.base.__name__, file=file, key=where)
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


def accepted_arguments(cls: type) -> dict[str, bool] | None:
    """The keyword arguments a class's constructor takes, each with whether its default is a number (a string
    given there is a mistake); None when it takes any keyword (**kwargs) or has no readable signature."""
    try:
        parameters = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return None
    return {name: isinstance(p.default, (int, float)) and not isinstance(p.default, bool)
            for name, p in parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _check_accepted(label: str, accepted: dict[str, bool] | None, arguments: Mapping, *,
                    source: Callable[[str], str | None], key: str, given: tuple[str, ...]) -> None:
    """Refuse an argument the constructor does not take, or a string where its default is a number."""
    if accepted is None:
        return
    names = [name for name in accepted if name not in given]
    for name, value in arguments.items():
        where = f"{key}.{name}"
        if name not in names:
            raise ConfigError(f"{label} takes no argument '{name}'", file=source(where), key=where,
                              hint=did_you_mean(name, names))
        if accepted[name] and isinstance(value, str):
            raise ConfigError(f"{label} expects a number for '{name}', not the string {value!r}",
                              file=source(where), key=where, hint="Write numbers unquoted, e.g. 0.001 or 1.0e-3")


def check_arguments(cls: type, arguments: Mapping, *, file: str | None, key: str,
                    given: tuple[str, ...] = ()) -> None:
    """Refuse keyword arguments the class's constructor does not take, naming the nearest ones."""
    _check_accepted(cls.__name__, accepted_arguments(cls), arguments, source=lambda _: file, key=key, given=given)


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
