"""Singleton metaclass for the process-wide registries (ParamRegistry, AppState)."""
from __future__ import annotations

from typing import Any


class Singleton(type):
    """Every call of a class using this metaclass returns the same instance until `reset()`."""

    _instances: dict[type, Any] = {}

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls not in Singleton._instances:
            Singleton._instances[cls] = super().__call__(*args, **kwargs)
        return Singleton._instances[cls]

    def reset(cls) -> None:
        """Forget the instance, so that the next call builds a fresh one (tests, new experiments)."""
        Singleton._instances.pop(cls, None)
