"""Shared click pieces: the database option (and argument), the install hint of a missing
extra, error translation and the group that keeps Python tracebacks away from users."""

from __future__ import annotations

import functools
import importlib.util
import os
import re
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..config import DEFAULT_DB, ENV_VAR, default_db
from ..errors import TaskexecError

F = TypeVar("F", bound=Callable[..., Any])

#: Set this environment variable to see the traceback of an unexpected error.
DEBUG_ENV = "TASKEXEC_DEBUG"

_DB_HELP = f"Database file (default: ${ENV_VAR}, then ./{DEFAULT_DB})."

#: ``--db DB`` (``-d DB``): how every command is given its database. Defaults to
#: ``$TASKEXEC_DB``, then ``./taskexec.db``.
db_option = click.option(
    "--db",
    "-d",
    "db",
    envvar=ENV_VAR,
    default=DEFAULT_DB,
    show_default=False,
    metavar="DB",
    type=click.Path(dir_okay=False),
    help=_DB_HELP,
)


def db_argument(fn: F) -> F:
    """``--db DB`` plus the database as an optional first argument, for commands that take no
    other argument (``taskexec serve demo.db``, as with ``datasette demo.db``). Giving both
    is an error unless they agree."""

    @functools.wraps(fn)
    def wrapper(
        *args: Any, db_path: str | None = None, db: str | None = None, **kwargs: Any
    ) -> Any:
        if db_path is not None and db is not None and db_path != db:
            raise click.UsageError(f"two databases given: {db_path!r} and --db {db!r}; give one")
        return fn(*args, db=db_path or db or default_db(), **kwargs)

    wrapper = click.argument(
        "db_path", metavar="[DB]", required=False, type=click.Path(dir_okay=False)
    )(wrapper)
    wrapper = click.option(
        "--db",
        "-d",
        "db",
        default=None,
        metavar="DB",
        type=click.Path(dir_okay=False),
        help=_DB_HELP + " Or give it as the first argument.",
    )(wrapper)
    return wrapper  # type: ignore[return-value]


#: What each face needs installed, by extra, checked before a command of that face starts.
EXTRAS: dict[str, tuple[str, ...]] = {
    "datasette": ("datasette", "datasette_dashboards", "yaml", "uvicorn"),
    "mcp": ("mcp", "pydantic"),
    "notebooks": ("pandas", "matplotlib", "nbclient", "nbconvert", "nbformat", "ipykernel"),
}


def install_hint(command: str, extra: str, module: str) -> str:
    """The one line every face gives when its extra is not installed."""
    return (
        f"taskexec {command} needs {module}, which comes with the {extra} extra: "
        f"pip install 'taskexec[{extra}]'"
    )


def require_extra(command: str, extra: str, modules: tuple[str, ...] = ()) -> None:
    """Stop with ``install_hint`` when a module of ``extra`` (or ``modules``) is missing."""
    for module in modules or EXTRAS[extra]:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise TaskexecError(install_hint(command, extra, module))


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
