"""Resolve and build the components a configuration names: its problem (with per-phase overrides)
and its model. Every key read here is a key the configuration may hold."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pyrosys.errors import ConfigError
from pyrosys.factory import resolve
from pyrosys.configuration.param_registry import ParamInterface, ParamRegistry

# phase of a problem -> the configuration section that holds its overrides
PHASE_SECTIONS = {"train": "training", "val": "validation", "test": "testing"}
CLASS_KEYS = ("name", "_target_")


def plain(value: Any) -> Any:
    """Plain data from a registry value (a section view becomes a dict, read whole)."""
    return value.to_dict() if isinstance(value, ParamInterface) else value


@dataclass
class ComponentPlan:
    """A component class and the parameters it will be created with."""

    cls: type
    params: dict
    phases: dict[str, dict] = field(default_factory=dict)
    load: dict | None = None     # models: weights to adapt in ({from, modules, freeze})

    @property
    def name(self) -> str:
        return self.cls.__name__


def _class_spec(section: ParamInterface) -> dict:
    return {key: section[key] for key in CLASS_KEYS if key in section and section.get(key) is not None}


def resolve_problem(registry: ParamRegistry, seed: int | None = None) -> ComponentPlan:
    """The problem class (one for every phase), its shared parameters and each phase's overrides."""
    sections = {"problem": registry.section("problem")}
    for phase, name in PHASE_SECTIONS.items():
        if "problem" in registry.section(name):
            sections[f"{name}.problem"] = registry.section(f"{name}.problem")
    named = {path: _class_spec(section) for path, section in sections.items()}
    named = {path: spec for path, spec in named.items() if spec}
    if not named:
        raise ConfigError("no problem is named", file=registry.configuration.source("problem"), key="problem.name",
                          hint="Add 'problem: {name: Digits}' or '_target_: package.module.ProblemClass'")
    path, spec = next(iter(named.items()))
    problem_cls = resolve(spec, "problem", file=sections[path].source(), key=path)
    for other, other_spec in named.items():
        if resolve(other_spec, "problem", file=sections[other].source(), key=other) is not problem_cls:
            raise ConfigError(f"'{other}' names another problem class than '{path}'",
                              file=sections[other].source(), key=other,
                              hint="One problem class serves every phase; phases may only change its parameters")
    defaults = problem_cls.get_params()
    shared = sections["problem"]
    shared.add_default_params(defaults)
    for path, section in sections.items():
        absolute_paths(section, problem_cls.path_params)
    if seed is not None and shared.get("seed") is None:
        shared.add_config_params({"seed": seed})
    params = {key: plain(shared[key]) for key in defaults}
    phases = {}
    for phase, name in PHASE_SECTIONS.items():
        section = sections.get(f"{name}.problem")
        phases[phase] = {key: plain(section[key]) for key in defaults if section is not None and key in section}
    return ComponentPlan(problem_cls, params, phases)


def absolute_paths(section: ParamInterface, keys: tuple[str, ...]) -> None:
    """Make relative file parameters absolute, taken from the folder of the YAML file that set them."""
    from pathlib import Path

    for key in keys:
        value = section.get(key) if key in section else None
        if not isinstance(value, str) or not value or Path(value).is_absolute():
            continue
        source = section.source(key)
        base = Path(source).parent if source and Path(source).is_file() else Path.cwd()
        section.add_config_params({key: str((base / value).resolve())})


def resolve_model(registry: ParamRegistry) -> ComponentPlan:
    """The model class and its parameters, defaults filled in from its get_params()."""
    section = registry.section("model")
    spec = _class_spec(section)
    if not spec:
        raise ConfigError("no model is named", file=section.source(), key="model.name",
                          hint="Add 'model: {name: LeNet5}' or '_target_: package.module.ModelClass'")
    model_cls = resolve(spec, "model", file=section.source(), key="model")
    defaults = model_cls.get_params()
    if "load" in defaults:
        raise TypeError(f"{model_cls.__name__}.get_params() may not use 'load': it names weights to adapt in")
    section.add_default_params(defaults)
    return ComponentPlan(model_cls, {key: plain(section[key]) for key in defaults}, load=_weights_to_load(section))


def _weights_to_load(model: ParamInterface) -> dict | None:
    """`model.load: {from: PATH, modules: [...], freeze: [...]}`: weights adapted in by structure."""
    if model.get("load") is None:
        return None
    section = model["load"]
    if not isinstance(section, ParamInterface):
        raise ConfigError("model.load is a mapping such as {from: run/models/best, modules: [encoder]}",
                          file=model.source("load"), key="model.load")
    section.add_default_params({"from": None, "modules": None, "freeze": None})
    absolute_paths(section, ("from",))
    load = {key: section[key] for key in ("from", "modules", "freeze")}
    if not load["from"]:
        raise ConfigError("model.load names no source", file=section.source(), key="model.load.from",
                          hint="Set 'from' to a bundle folder or a checkpoint")
    for key in ("modules", "freeze"):
        names = load[key]
        if names is not None and (not isinstance(names, list) or not all(isinstance(m, str) for m in names)):
            raise ConfigError(f"{key} is a list of sub-module names", file=section.source(key), key=f"model.load.{key}")
    return load


def build_problem(plan: ComponentPlan) -> Any:
    """The problem, created and set up (so that data errors surface before an experiment starts)."""
    problem = plan.cls.create(plan.params, plan.phases)
    problem.setup()
    for phase in PHASE_SECTIONS:
        problem.loader(phase)
    return problem


def build_model(plan: ComponentPlan, problem: Any) -> Any:
    """The model, checked to fit the problem's data and task, sized from its data definitions, and given
    the weights `model.load` names (through the Adapter)."""
    import logging

    from pyrosys.models.adapter import adapt

    plan.cls.check_fit(problem.data_definitions, problem=f"the problem {problem.name}")
    model = plan.cls.create(plan.params, problem.data_definitions)
    if plan.load is not None:
        report = adapt(model, plan.load["from"], plan.load["modules"], plan.load["freeze"])
        if report.shape_mismatched or not report.matched:
            first = report.shape_mismatched[0] if report.shape_mismatched else None
            detail = (f": its {first[0]} has shape {first[2]}, the model {plan.name}'s {first[1]} on the problem "
                      f"{problem.name} needs {first[3]}" if first else "")
            raise ConfigError(f"the weights to load do not fit{detail}", file=str(plan.load["from"]),
                              key="model.load.from",
                              hint=report.summary() + "; load only the sub-modules that fit with modules: [...]")
        logging.getLogger("pyrosys.adapter").info(report.summary())
        model.adapter_report = report
    return model


def make_objective(model: Any, problem: Any, loss: str | None, metrics: list | None) -> Any:
    """The objective: the configuration's loss and metrics, else the model's (autoencoders), else the
    problem's; checked to suit the task the model serves on this problem."""
    from pyrosys.objectives import Objective, check_task

    objective = Objective(loss or model.default_loss or problem.default_loss,
                          tuple(metrics if metrics is not None else model.default_metrics or problem.default_metrics),
                          target_field=model.target_field)
    check_task(objective.loss_name, objective.metric_names, model.task,
               f"the model {type(model).__name__} on the problem {problem.name}")
    return objective
