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
        text += self.message.rstrip(".") + ("" if self.message.endswith("?") else ".")
        if self.hint:
            text += " " + self.hint.rstrip(".") + ("" if self.hint.endswith("?") else ".")
        return " ".join(text.split())

    def __str__(self) -> str:
        return self.paragraph()


class RunFailed(Exception):
    """A run that started and then failed for a reason that is not a configuration mistake (its loss
    diverged, a component raised). Workers print it on one line and exit with status 1."""


class Interrupted(Exception):
    """The user stopped a command (Ctrl-C: SIGINT; or SIGTERM, as schedulers do): not a failure. Workers
    say so on one line and exit with 128 + the signal's number (130 for SIGINT, 143 for SIGTERM)."""

    def __init__(self, signal_name: str, exit_code: int, episode: int | None = None,
                 checkpoint: str | None = None) -> None:
        super().__init__(f"interrupted by {signal_name}")
        self.signal_name, self.exit_code, self.episode, self.checkpoint = signal_name, exit_code, episode, checkpoint


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


def origin(error: BaseException) -> tuple[str, str]:
    """Whose code raised `error`: ("pyrosys", place) when the innermost frame outside the libraries is
    PyroSys's own (a bug to report), ("component", place) when it is a user's component or script."""
    import sysconfig          # only when a run failed in code: the light path stays free of it

    libraries = {path for path in (sysconfig.get_paths().get("stdlib"), sysconfig.get_paths().get("purelib"),
                                   sysconfig.get_paths().get("platlib")) if path}
    frames = []
    tb = error.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        module, file = frame.f_globals.get("__name__", ""), frame.f_code.co_filename
        place = f"{file}:{frame.f_lineno}"
        if module == "pyrosys" or module.startswith("pyrosys."):
            return "pyrosys", place
        if not any(file.startswith(path) for path in libraries):
            return "component", place
    return "pyrosys", "?"
