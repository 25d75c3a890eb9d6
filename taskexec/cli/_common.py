"""Shared click pieces: the database argument/option, error translation and the group that
keeps Python tracebacks away from users."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..config import DEFAULT_DB, ENV_VAR
from ..errors import TaskexecError

F = TypeVar("F", bound=Callable[..., Any])

#: Set this environment variable to see the traceback of an unexpected error.
DEBUG_ENV = "TASKEXEC_DEBUG"

#: ``DB`` as an optional positional argument: defaults to $TASKEXEC_DB, then taskexec.db.
db_argument = click.argument(
    "db", required=False, envvar=ENV_VAR, default=DEFAULT_DB, type=click.Path(dir_okay=False)
)

#: ``--db DB`` for commands whose positional arguments are inputs.
db_option = click.option(
    "--db",
    "db",
    envvar=ENV_VAR,
    default=DEFAULT_DB,
    show_default=True,
    type=click.Path(dir_okay=False),
    help=f"Database file (default: ${ENV_VAR}, then {DEFAULT_DB}).",
)

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: object, limit: int = 2000) -> str:
    """``text`` as one printable line: control characters (newlines, escape sequences) as
    ``\\xNN``, undecodable file-name bytes as ``\\udcNN``, cut to ``limit`` characters. File
    names and values from hostile input can hold any of these."""
    out = str(text).encode("utf-8", "backslashreplace").decode("utf-8")
    out = _CONTROL_RE.sub(lambda m: f"\\x{ord(m.group()):02x}", out)
    return out if len(out) <= limit else out[: limit - 3] + "..."


def _one_line(exc: BaseException) -> str:
    return printable(" ".join(str(exc).split()), 500)


def friendly_errors(fn: F) -> F:
    """Turn TaskexecError into a one-line click error instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TaskexecError as exc:
            raise click.ClickException(printable(exc)) from None

    return wrapper  # type: ignore[return-value]


class Group(click.Group):
    """The ``taskexec`` group: any error a command did not anticipate ends in one line on
    stderr and exit status 1, never a Python traceback (``TASKEXEC_DEBUG=1`` shows it)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except TaskexecError as exc:
            raise click.ClickException(printable(exc)) from None
        except RecursionError:
            if os.environ.get(DEBUG_ENV):
                raise
            raise click.ClickException("input nested too deeply to process") from None
        except OSError as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            where = f"{printable(exc.filename)}: " if exc.filename else ""
            raise click.ClickException(f"{where}{exc.strerror or _one_line(exc)}") from None
        except Exception as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            raise click.ClickException(
                f"unexpected {type(exc).__name__}: {_one_line(exc)} "
                f"(set {DEBUG_ENV}=1 to see where)"
            ) from None
