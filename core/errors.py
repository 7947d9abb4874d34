"""Errors a user can act on: each names the problem and the fix.

The CLI prints these as plain messages (no traceback unless --debug); anything else is a bug.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input that the user can fix."""

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return f"{self.problem}\n  fix: {self.fix}" if self.fix else self.problem


class ConfigError(UserError):
    """The config file or a value in it is wrong."""


class DataError(UserError):
    """A data file or dataset cannot be used as configured."""


class ModelError(UserError):
    """The model cannot be found, loaded or used."""


class RunDirError(UserError):
    """The run directory cannot be used (exists, is live, is not writable)."""
