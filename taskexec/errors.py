"""Domain exceptions: one base class so callers can catch everything taskexec raises."""

from __future__ import annotations


class TaskexecError(Exception):
    """Base class for every error taskexec raises on purpose."""


class InvalidRecord(TaskexecError, ValueError):
    """A field of a TaskExecution (or an argument that becomes one) is not acceptable."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class BadInput(TaskexecError, ValueError):
    """An outside input (a file, a line, a parameter) could not be read; says what and where."""

    def __init__(self, where: str, message: str) -> None:
        self.where = where
        self.reason = message
        super().__init__(f"{where}: {message}")


class DatabaseError(TaskexecError):
    """The database file is missing, is not a taskexec database, or is newer than this code."""


class UnknownProbe(TaskexecError, KeyError):
    """No probe SQL file has that name."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else "unknown probe"
