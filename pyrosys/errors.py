"""ConfigError: every configuration mistake, told as one paragraph naming file, key and a fix."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class ConfigError(Exception):
    """A mistake in a configuration, a flag or a checkpoint that the user can fix.

    Workers print it as one paragraph on stderr and exit with status 2.
    """

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.key = key
        self.hint = hint

    def paragraph(self) -> str:
        """The whole error as one paragraph: where, what, and what to do."""
        where = []
        if self.file:
            where.append(f"in {self.file}")
        if self.key:
            where.append(f"at key '{self.key}'")
        text = "Configuration error" + (" " + ", ".join(where) if where else "") + ": "
        text += self.message.rstrip(".") + "."
        if self.hint:
            text += " " + self.hint.rstrip(".") + "."
        return " ".join(text.split())

    def __str__(self) -> str:
        return self.paragraph()


class RunFailed(Exception):
    """A run that started and then failed for a reason that is not a configuration mistake (its loss
    diverged, a component raised). Workers print it on one line and exit with status 1."""


class TrainingDiverged(RunFailed):
    """The training loss became NaN or infinite."""


def nearest(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The names among `choices` closest to `word`, best first (for 'did you mean' hints)."""
    choices = sorted(set(choices))
    found = difflib.get_close_matches(word, choices, n=n, cutoff=0.5)
    if not found:
        lowered = {c.lower(): c for c in choices}
        found = [lowered[c] for c in difflib.get_close_matches(word.lower(), list(lowered), n=n, cutoff=0.5)]
    return found


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A hint sentence naming the nearest choices, or listing what exists when nothing is close."""
    choices = sorted(set(choices))
    close = nearest(word, choices)
    if close:
        return "Did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
    if choices:
        shown = ", ".join(f"'{c}'" for c in choices[:12]) + (", ..." if len(choices) > 12 else "")
        return f"Known: {shown}"
    return ""
