"""Grid plans: a folder of experiment configs or a grid file, expanded into the runs of a grid.

A grid file, after MI-Prometheus::

    grid_tasks:                       # each task: configs (relative to this file) and overrides
      - default_configs: lenet5.yaml
        overwrite: {training: {optimizer: {lr: 1.0e-2}}}
    grid_overwrite: {training: {terminal_conditions: {epoch_limit: 3}}}   # every task
    grid_search: {training.optimizer.lr: [1.0e-3, 1.0e-2]}              # Cartesian product, every task
    grid_settings: {experiment_repetitions: 2, max_concurrent_runs: 2}

Precedence, lowest first: the task's configs, the task's `overwrite`, `grid_overwrite`, the sweep's
values, then the command line's `--set`. A task keeps its own seed; repetition k of a task seeded
s gets seed s + k, and a task without a seed gets drawn seeds; every run's seed is in the plan.

The runs are counted (tasks x sweep combinations x repetitions) before any is built: a grid of more
than MAX_RUNS is refused unless `--yes` or `grid_settings: {max_runs: N}` allows it, and none holds
more than RUNS_CEILING.
"""
from __future__ import annotations

import itertools
import json
import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pyrosys.configuration.loading import dump_yaml, find_include, load_configuration, load_yaml, parse_override
from pyrosys.configuration.project import find_project
from pyrosys.errors import ConfigError, did_you_mean
from pyrosys.execution.search_plan import check_search_keys, read_search
from pyrosys.folders.grid import Grid

GRID_KEYS = ("grid_tasks", "grid_overwrite", "grid_settings", "grid_search", "search")
MAX_RUNS = 10_000          # a larger grid is refused unless --yes, or grid_settings.max_runs, allows it
RUNS_CEILING = 100_000     # no plan is larger, whatever is allowed: its runs and its grid.yaml must fit in memory
SETTINGS = {"experiment_repetitions": 1, "max_concurrent_runs": None, "max_runs": MAX_RUNS, "trainer": None}
# grid_settings.trainer: MI-Prometheus's trainers, which validate at epoch ends (offline) or every
# validation.partial_validation_interval episodes (online); PyroSys's one trainer does either, as each run's
# validation.interval says, so both names (and its own) run pyrosys-trainer
TRAINERS = ("pyrosys-trainer", "mip-offline-trainer", "mip-online-trainer")


@dataclass
class GridRun:
    """One run of a grid: the trainer's configuration files, overrides and seed, and its folder name."""

    name: str
    configs: list[str]
    overrides: list[str] = field(default_factory=list)
    seed: int | None = None
    swept: dict[str, Any] = field(default_factory=dict)
    task: int = 0
    repetition: int = 0
    error: str | None = None          # the configuration does not resolve: the run fails without starting
    choices: dict[str, str] = field(default_factory=dict)   # project group choices (model: vae)
    study: str | None = None          # a search's run: its study (the base run's name) and trial number
    trial: int | None = None

    def trainer_arguments(self) -> list[str]:
        """The pyrosys-trainer flags of this run (less --outdir and --run-name)."""
        arguments = ["--c", *self.configs, *(f"{group}={choice}" for group, choice in self.choices.items())]
        if self.overrides:
            arguments += ["--set", *self.overrides]
        if self.seed is not None:
            arguments += ["--seed", str(self.seed)]
        return arguments


@dataclass
class GridPlan:
    """The expanded runs of a grid and its settings."""

    source: str
    runs: list[GridRun]
    max_concurrent_runs: int | None = None
    swept_keys: list[str] = field(default_factory=list)
    search: dict | None = None        # a search: its checked `search:` section (SearchSpec.to_dict())
    bases: list[GridRun] = field(default_factory=list)    # a search: one study per base run (task x sweep)

    def to_yaml(self) -> str:
        return dump_yaml({"source": self.source, "max_concurrent_runs": self.max_concurrent_runs,
                          "swept_keys": self.swept_keys, "search": self.search,
                          "bases": [asdict(run) for run in self.bases], "runs": [asdict(run) for run in self.runs]})

    @classmethod
    def read(cls, grid: Grid) -> GridPlan:
        """The plan saved in a grid folder."""
        path = grid.plan_file
        if not path.is_file():
            raise ConfigError(f"this folder holds no grid (no {path.name})", file=str(grid.folder), key="--resume",
                              hint="Give the grid_<time> folder that pyrosys-grid-trainer printed")
        data = load_yaml(path, max_bytes=None)          # it grows with the runs, which expand() bounds
        return cls(source=data["source"], max_concurrent_runs=data.get("max_concurrent_runs"),
                   swept_keys=list(data.get("swept_keys") or []), search=data.get("search"),
                   bases=[GridRun(**run) for run in data.get("bases") or []],
                   runs=[GridRun(**run) for run in data.get("runs") or []])


def override(key: str, value: Any) -> str:
    """A `key=value` override whose value reads back as the same YAML (JSON is YAML)."""
    return f"{key}={json.dumps(value)}"


def _overrides_of(tree: Mapping) -> list[str]:
    """Overrides for a nested mapping, one per top-level section: a section that names another class
    replaces the old one whole, as it does between files."""
    return [override(key, value) for key, value in tree.items()]


def _label(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return re.sub(r"[^A-Za-z0-9.\-]+", "-", text).strip("-")[:40]


def _run_name(index: int, stem: str, swept: Mapping[str, Any], repetition: int, repetitions: int) -> str:
    parts = [f"{index:03d}", re.sub(r"[^A-Za-z0-9._\-]+", "-", stem)]
    parts += [f"{key.rsplit('.', 1)[-1]}={_label(value)}" for key, value in swept.items()]
    if repetitions > 1:
        parts.append(f"rep{repetition}")
    return "_".join(parts)


def _is_experiment(tree: Mapping) -> bool:
    """A configuration that names both a problem and a model (anything else is a defaults file)."""
    return all(isinstance(tree.get(section), Mapping) and ("name" in tree[section] or "_target_" in tree[section])
               for section in ("problem", "model"))


def _seed_of(tree: Mapping) -> int | None:
    seed = (tree.get("training") or {}).get("seed", -1)
    return None if seed is None or seed == -1 or isinstance(seed, bool) or not isinstance(seed, int) else seed


def _combinations(search: Mapping[str, Any], file: str) -> int:
    """How many combinations of values a sweep makes (counted, not built), each key checked to list values."""
    for key, values in search.items():
        if not isinstance(values, list) or not values:
            shown = repr(values) if len(repr(values)) < 80 else type(values).__name__
            raise ConfigError(f"a sweep lists the values to try, not {shown}", file=file,
                              key=f"grid_search.{key}",
                              hint="Write for example 'training.optimizer.lr: [1.0e-3, 1.0e-2]'")
    return math.prod(len(values) for values in search.values())


def _sweep(search: Mapping[str, Sequence]) -> list[dict[str, Any]]:
    keys = list(search)
    return [dict(zip(keys, combination)) for combination in itertools.product(*(search[k] for k in keys))]


def _check_size(runs: int, factors: str, allowed: int, file: str, key: str) -> None:
    """Refuse a grid of more runs than allowed before a single run is built: a plan too large to hold is
    never materialised."""
    smaller = "fewer tasks, sweep values or repetitions"
    if runs > RUNS_CEILING:
        raise ConfigError(f"the grid has {runs:,} runs ({factors}), more than the {RUNS_CEILING:,} one plan can hold",
                          file=file, key=key, hint=f"Split it into several grids, or make it smaller ({smaller})")
    if runs > allowed:
        raise ConfigError(f"the grid has {runs:,} runs ({factors}), more than the {allowed:,} allowed without "
                          "asking", file=file, key=key,
                          hint=f"If you mean it, give --yes or set 'grid_settings: {{max_runs: {runs}}}' (at most "
                               f"{RUNS_CEILING:,}); otherwise make it smaller ({smaller})")


def _task_runs(configs: list[str], overrides: list[str], sweep: list[dict], repetitions: int,
               stem: str, task: int, start: int, extra: Sequence[str], rng: random.Random) -> list[GridRun]:
    project = find_project(configs[0])
    groups = project.groups() if project else {}
    runs = []
    for swept in sweep:
        choices = {k: str(v) for k, v in swept.items() if k in groups}      # a sweep over a project's groups
        run_overrides = [*overrides, *(override(k, v) for k, v in swept.items() if k not in groups), *extra]
        error, seed = None, None
        try:
            tree = load_configuration(configs, run_overrides, choices).tree
            seed = _seed_of(tree)
        except ConfigError as problem:
            error = problem.paragraph()
        for repetition in range(repetitions):
            run_seed = None if error else (seed + repetition if seed is not None else rng.randrange(2**31))
            runs.append(GridRun(name=_run_name(start + len(runs), stem, swept, repetition, repetitions),
                                configs=configs, overrides=run_overrides, seed=run_seed, swept=dict(swept),
                                task=task, repetition=repetition, error=error, choices=choices))
    return runs


def _from_folder(folder: Path, extra: Sequence[str], rng: random.Random, allowed: int) -> GridPlan:
    runs: list[GridRun] = []
    files = sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()
                   and not p.name.startswith("_"))
    _check_size(len(files), "one at most per YAML file of the folder", allowed, str(folder), "--c")
    for task, path in enumerate(files):
        try:
            data = load_yaml(path)
            if any(key in data for key in GRID_KEYS):
                continue                                 # a grid file of its own
            if not _is_experiment(load_configuration([path], extra).tree):
                continue                                 # a defaults file
        except ConfigError:
            pass                                         # a broken experiment: reported as a failed run
        runs += _task_runs([str(path.resolve())], [], [{}], 1, path.stem, task, len(runs), extra, rng)
    if not runs:
        raise ConfigError("the folder holds no experiment configuration (a YAML file naming a problem and a "
                          "model)", file=str(folder), key="--c")
    return GridPlan(source=str(folder.resolve()), runs=runs)


def _mapping(value: Any, file: str, key: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"must be a mapping, not {type(value).__name__}", file=file, key=key)
    return dict(value)


def _whole_number(value: Any, low: int, high: int | None = None) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= (high or value)


def _settings(data: Mapping, file: str) -> dict[str, Any]:
    """grid_settings with their defaults, each checked."""
    settings = {**SETTINGS, **_mapping(data.get("grid_settings"), file, "grid_settings")}
    for key in settings:
        if key not in SETTINGS:
            raise ConfigError("is not a grid setting", file=file, key=f"grid_settings.{key}",
                              hint=did_you_mean(key, SETTINGS))
    if not _whole_number(settings["experiment_repetitions"], 1):
        raise ConfigError(f"must be a whole number of at least 1, not {settings['experiment_repetitions']!r}",
                          file=file, key="grid_settings.experiment_repetitions")
    concurrent = settings["max_concurrent_runs"]
    if concurrent is not None and not _whole_number(concurrent, 1):
        raise ConfigError(f"must be a whole number of at least 1 or null, not {concurrent!r}", file=file,
                          key="grid_settings.max_concurrent_runs")
    if settings["trainer"] not in (None, *TRAINERS):
        raise ConfigError(f"the trainer {settings['trainer']!r} is not one PyroSys runs", file=file,
                          key="grid_settings.trainer",
                          hint=f"Name one of {', '.join(TRAINERS)}; each runs pyrosys-trainer, validating as the "
                               "run's validation.interval says")
    if not _whole_number(settings["max_runs"], 1, RUNS_CEILING):
        raise ConfigError(f"must be a whole number from 1 to {RUNS_CEILING:,}, not {settings['max_runs']!r}",
                          file=file, key="grid_settings.max_runs",
                          hint="It raises (or lowers) the number of runs this grid may have without --yes")
    return settings


def _task_configs(path: Path, spec: Any, where: str) -> tuple[list[str], str]:
    """The configuration files of one grid task, each checked to exist, and the stem of its run names."""
    file = str(path)
    if not isinstance(spec, Mapping) or "default_configs" not in spec:
        raise ConfigError("a task names its configuration files in default_configs", file=file, key=where,
                          hint="Write for example '- default_configs: lenet5.yaml'")
    for key in spec:
        if key not in ("default_configs", "overwrite"):
            raise ConfigError("is not a task key", file=file, key=f"{where}.{key}",
                              hint=did_you_mean(key, ("default_configs", "overwrite")))
    names = spec["default_configs"]
    names = [n.strip() for n in names.split(",")] if isinstance(names, str) else names
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ConfigError("default_configs is a path or a list of paths", file=file,
                          key=f"{where}.default_configs")
    try:
        configs = [str(find_include(name, path)) for name in names]
    except ConfigError as error:
        error.key = f"{where}.default_configs"
        raise
    return configs, Path(names[0]).stem


def _from_grid_file(path: Path, data: Mapping, extra: Sequence[str], rng: random.Random,
                    allow_large: bool) -> GridPlan:
    file = str(path)
    for key in data:
        if key not in GRID_KEYS:
            raise ConfigError("is not a grid file key", file=file, key=key,
                              hint=did_you_mean(key, GRID_KEYS) + " A grid file has grid_tasks, grid_overwrite, "
                                   "grid_search, search and grid_settings")
    tasks = data.get("grid_tasks")
    if not isinstance(tasks, list) or not tasks:
        raise ConfigError("grid_tasks lists at least one task", file=file, key="grid_tasks",
                          hint="Write for example 'grid_tasks: [{default_configs: lenet5.yaml}]'")
    settings = _settings(data, file)
    repetitions = settings["experiment_repetitions"]
    search = _mapping(data.get("grid_search"), file, "grid_search")
    searched = read_search(data["search"], file) if "search" in data else None
    if searched is not None:
        check_search_keys(searched, list(search), file)
        if repetitions > 1:
            raise ConfigError("a search repeats its trials with search.repetitions", file=file,
                              key="grid_settings.experiment_repetitions",
                              hint=f"Move it: 'search: {{repetitions: {repetitions}}}'")
    factors = {"grid_tasks": len(tasks), "grid_search": _combinations(search, file),
               "grid_settings.experiment_repetitions": repetitions}
    told = f"{len(tasks):,} task(s) x {factors['grid_search']:,} sweep combination(s) x {repetitions:,} repetition(s)"
    _check_size(math.prod(factors.values()), told, RUNS_CEILING if allow_large else settings["max_runs"], file,
                max(factors, key=factors.__getitem__))                # the key that grows the grid most
    grid_overwrite = _overrides_of(_mapping(data.get("grid_overwrite"), file, "grid_overwrite"))
    sweep = _sweep(search)
    runs: list[GridRun] = []
    for task, spec in enumerate(tasks):
        where = f"grid_tasks[{task}]"
        configs, stem = _task_configs(path, spec, where)
        overrides = [*_overrides_of(_mapping(spec.get("overwrite"), file, f"{where}.overwrite")), *grid_overwrite]
        runs += _task_runs(configs, overrides, sweep, repetitions, stem, task, len(runs), extra, rng)
    if searched is not None:          # the runs are the studies' bases; their trials are asked as the search goes
        return GridPlan(source=str(path.resolve()), runs=[], max_concurrent_runs=settings["max_concurrent_runs"],
                        swept_keys=[*search, *searched.space], search=searched.to_dict(), bases=runs)
    return GridPlan(source=str(path.resolve()), runs=runs, max_concurrent_runs=settings["max_concurrent_runs"],
                    swept_keys=list(search))


def trial_run(base: GridRun, params: Mapping[str, Any], trial: int, repetition: int, repetitions: int) -> GridRun:
    """The run of one repetition of a search trial: the base run (a task and sweep combination) with the
    trial's sampled values, named after both; project group keys are choices, as in a sweep."""
    project = find_project(base.configs[0])
    groups = project.groups() if project else {}
    choices = {**base.choices, **{k: str(v) for k, v in params.items() if k in groups}}
    overrides = [*base.overrides, *(override(k, v) for k, v in params.items() if k not in groups)]
    name = f"{base.name}_t{trial:03d}" + (f"_rep{repetition}" if repetitions > 1 else "")
    seed = base.seed + repetition if base.seed is not None else None
    return GridRun(name=name, configs=base.configs, overrides=overrides, seed=seed,
                   swept={**base.swept, **params}, task=base.task, repetition=repetition, choices=choices,
                   study=base.name, trial=trial)


def expand(path: str | Path, extra: Sequence[str] = (), seed: int | None = None,
           allow_large: bool = False) -> GridPlan:
    """The plan of a folder of experiment configs or of a grid file; `extra` overrides apply to every run.
    A grid of more than MAX_RUNS runs (or its grid_settings.max_runs) is refused unless `allow_large` (--yes)."""
    path = Path(path)
    rng = random.Random(seed)
    if path.is_dir():
        return _from_folder(path, extra, rng, RUNS_CEILING if allow_large else MAX_RUNS)
    if not path.exists():
        raise ConfigError("neither a folder of configs nor a grid file exists here", file=str(path), key="--c")
    data = load_yaml(path)                               # a device or a pipe is refused here, unread
    if not any(key.startswith("grid_") for key in data):
        # one experiment config: a grid of one task (with the command line's settings)
        return GridPlan(source=str(path.resolve()),
                        runs=_task_runs([str(path.resolve())], [], [{}], 1, path.stem, 0, 0, extra, rng))
    return _from_grid_file(path, data, extra, rng, allow_large)


def command_line_overrides(items: Sequence[str]) -> list[str]:
    """Check `--set` items before any run starts (their mistakes would fail every run)."""
    for item in items:
        parse_override(item)
    return list(items)

