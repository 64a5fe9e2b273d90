"""Optuna for a search: its samplers, pruners and distributions from a SearchSpec, and the studies in the grid
folder's SQLite file (one per base run). Optuna is imported only here, and only for a search."""
from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from pyrosys.errors import ConfigError
from pyrosys.execution.search_plan import INSTALL, SearchSpec, decode_choice, encode_choice

SQLITE_TIMEOUT = 60          # seconds a writer waits for another (the grid and its runs share the file)


def optuna_module(key: str = "search") -> Any:
    """Optuna, quiet, or the refusal that says how to install it."""
    try:
        import optuna
    except ImportError:
        raise ConfigError("a search needs Optuna, which is not installed", key=key,
                          hint=f"Install it with {INSTALL}") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


@functools.lru_cache(maxsize=4)
def storage(url: str) -> Any:
    """The studies' storage: the grid's SQLite file, writers waiting for each other; opened once per process
    (a pool worker's runs of one grid share it)."""
    optuna = optuna_module()
    return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": SQLITE_TIMEOUT}})


def sampler(spec: SearchSpec, asked: int = 0) -> Any:
    """The spec's Optuna sampler, seeded; a study resumed after `asked` trials gets the seed moved on by as
    many, so that its sampler does not draw the first trials' values again."""
    samplers = optuna_module().samplers
    spec = SearchSpec(**{**spec.to_dict(), "seed": None if spec.seed is None else spec.seed + asked})
    if spec.sampler == "random":
        return samplers.RandomSampler(seed=spec.seed)
    if spec.sampler == "tpe":
        return samplers.TPESampler(seed=spec.seed, n_startup_trials=min(10, max(2, spec.trials // 4)))
    if spec.sampler == "cmaes":
        try:
            import cmaes  # noqa: F401 - Optuna's CMA-ES sampler needs it
        except ImportError:
            raise ConfigError("the cmaes sampler needs the cmaes package, which is not installed",
                              key="search.sampler", hint=f"Install it with {INSTALL}") from None
        return samplers.CmaEsSampler(seed=spec.seed, warn_independent_sampling=False)
    if spec.sampler == "grid":
        return samplers.GridSampler({key: [encode_choice(c) for c in entry["choices"]]
                                     for key, entry in spec.space.items()}, seed=spec.seed)
    return samplers.QMCSampler(seed=spec.seed, warn_independent_sampling=False, warn_asynchronous_seeding=False)


def pruner(settings: dict) -> Any:
    """The Optuna pruner of `search.pruner`; steps are validations, counted from 0."""
    pruners = optuna_module().pruners
    name = settings["name"]
    if name == "median":
        return pruners.MedianPruner(n_startup_trials=settings.get("startup_trials", 2),
                                    n_warmup_steps=settings.get("warmup_validations", 1))
    if name == "percentile":
        return pruners.PercentilePruner(settings.get("percentile", 25.0),
                                        n_startup_trials=settings.get("startup_trials", 2),
                                        n_warmup_steps=settings.get("warmup_validations", 1))
    if name == "hyperband":
        return pruners.HyperbandPruner(min_resource=settings.get("min_validations", 1),
                                       max_resource=settings.get("max_validations", "auto"),
                                       reduction_factor=settings.get("reduction_factor", 3))
    return pruners.NopPruner()


def distributions(spec: SearchSpec) -> dict[str, Any]:
    """Each space key's Optuna distribution (choices stored as JSON text where they are not scalars)."""
    optuna = optuna_module()
    result = {}
    for key, entry in spec.space.items():
        kind = spec.kind(key)
        if kind == "choices":
            result[key] = optuna.distributions.CategoricalDistribution([encode_choice(c) for c in entry["choices"]])
        elif kind == "int":
            result[key] = optuna.distributions.IntDistribution(entry["low"], entry["high"], log=entry.get("log", False),
                                                               step=entry.get("step", 1))
        else:
            result[key] = optuna.distributions.FloatDistribution(float(entry["low"]), float(entry["high"]),
                                                                 log=entry.get("log", False), step=entry.get("step"))
    return result


def open_study(url: str, name: str, spec: SearchSpec, direction: str, source: str) -> Any:
    """The study `name` in the grid's storage: created, or opened again on resume, when it was made by the
    same search (otherwise its differences are listed and refused)."""
    optuna = optuna_module()
    study = optuna.create_study(storage=storage(url), study_name=name, sampler=sampler(spec),
                                pruner=pruner(spec.pruner), direction="maximize" if direction == "max" else "minimize",
                                load_if_exists=True)
    asked = len(study.get_trials(deepcopy=False))
    if asked:                                  # resumed: its sampler goes on from another seed
        study.sampler = sampler(spec, asked)
    recorded = study.user_attrs.get("search")
    if recorded is None:
        study.set_user_attr("search", spec.to_dict())
    elif recorded != spec.to_dict():
        changes = [f"{key}: {recorded.get(key)!r} -> {value!r}" for key, value in spec.to_dict().items()
                   if recorded.get(key) != value]
        raise ConfigError(f"the search differs from the one its study {name} ran: " + "; ".join(changes), file=source,
                          key="search", hint="Resume with the search as it was, or start a new grid for the new one")
    return study


def drawn_values(study: Any, trial: Any, spec: SearchSpec) -> dict[str, Any]:
    """A trial's stored values, those of the space it lacks drawn now by the study's sampler: a grid killed
    inside `ask` (which stores the values one by one) leaves a running trial with only some of them."""
    if all(key in trial.params for key in spec.space):
        return trial.params
    optuna = optuna_module()
    live = optuna.trial.Trial(study, trial_id(trial))
    for key, distribution in distributions(spec).items():
        if key in trial.params:
            continue
        if isinstance(distribution, optuna.distributions.CategoricalDistribution):
            live.suggest_categorical(key, distribution.choices)
        elif isinstance(distribution, optuna.distributions.IntDistribution):
            live.suggest_int(key, distribution.low, distribution.high, step=distribution.step, log=distribution.log)
        else:
            live.suggest_float(key, distribution.low, distribution.high, step=distribution.step, log=distribution.log)
    return live.params


def trial_params(stored: Mapping[str, Any], spec: SearchSpec) -> dict[str, Any]:
    """Sampled values as stored (an Optuna trial's params, a Tune trial's config) as configuration values
    (choices decoded), in the space's order."""
    return {key: decode_choice(stored[key], entry["choices"]) if "choices" in entry else stored[key]
            for key, entry in spec.space.items() if key in stored}


def trial_id(trial: Any) -> int:
    """A trial's id in the storage: what a run in another process opens the trial by (Optuna keeps it private
    on both its Trial and FrozenTrial)."""
    return int(trial._trial_id)


def tell(study: Any, trial: Any, *args: Any, **kwargs: Any) -> None:
    """study.tell as inside Optuna's optimize loop: Optuna's grid sampler stops the study once its grid is done,
    which outside that loop raises instead of ending the trial."""
    local = study._thread_local
    saved, local.in_optimize_loop = local.in_optimize_loop, True
    try:
        study.tell(trial, *args, **kwargs)
    finally:
        local.in_optimize_loop = saved
