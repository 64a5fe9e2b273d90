"""Load experiment configurations: safe YAML, default_configs, several files, overrides, interpolation.

Precedence, lowest first: `default_configs` files (depth-first, in order), the file itself,
further files in the order given, then `key.sub=value` overrides. Component defaults come
later, through `ParamRegistry` / `ParamInterface.add_default_params`.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pyrosys.configuration.project import group_files
from pyrosys.errors import ConfigError

COMMAND_LINE = "the command line"
_KEY_PATTERN = re.compile(r"[A-Za-z_][\w\-]*(\.[A-Za-z_0-9][\w\-]*)*")


class _StrictSafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader that also refuses a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"found duplicate key '{key}'", key_node.start_mark)
            seen[key] = True
        return super().construct_mapping(node, deep=deep)


_StrictSafeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                                  _StrictSafeLoader.construct_mapping)
# YAML 1.1 reads `1e-3` (no dot) as a string; researchers mean a number.
_StrictSafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def load_yaml(path: str | Path) -> dict:
    """Safe-load one YAML mapping, turning every problem into a ConfigError with line and column."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("the file does not exist", file=str(path),
                          hint="Check the path; relative paths are taken from the current folder") from None
    except IsADirectoryError:
        raise ConfigError("this is a folder, not a YAML file", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"the file cannot be read ({error})", file=str(path)) from None
    try:
        data = yaml.load(text, Loader=_StrictSafeLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        problem = error.problem or "malformed YAML"
        hint = "Fix the YAML syntax there"
        if "python/" in problem or "constructor for the tag" in problem:
            hint = "Python tags (!!python/...) are refused: configurations hold plain data only"
        raise ConfigError(f"invalid YAML: {problem}", file=where, hint=hint) from None
    except yaml.YAMLError as error:
        raise ConfigError(f"invalid YAML: {error}", file=str(path)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"the top level is a {type(data).__name__}, not a mapping of sections",
                          file=str(path), hint="Write 'key: value' sections such as 'problem:' and 'model:'")
    bad = [k for k in _all_keys(data) if not isinstance(k, str)]
    if bad:
        raise ConfigError(f"key {bad[0]!r} is not a string", file=str(path),
                          hint="Quote keys that look like numbers or booleans")
    return data


def _all_keys(tree: Mapping) -> Iterable[Any]:
    for key, value in tree.items():
        yield key
        if isinstance(value, Mapping):
            yield from _all_keys(value)


def value_at(tree: Any, path: str, default: Any = None) -> Any:
    """The value at a dotted path of a nested mapping, or `default` where the path does not lead."""
    for key in filter(None, path.split(".")):
        if not isinstance(tree, Mapping) or key not in tree:
            return default
        tree = tree[key]
    return tree


def leaf_paths(tree: Mapping, prefix: str = "") -> Iterable[str]:
    """Dotted paths of every leaf of a nested mapping (lists and empty mappings count as leaves)."""
    for key, value in tree.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            yield from leaf_paths(value, path)
        else:
            yield path


@dataclass
class Configuration:
    """A merged, interpolated configuration tree and, per leaf, the file that set it."""

    tree: dict
    sources: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def source(self, key: str) -> str | None:
        """The file that set `key`, or the nearest enclosing key that a file set."""
        while key:
            if key in self.sources:
                return self.sources[key]
            for path, file in self.sources.items():
                if path.startswith(key + "."):
                    return file
            key = key.rpartition(".")[0]
        return self.files[-1] if self.files else None


def split_paths(paths: Iterable[str]) -> list[str]:
    """Accept `--c a.yaml b.yaml` and MI-Prometheus's `--c a.yaml,b.yaml` alike."""
    return [part.strip() for item in paths for part in str(item).split(",") if part.strip()]


def _default_list(value: Any, file: Path) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise ConfigError("default_configs must be a list of paths or a comma-separated string",
                      file=str(file), key="default_configs",
                      hint="Write for example 'default_configs: [../defaults/training.yaml]'")


def _to_omegaconf(data: dict, file: str) -> DictConfig:
    try:
        return OmegaConf.create(data)
    except OmegaConfBaseException as error:
        raise ConfigError(f"cannot be represented as a configuration: {_first_line(error)}",
                          file=file) from None


def _class_of(spec: Mapping) -> tuple:
    return spec.get("name"), spec.get("_target_")


def _drop_replaced_specs(base: DictConfig, top: Mapping) -> None:
    """A mapping that names another class than the one before it replaces it whole: parameters of the
    old class (an Adam's betas, a LeNet5's channels) must not leak into the new one."""
    for key, value in top.items():
        if not isinstance(value, Mapping) or key not in base or not isinstance(base[key], DictConfig):
            continue
        old = OmegaConf.to_container(base[key], resolve=False)
        if ("name" in value or "_target_" in value) and _class_of(old) != _class_of(value):
            del base[key]
        else:
            _drop_replaced_specs(base[key], value)


def _merge(base: DictConfig, top: DictConfig, file: str) -> DictConfig:
    try:
        base = base.copy()
        _drop_replaced_specs(base, OmegaConf.to_container(top, resolve=False))
        return OmegaConf.merge(base, top)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None) or None
        raise ConfigError(f"cannot be merged with the files before it: {_first_line(error)}",
                          file=file, key=key,
                          hint="A key holds a mapping in one file and a plain value in another") from None


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _load_tree(path: Path, chain: tuple[Path, ...],
               choices: Mapping[str, str] | None = None) -> tuple[DictConfig, dict[str, str]]:
    """One file with its default_configs and its project groups' chosen files merged under it,
    depth-first, cycles refused."""
    path = path.resolve()
    if path in chain:
        cycle = " -> ".join(str(p) for p in (*chain[chain.index(path):], path))
        raise ConfigError(f"default_configs form a cycle: {cycle}", file=str(chain[-1]),
                          key="default_configs", hint="Remove one of the includes that closes the loop")
    data = load_yaml(path)
    merged = OmegaConf.create({})
    sources: dict[str, str] = {}
    includes = [path.parent / name for name in _default_list(data.pop("default_configs", None), path)]
    if "groups" in data:                     # a project's top-level config: its group choices come first
        includes += group_files(path, data.pop("groups"), choices or {})
    elif choices:
        raise ConfigError(f"group choices ({', '.join(f'{k}={v}' for k, v in choices.items())}) were given, but "
                          "this configuration names no groups", file=str(path), key="groups",
                          hint="Give a project's train.yaml, which lists its groups under 'groups:'")
    for included in includes:
        name = included.name
        if not included.is_file():
            raise ConfigError(f"the default_configs file '{name}' does not exist (looked for {included})",
                              file=str(path), key="default_configs",
                              hint="Paths in default_configs are relative to the file that includes them")
        tree, tree_sources = _load_tree(included, (*chain, path))
        merged = _merge(merged, tree, str(included))
        sources.update(tree_sources)
    merged = _merge(merged, _to_omegaconf(data, str(path)), str(path))
    sources.update({leaf: str(path) for leaf in leaf_paths(data)})
    return merged, sources


def parse_override(item: str) -> tuple[str, Any]:
    """Split `key.sub=value` and read the value as YAML (so 1e-3, true and [1, 2] get their types)."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not _KEY_PATTERN.fullmatch(key):
        raise ConfigError(f"the override '{item}' is not of the form key.sub=value", file=COMMAND_LINE,
                          key=key or None, hint="Write for example --set training.optimizer.lr=0.01")
    try:
        value = yaml.load(raw, Loader=_StrictSafeLoader) if raw.strip() else None  # noqa: S506
    except yaml.YAMLError as error:
        raise ConfigError(f"the value '{raw}' is not valid YAML ({_first_line(error)})",
                          file=COMMAND_LINE, key=key) from None
    return key, value


def load_configuration(paths: Sequence[str | Path], overrides: Sequence[str] = (),
                       choices: Mapping[str, str] | None = None,
                       base: Configuration | None = None) -> Configuration:
    """Merge `base` (a checkpoint's configuration, say), the files (later wins) and the overrides,
    then resolve `${...}` interpolation; `choices` pick a project's group files (model=vae). A mapping
    that names another class than the one below it replaces it whole, wherever it comes from."""
    files = split_paths(str(p) for p in paths)
    if not files and base is None:
        raise ConfigError("no configuration file was given", file=COMMAND_LINE,
                          hint="Name one with --c FILE")
    merged = OmegaConf.create(base.tree if base is not None else {})
    sources: dict[str, str] = dict(base.sources) if base is not None else {}
    for index, file in enumerate(files):
        tree, tree_sources = _load_tree(Path(file), (), choices if index == 0 else None)
        merged = _merge(merged, tree, file)
        sources.update(tree_sources)
    for item in overrides:
        _apply_override(merged, sources, item)
    tree = resolve_interpolations(merged, sources)
    named = base.files if base is not None else []
    return Configuration(tree=tree, sources=sources, files=[*named, *(str(Path(f).resolve()) for f in files)])


def _apply_override(merged: DictConfig, sources: dict[str, str], item: str) -> None:
    """One `key.sub=value` over the merged tree; the key's sources become the command line."""
    key, value = parse_override(item)
    try:
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(merged, parent) if parent else merged
        if isinstance(node, DictConfig) and isinstance(value, dict):
            _drop_replaced_specs(node, {leaf: value})
        OmegaConf.update(merged, key, value, merge=True, force_add=True)
    except OmegaConfBaseException as error:
        raise ConfigError(f"the override cannot be applied: {_first_line(error)}",
                          file=COMMAND_LINE, key=key) from None
    for stale in [k for k in sources if k == key or k.startswith(key + ".")]:
        del sources[stale]
    sources.update({f"{key}.{leaf}": COMMAND_LINE for leaf in leaf_paths(value)}
                   if isinstance(value, dict) and value else {key: COMMAND_LINE})


def resolve_interpolations(config: DictConfig, sources: Mapping[str, str]) -> dict:
    """Plain nested dicts with every `${a.b}` replaced, or a ConfigError naming the broken key."""
    try:
        return OmegaConf.to_container(config, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", "") or ""
        file = Configuration({}, dict(sources)).source(key) if key else None
        raise ConfigError(f"the value cannot be resolved: {_first_line(error)}", file=file,
                          key=key or None,
                          hint="An interpolation ${a.b} must name a key that exists in the merged configuration; "
                               "'???' marks a value you must give") from None


def dump_yaml(tree: Mapping) -> str:
    """The canonical YAML text of a configuration tree (plain data, block style, keys in order)."""
    return yaml.safe_dump(dict(tree), sort_keys=False, default_flow_style=False, allow_unicode=True)
