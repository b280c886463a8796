"""The errors convrec expects, by kind. The CLI turns each into one or two lines and exit code 2.

Anything a user can cause (a bad file, option, checkpoint or output path, an unreachable LLM) is raised as
a :class:`ConvrecError` whose message names what and where (file, line or field) and what was expected.
Every other exception is a bug in convrec: the CLI says so, writes the stack to a log file and exits 70.
Keeping the two apart is the point: a catch-all that turns every exception into a tidy line would hide
bugs, so new failure cases get a typed error here, never a broad ``except``.
"""

from __future__ import annotations

import os


class ConvrecError(Exception):
    """An expected failure. ``hint`` (optional) is a second line: what to do about it."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


class DataError(ConvrecError, ValueError):
    """Bad input data, located: which file, which line (1-based) or field, and what was expected."""

    def __init__(self, message: str, path: str | os.PathLike | None = None, line: int | None = None,
                 hint: str | None = None):
        self.path = None if path is None else str(path)
        self.line = line
        self.reason = message
        where = ""
        if self.path is not None:
            where = self.path if line is None else f"{self.path} line {line}"
            where += ": "
        super().__init__(where + message, hint)


class ConfigError(ConvrecError, ValueError):
    """A bad command-line argument, option (``--set``) or config file value."""


class CheckpointError(ConvrecError):
    """A run directory that cannot be loaded: missing, incomplete, corrupt, or made for something else."""


class OutputPathError(ConvrecError):
    """A place convrec was asked to write to that cannot be written (checked before the work starts)."""
