"""Shared click pieces: the database argument/option and error translation."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..config import DEFAULT_DB, ENV_VAR
from ..errors import TaskexecError

F = TypeVar("F", bound=Callable[..., Any])

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


def friendly_errors(fn: F) -> F:
    """Turn TaskexecError into a one-line click error instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TaskexecError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper  # type: ignore[return-value]
