"""Load experiment configurations: safe, bounded YAML, default_configs, several files, overrides, interpolation.

Precedence, lowest first: `default_configs` files (depth-first, in order), the file itself,
further files in the order given, then `key.sub=value` overrides. Component defaults come
later, through `ParamRegistry` / `ParamInterface.add_default_params`.
"""
from __future__ import annotations

import os
import re
import stat
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

# Bounds on every YAML text PyroSys reads, far beyond any real configuration: past them a file is a mistake
# (a data file, a device) or an attack (an alias bomb), refused before it exhausts memory, stack or time.
YAML_MAX_BYTES = 10 * 2**20        # 10 MB
YAML_MAX_DEPTH = 32                # lists and mappings nested in one another (OmegaConf's recursion fails near 75)
YAML_MAX_ALIAS_VALUES = 5_000      # values that aliases (*name) add: an alias bomb that passes stays small
YAML_MAX_CONFIGURATION_VALUES = 10_000   # values of a configuration file or a --set value, aliases expanded: a
                                         # configuration goes through OmegaConf, at a few seconds per 10,000 values
_NOT_DATA = "Data belong in their own files (CSV, FASTA, NPY), named in the configuration"


class _TooLarge(yaml.YAMLError):
    """A YAML text past one of the bounds above, with where it was found and what to do."""

    def __init__(self, problem: str, mark: yaml.Mark | None, hint: str) -> None:
        super().__init__(problem)
        self.problem, self.mark, self.hint = problem, mark, hint


class _StrictSafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader that also refuses a key given twice in one mapping, and a document nested too
    deep or too large (aliases expanded), before anything is constructed from it."""

    def __init__(self, stream: str, max_nodes: int | None = None, depth: int = 0) -> None:
        super().__init__(stream)
        self.max_nodes, self.depth, self.composed = max_nodes, depth, 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        """Compose one node, counting the nodes and the nesting (PyYAML recurses once a level)."""
        nests = self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent)
        self.depth += nests
        self.composed += 1
        try:
            if self.depth > YAML_MAX_DEPTH:
                raise _TooLarge(*_too_deep(self.peek_event().start_mark))
            if self.max_nodes is not None and self.composed > self.max_nodes:
                raise _TooLarge(*_too_many(self.max_nodes, self.peek_event().start_mark))
            return super().compose_node(parent, index)
        finally:
            self.depth -= nests

    def compose_document(self) -> yaml.Node:
        """The document's node graph, once its expansion through aliases is known to be bounded."""
        node = super().compose_document()
        sizes: dict[int, tuple[int, int]] = {}
        expanded, _ = _expansion(node, self.depth + 1, sizes, set())
        if expanded - len(sizes) > YAML_MAX_ALIAS_VALUES:
            raise _TooLarge(f"its aliases (*name) expand it by more than {YAML_MAX_ALIAS_VALUES:,} values "
                            "(an alias bomb)", None, "Write the repeated values out, or repeat fewer of them")
        if self.max_nodes is not None and expanded > self.max_nodes:
            raise _TooLarge(*_too_many(self.max_nodes, None))
        return node

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


def _too_deep(mark: yaml.Mark | None) -> tuple[str, yaml.Mark | None, str]:
    return (f"lists and mappings nest more than {YAML_MAX_DEPTH} levels deep", mark,
            "No configuration nests this deep: flatten the structure")


def _too_many(limit: int, mark: yaml.Mark | None) -> tuple[str, yaml.Mark | None, str]:
    return (f"it holds more than {limit:,} values (aliases expanded), more than any configuration", mark, _NOT_DATA)


def _expansion(node: yaml.Node, depth: int, sizes: dict[int, tuple[int, int]],
               open_nodes: set[int]) -> tuple[int, int]:
    """(values, levels) of a node with its aliases expanded; `sizes` remembers each node seen, so that an
    alias bomb is measured without being expanded."""
    if isinstance(node, yaml.ScalarNode):
        sizes[id(node)] = (1, 0)
        return 1, 0
    if depth > YAML_MAX_DEPTH:
        raise _TooLarge(*_too_deep(node.start_mark))
    if id(node) in sizes:
        values, levels = sizes[id(node)]
        if depth + levels - 1 > YAML_MAX_DEPTH:
            raise _TooLarge(*_too_deep(node.start_mark))
        return values, levels
    if id(node) in open_nodes:
        raise _TooLarge("an alias (*name) refers to the list or mapping that holds it", node.start_mark,
                        "A configuration is a tree: write the value out instead of the alias")
    open_nodes.add(id(node))
    children = [child for pair in node.value for child in pair] if isinstance(node, yaml.MappingNode) else node.value
    values, levels = 1, 1
    for child in children:
        child_values, child_levels = _expansion(child, depth + 1, sizes, open_nodes)
        values, levels = values + child_values, max(levels, child_levels + 1)
    open_nodes.discard(id(node))
    sizes[id(node)] = (values, levels)
    return values, levels


_StrictSafeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                                  _StrictSafeLoader.construct_mapping)
# YAML 1.1 reads `1e-3` (no dot) as a string; researchers mean a number.
_StrictSafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def _parse(text: str, max_nodes: int | None = None, depth: int = 0) -> Any:
    """The data of one YAML text, through the strict loader and its bounds."""
    loader = _StrictSafeLoader(text, max_nodes, depth)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _read_text(path: Path, max_bytes: int | None) -> str:
    """The text of a regular file of at most `max_bytes`; a device or a pipe is refused without being read
    (opened without blocking, so that a FIFO with no writer does not hang)."""
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        info = os.fstat(descriptor)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(str(path))
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError("this is not a regular file (a device, a pipe or a socket): it is not read",
                              file=str(path), hint="Name a YAML file")
        with open(descriptor, "rb", closefd=False) as stream:
            data = stream.read() if max_bytes is None else stream.read(max_bytes + 1)
    finally:
        os.close(descriptor)
    if max_bytes is not None and len(data) > max_bytes:
        raise ConfigError(f"the file is larger than {max_bytes // 2**20} MB ({max_bytes:,} bytes), more than any "
                          "configuration: it is not read", file=str(path), hint="Is this the right file? " + _NOT_DATA)
    return data.decode("utf-8")


def load_yaml(path: str | Path, max_bytes: int | None = YAML_MAX_BYTES, max_nodes: int | None = None) -> dict:
    """Safe-load one YAML mapping, turning every problem into a ConfigError with line and column. `max_bytes` is
    None only for a file PyroSys wrote whose size grows with the work it records (a grid plan); `max_nodes`
    bounds the values of a file that is merged through OmegaConf."""
    path = Path(path)
    try:
        text = _read_text(path, max_bytes)
    except FileNotFoundError:
        raise ConfigError("the file does not exist", file=str(path),
                          hint="Check the path; relative paths are taken from the current folder") from None
    except IsADirectoryError:
        raise ConfigError("this is a folder, not a YAML file", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"the file cannot be read ({error})", file=str(path)) from None
    try:
        data = _parse(text, max_nodes)
    except _TooLarge as error:
        raise ConfigError(error.problem, file=_where(path, error.mark), hint=error.hint) from None
    except yaml.MarkedYAMLError as error:
        problem = error.problem or "malformed YAML"
        hint = "Fix the YAML syntax there"
        if "python/" in problem or "constructor for the tag" in problem:
            hint = "Python tags (!!python/...) are refused: configurations hold plain data only"
        raise ConfigError(f"invalid YAML: {problem}", file=_where(path, error.problem_mark or error.context_mark),
                          hint=hint) from None
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


def _where(path: Path, mark: yaml.Mark | None) -> str:
    return f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)


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
    aliases: list[str] = field(default_factory=list)     # other frameworks' names and keys translated, one a line

    def source(self, key: str) -> str | None:
        """The place that set `key` (a file, the command line, a project group's file); for a section, the place
        that set its first key; for a key inside a value set whole (a list), that value's. None for a key that no
        place set inside a section that one did (a component's default); the last file where nothing on the key's
        path was set (what is missing there)."""
        if key in self.sources:
            return self.sources[key]
        inside = next((file for path, file in self.sources.items() if path.startswith(key + ".")), None)
        if inside is not None:
            return inside
        while "." in key:
            key = key.rpartition(".")[0]
            if key in self.sources:
                return self.sources[key]
            if any(path.startswith(key + ".") for path in self.sources):
                return None
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


def include_candidates(name: str, including: Path) -> list[Path]:
    """Where a `default_configs` path may lie, in the order tried: beside the including file (PyroSys's
    convention), the current folder (MI-Prometheus's: paths from the repository root the user runs in),
    then each folder above the including file (the same root, when the command runs elsewhere)."""
    if Path(name).is_absolute():
        return [Path(name)]
    folders = [including.parent, Path.cwd(), *including.parent.parents]
    return list(dict.fromkeys((folder / name).resolve() for folder in folders))


def find_include(name: str, including: Path) -> Path:
    """The first regular file among the places a `default_configs` path may lie, or a ConfigError listing them."""
    candidates = include_candidates(name, including)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = "; ".join(f"{candidate} ({'not a regular file' if candidate.exists() else 'absent'})"
                      for candidate in candidates)
    raise ConfigError(f"the default_configs file '{name}' was not found; looked for {tried}",
                      file=str(including), key="default_configs",
                      hint="A default_configs path is relative to the including file's folder, to the current "
                           "folder (as in MI-Prometheus, run from its repository root) or to a folder above "
                           "the including file")


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
    old class (an Adam's betas, a LeNet5's channels) must not leak into the new one. Parameters given before
    any class was named (MI-Prometheus's defaults files, then `name:` in the experiment's file) are kept."""
    for key, value in top.items():
        if not isinstance(value, Mapping) or key not in base or not isinstance(base[key], DictConfig):
            continue
        old = OmegaConf.to_container(base[key], resolve=False)
        named_before = _class_of(old) != (None, None)
        if ("name" in value or "_target_" in value) and named_before and _class_of(old) != _class_of(value):
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
    data = load_yaml(path, max_nodes=YAML_MAX_CONFIGURATION_VALUES)
    merged = OmegaConf.create({})
    sources: dict[str, str] = {}
    includes = [find_include(name, path) for name in _default_list(data.pop("default_configs", None), path)]
    if "groups" in data:                     # a project's top-level config: its group choices come first
        includes += group_files(path, data.pop("groups"), choices or {})
    elif choices:
        raise ConfigError(f"group choices ({', '.join(f'{k}={v}' for k, v in choices.items())}) were given, but "
                          "this configuration names no groups", file=str(path), key="groups",
                          hint="Give a project's train.yaml, which lists its groups under 'groups:'")
    for included in includes:
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
    if key.count(".") >= YAML_MAX_DEPTH:
        problem, _, hint = _too_deep(None)
        raise ConfigError(problem, file=COMMAND_LINE, key=key, hint=hint)
    try:
        value = _parse(raw, YAML_MAX_CONFIGURATION_VALUES, key.count(".") + 1) if raw.strip() else None
    except _TooLarge as error:
        raise ConfigError(error.problem, file=COMMAND_LINE, key=key, hint=error.hint) from None
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


def _replace_class(node: DictConfig, sources: dict[str, str], parent: str, leaf: str, value: Any) -> None:
    """`--set a.b.name=SGD` over a mapping naming another class replaces the class: the old class's keys go
    (an Adam's betas), those the command line set stay (an lr given beside the new name)."""
    old = OmegaConf.to_container(node, resolve=False)
    if leaf not in ("name", "_target_") or not isinstance(old, dict) or _class_of(old) == _class_of({leaf: value}) \
            or ("name" not in old and "_target_" not in old):
        return
    for key in list(old):
        paths = [path for path in sources if path == f"{parent}.{key}" or path.startswith(f"{parent}.{key}.")]
        if not paths or any(sources[path] != COMMAND_LINE for path in paths):
            del node[key]
            for path in paths:
                del sources[path]


def _apply_override(merged: DictConfig, sources: dict[str, str], item: str) -> None:
    """One `key.sub=value` over the merged tree; the key's sources become the command line."""
    key, value = parse_override(item)
    try:
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(merged, parent) if parent else merged
        if isinstance(node, DictConfig) and isinstance(value, dict):
            _drop_replaced_specs(node, {leaf: value})
        if isinstance(node, DictConfig) and parent:
            _replace_class(node, sources, parent, leaf, value)
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


class _PlainDumper(yaml.SafeDumper):
    """PyYAML's safe dumper that writes a value shared in two places out twice: PyroSys's own YAML holds no
    aliases, whose expansion load_yaml bounds."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_yaml(tree: Mapping) -> str:
    """The canonical YAML text of a configuration tree (plain data, block style, keys in order)."""
    return yaml.dump(dict(tree), Dumper=_PlainDumper, sort_keys=False, default_flow_style=False, allow_unicode=True)
