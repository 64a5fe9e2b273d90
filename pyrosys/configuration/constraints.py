"""Constraints: the type and range of each parameter a component declares, beside its default, and the
one check of resolved values against them.

After scikit-learn's estimator contract: one place per component declares its parameters, their
defaults (`get_params()`) and their valid values (`constraints()`, next to it); constructors only
store them, and every component is checked the same way before anything is built or written:

    @staticmethod
    def constraints() -> dict:
        return {"hidden_sizes": ListOf(Integer(low=1)), "dropout": Number(low=0, high=1, high_open=True)}

Layer 2 and free of torch: a configuration is checked in a fraction of a second.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

from pyrosys.errors import ConfigError, did_you_mean, nearest


class Constraint:
    """What values one parameter accepts, and how to say it ('a whole number >= 1')."""

    def accepts(self, value: Any) -> bool:
        """Whether `value` is valid."""
        raise NotImplementedError

    def describe(self) -> str:
        """The valid values in words, to follow 'must be'."""
        raise NotImplementedError

    def suggest(self, value: Any) -> str | None:
        """A closer valid value, where one can be named (a misspelt choice, say)."""
        return None

    def __eq__(self, other: object) -> bool:
        """Equal when of the same class with the same settings (a constraint read from source and an imported one)."""
        return type(self) is type(other) and vars(self) == vars(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


def _range(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    """A range in words: 'in [0, 1)', '>= 1', '' for any value."""
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high}"
    return ""


def _within(value: float, low: float | None, high: float | None, low_open: bool, high_open: bool) -> bool:
    above = low is None or (value > low if low_open else value >= low)
    below = high is None or (value < high if high_open else value <= high)
    return above and below


class Number(Constraint):
    """A finite real number (an int or a float, never a boolean) in a range."""

    def __init__(self, low: float | None = None, high: float | None = None, *, low_open: bool = False,
                 high_open: bool = False) -> None:
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open

    def accepts(self, value: Any) -> bool:
        return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                and _within(value, self.low, self.high, self.low_open, self.high_open))

    def describe(self) -> str:
        return " ".join(filter(None, ["a number", _range(self.low, self.high, self.low_open, self.high_open)]))


class Integer(Constraint):
    """A whole number written as one (1e3, 2.5 and true are refused) in a range, odd where asked."""

    def __init__(self, low: int | None = None, high: int | None = None, *, odd: bool = False) -> None:
        self.low, self.high, self.odd = low, high, odd

    def accepts(self, value: Any) -> bool:
        whole = isinstance(value, int) and not isinstance(value, bool)
        return whole and _within(value, self.low, self.high, False, False) and (not self.odd or value % 2 == 1)

    def describe(self) -> str:
        kind = "an odd whole number" if self.odd else "a whole number"
        return " ".join(filter(None, [kind, _range(self.low, self.high, False, False)]))


class OfType(Constraint):
    """A value of one Python type, said in a few words (an empty string says nothing, and is refused)."""

    kind: ClassVar[type] = object
    words: ClassVar[str] = "a value"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, self.kind) and value != ""

    def describe(self) -> str:
        return self.words


class Boolean(OfType):
    """true or false."""

    kind, words = bool, "true or false"


class Text(OfType):
    """A non-empty string."""

    kind, words = str, "a non-empty string"


class MappingOf(OfType):
    """A mapping from names to values (its entries are the component's to check)."""

    kind, words = Mapping, "a mapping"


class Label(Constraint):
    """A class label as a file writes it: a non-empty string or a whole number (YAML's 0 and '0' alike)."""

    def accepts(self, value: Any) -> bool:
        return (isinstance(value, str) and value != "") or (isinstance(value, int) and not isinstance(value, bool))

    def describe(self) -> str:
        return "a label (a non-empty string or a whole number)"


class MappingWith(Constraint):
    """A mapping whose keys are among a few names, each value accepted by that name's constraint
    (a key left out takes the component's default)."""

    def __init__(self, fields: Mapping[str, Constraint]) -> None:
        self.fields = dict(fields)

    def accepts(self, value: Any) -> bool:
        return isinstance(value, Mapping) and all(
            key in self.fields and self.fields[key].accepts(item) for key, item in value.items())

    def describe(self) -> str:
        return "a mapping of " + "; ".join(f"{key}: {rule.describe()}" for key, rule in self.fields.items())

    def suggest(self, value: Any) -> str | None:
        unknown = [str(key) for key in value if key not in self.fields] if isinstance(value, Mapping) else []
        close = nearest(unknown[0], list(self.fields), n=1) if unknown else []
        return close[0] if close else None


class OneOf(Constraint):
    """One of a few values."""

    def __init__(self, *choices: Any) -> None:
        self.choices = choices

    def accepts(self, value: Any) -> bool:
        return any(value == choice and type(value) is type(choice) for choice in self.choices)

    def describe(self) -> str:
        return "one of " + ", ".join(repr(choice) for choice in self.choices)

    def suggest(self, value: Any) -> str | None:
        close = nearest(str(value), [str(c) for c in self.choices], n=1)
        return close[0] if close else None


class OptionalOf(Constraint):
    """null, or what another constraint accepts."""

    def __init__(self, inner: Constraint, meaning: str = "") -> None:
        self.inner, self.meaning = inner, meaning

    def accepts(self, value: Any) -> bool:
        return value is None or self.inner.accepts(value)

    def describe(self) -> str:
        null = f"null ({self.meaning})" if self.meaning else "null"
        return f"{null} or {self.inner.describe()}"

    def suggest(self, value: Any) -> str | None:
        return self.inner.suggest(value)


class ListOf(Constraint):
    """A list whose items each satisfy one constraint, of a length in a range."""

    def __init__(self, item: Constraint, *, min_length: int = 0, max_length: int | None = None) -> None:
        self.item, self.min_length, self.max_length = item, min_length, max_length

    def accepts(self, value: Any) -> bool:
        return (isinstance(value, list) and len(value) >= self.min_length
                and (self.max_length is None or len(value) <= self.max_length)
                and all(self.item.accepts(item) for item in value))

    def describe(self) -> str:
        if self.min_length == self.max_length:
            size = f" of {self.min_length} items"
        elif self.min_length:
            size = f" of {self.min_length} or more items" + (f" (at most {self.max_length})" if self.max_length else "")
        else:
            size = f" of at most {self.max_length} items" if self.max_length is not None else ""
        return f"a list{size}, each {self.item.describe()}"


def shown(value: Any) -> str:
    """A value as YAML writes it (null, true, 'text', [1, 2]), for messages."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return repr(value)


def declared_constraints(cls: type) -> dict[str, Constraint]:
    """The constraints a component class declares (`constraints()`, beside `get_params()`); none declared,
    none checked."""
    declare = getattr(cls, "constraints", None)
    declared = declare() if callable(declare) else {}
    for key, constraint in declared.items():
        if not isinstance(constraint, Constraint):
            raise TypeError(f"{cls.__name__}.constraints()['{key}'] is not a Constraint: {constraint!r}")
    return declared


def check_params(cls: type, params: Mapping, *, section: str, source: Callable[[str], str | None] = lambda _: None,
                 defaults: Mapping | None = None) -> None:
    """Refuse the first parameter of `params` that its class's declared constraint does not accept, naming
    the file that set it (`source(key)`), its key (`section.key`), the value and the valid ones."""
    declared = declared_constraints(cls)
    if defaults is not None and set(declared) - set(defaults):
        raise TypeError(f"{cls.__name__}.constraints() names parameters its get_params() lacks: "
                        f"{sorted(set(declared) - set(defaults))}")
    check_declared(cls.__name__, declared, params, section=section, source=source, defaults=defaults)


def check_declared(owner: str, declared: Mapping[str, Constraint], params: Mapping, *, section: str,
                   source: Callable[[str], str | None], defaults: Mapping | None) -> None:
    """check_params given the constraints themselves: one message whether they were read from the class's source
    (before torch is imported) or from the imported class."""
    for key, constraint in declared.items():
        if key not in params or constraint.accepts(params[key]):
            continue
        value = params[key]
        close = constraint.suggest(value)
        hints = [f"Did you mean {close!r}?" if close is not None else "",
                 f"Its default is {shown(defaults[key])}" if defaults is not None and key in defaults else ""]
        raise ConfigError(f"{owner}'s {key} must be {constraint.describe()}, not {shown(value)}",
                          file=source(key), key=f"{section}.{key}", hint=" ".join(filter(None, hints)) or None)


def check_objective_names(loss: Any, metrics: Any, *, losses: Iterable[str], metric_names: Iterable[str],
                          file: str | None) -> None:
    """Refuse unknown loss or metric names from a configuration, naming the nearest ones: the one message for
    the names read from pyrosys.objectives's source (before torch) and for its imported tables."""
    losses, metric_names = list(losses), list(metric_names)
    weighted = isinstance(loss, Mapping) and loss.get("class_weights") is not None
    if isinstance(loss, Mapping):
        check_loss_options(loss, file=file)
        loss = loss["name"]
    if not isinstance(loss, str) or loss not in losses:
        raise ConfigError(f"there is no loss named {loss!r}", file=file, key="training.loss",
                          hint=did_you_mean(loss, losses))
    if weighted and loss not in WEIGHTED_LOSSES:
        raise ConfigError(f"class_weights weigh the classes of {' or '.join(WEIGHTED_LOSSES)}, not of {loss!r}",
                          file=file, key="training.loss.class_weights",
                          hint="Remove class_weights, or use one of those losses")
    if isinstance(metrics, str) or not isinstance(metrics, Sequence):
        raise ConfigError(f"metrics are a list of names, not {metrics!r}", file=file, key="training.metrics",
                          hint="Write for example 'metrics: [accuracy, f1]'")
    for name in metrics:
        if not isinstance(name, str) or name not in metric_names:
            raise ConfigError(f"there is no metric named {name!r}", file=file, key="training.metrics",
                              hint=did_you_mean(str(name), metric_names))


LOSS_OPTIONS = ("name", "class_weights")              # training.loss written as a mapping
WEIGHTED_LOSSES = ("cross_entropy", "masked_cross_entropy")   # the losses class_weights weigh


def check_loss_options(loss: Mapping, *, file: str | None) -> None:
    """Refuse a training.loss mapping with an unknown option, no name, or class_weights that are neither
    'balanced' nor a list of positive numbers."""
    for option in loss:
        if option not in LOSS_OPTIONS:
            raise ConfigError(f"training.loss has no option {option!r} (it has {', '.join(LOSS_OPTIONS)})", file=file,
                              key=f"training.loss.{option}", hint=did_you_mean(str(option), LOSS_OPTIONS))
    if "name" not in loss:
        raise ConfigError("training.loss names no loss", file=file, key="training.loss.name",
                          hint="Write for example 'loss: {name: cross_entropy, class_weights: balanced}'")
    weights = loss.get("class_weights")
    if weights is None:
        return
    if weights != "balanced" and not ListOf(Number(low=0, low_open=True), min_length=1).accepts(weights):
        raise ConfigError(f"class_weights is 'balanced' or a list of positive numbers, one per class, not "
                          f"{shown(weights)}", file=file, key="training.loss.class_weights",
                          hint="balanced weighs each class by n / (K * n_c), from the training split's counts")
