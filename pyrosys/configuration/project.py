"""PyroSys projects: a lab's own package, found by its marker file, whose config/ folder holds groups of
configuration blocks (data/, model/, trainer/, trainer/callbacks/, mlflow/) chosen by name.

A top-level config names its default choices under `groups:`; `model=vae` on the command line picks
`config/model/vae.yaml` instead. A group file is an ordinary configuration fragment (it holds its
own `model:` section, say); chosen files merge before the top-level file, like default_configs.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pyrosys.errors import ConfigError

MARKER = ".pyrosys-project"


@dataclass
class Project:
    """A project folder: its root (where the marker is), package name and config folder."""

    root: Path
    package: str

    @property
    def config_dir(self) -> Path:
        return self.root / self.package / "config"

    def groups(self) -> dict[str, list[str]]:
        """Every group (a folder under config/, nested ones as trainer/callbacks) and its choices."""
        found = {}
        if self.config_dir.is_dir():
            for folder in sorted(p for p in self.config_dir.rglob("*") if p.is_dir()):
                choices = sorted(p.stem for p in folder.glob("*.yaml"))
                if choices:
                    found[folder.relative_to(self.config_dir).as_posix()] = choices
        return found

    def choice_file(self, group: str, choice: str, source: str) -> Path:
        """config/<group>/<choice>.yaml, or a ConfigError listing the group's choices."""
        groups = self.groups()
        if group not in groups:
            raise ConfigError(f"the project {self.package} has no configuration group '{group}'", file=source,
                              key=group, hint="Groups: " + ", ".join(groups) if groups else None)
        if choice not in groups[group]:
            raise ConfigError(f"the group '{group}' has no choice '{choice}'", file=source, key=group,
                              hint=f"Choices: {', '.join(groups[group])} (files in {self.config_dir / group})")
        return self.config_dir / group / f"{choice}.yaml"


def find_project(start: str | Path) -> Project | None:
    """The project holding `start` (a file or folder): the nearest marker file at or above it."""
    path = Path(start).resolve()
    for folder in [path, *path.parents] if path.is_dir() else list(path.parents):
        marker = folder / MARKER
        if marker.is_file():
            package = marker.read_text(encoding="utf-8").strip().splitlines()
            name = next((line.split("=", 1)[1].strip() for line in package if line.startswith("package")), folder.name)
            return Project(folder, name)
    return None


def group_files(config: Path, defaults: Mapping, choices: Mapping[str, str]) -> list[Path]:
    """The group files a top-level config merges: its `groups:` defaults with the command line's choices."""
    project = find_project(config)
    if project is None:
        raise ConfigError("'groups' works inside a PyroSys project (a folder with a .pyrosys-project file)",
                          file=str(config), key="groups", hint="Create one with pyrosys-init NAME")
    if not isinstance(defaults, Mapping):
        raise ConfigError("groups is a mapping of group to choice, e.g. {model: mlp, data: digits}", file=str(config),
                          key="groups")
    chosen = {**defaults, **choices}
    return [project.choice_file(group, str(choice), str(config)) for group, choice in chosen.items()
            if choice is not None]


def split_choices(items: list[str], start: str | Path) -> tuple[dict[str, str], list[str]]:
    """Command-line `group=choice` items (groups of the project holding `start`) and `key=value` overrides."""
    project = find_project(start)
    groups = project.groups() if project else {}
    choices, overrides = {}, []
    for item in items:
        key, sep, value = item.partition("=")
        if sep and key in groups:
            choices[key] = value
        else:
            overrides.append(item)
    return choices, overrides


@dataclass
class Package:
    """A folder whose packaging (pyproject.toml or setup.cfg) declares PyroSys entry points, and its name."""

    root: Path
    name: str


def package_around(start: str | Path) -> Package | None:
    """The nearest folder at or above `start` whose pyproject.toml or setup.cfg declares PyroSys entry points."""
    path = Path(start).resolve()
    for folder in [path, *path.parents] if path.is_dir() else list(path.parents):
        for packaging, pattern in (("pyproject.toml", r'(?m)^\s*name\s*=\s*"([^"]+)"'),
                                   ("setup.cfg", r"(?m)^\s*name\s*=\s*(\S+)")):
            file = folder / packaging
            text = file.read_text(encoding="utf-8", errors="replace") if file.is_file() else ""
            if re.search(r"entry.points", text) and "pyrosys." in text:
                found = re.search(pattern, text)
                return Package(folder, found.group(1) if found else folder.name)
    return None


def defines_class(root: Path, name: str, limit: int = 2000) -> bool:
    """Whether a Python file under `root` (hidden folders, environments and builds aside) defines class `name`."""
    definition, seen = re.compile(rf"(?m)^class {re.escape(name)}\b"), 0
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [d for d in subfolders if not d.startswith(".") and d not in ("build", "site-packages")]
        for file in (Path(folder) / f for f in files if f.endswith(".py")):
            seen += 1
            if seen > limit:
                return False
            if definition.search(file.read_text(encoding="utf-8", errors="replace")):
                return True
    return False


def uninstalled_project_defining(name: str, configuration: str | None) -> Package | None:
    """The project around a configuration file (or the current folder) that defines class `name` but is not
    installed in this environment, so that its components are unknown to PyroSys's commands; read as text."""
    from importlib.metadata import PackageNotFoundError, distribution

    start = Path(configuration) if configuration and Path(configuration).exists() else Path.cwd()
    package = package_around(start)
    if package is None or not re.fullmatch(r"[A-Za-z_]\w*", name):
        return None
    try:
        distribution(package.name)
        return None
    except PackageNotFoundError:
        return package if defines_class(package.root, name) else None
