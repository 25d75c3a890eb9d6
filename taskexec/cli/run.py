"""``taskexec run -- CMD ARGS...``: run any command (cron, systemd timers, CI) and record it.

Thin: parse the options, call ``taskexec.integrations.command.record_command``, exit with the
command's exit code. It starts before every job it wraps, so it starts fast: the options are
one table, ``OPTIONS``, from which both the click command (``run``, made when first asked
for) and ``fast_main`` work. The console script hands ``taskexec run ...`` to ``fast_main``,
which parses it as click would without importing click (20-35 ms) and leaves to click
anything it does not take as it is: ``--help``, an unknown or oddly written option, a missing
or bad value (click then says what is wrong, exactly as before). The library is imported
inside the command, so other commands and ``taskexec --help`` do not load it.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

from ..config import DEFAULT_DB, ENV_VAR
from ..errors import InvalidRecord
from ..model import parse_ts, parse_window

if TYPE_CHECKING:
    import click


class Invalid(Exception):
    """A bad option value: click reports it as a usage error (exit status 2)."""


class BadSchedule(Invalid):
    """A ``--schedule`` that is not a cron expression (found before anything runs)."""


def _duration(value: str) -> float:
    try:
        seconds = parse_window(value).total_seconds()
    except InvalidRecord:
        raise Invalid(f"expected a duration such as 30s, 5m or 2h, got {value!r}") from None
    if seconds <= 0:
        raise Invalid("must be more than 0")
    return seconds


def _scheduled(value: str) -> datetime | str:
    if value == "auto":
        return value
    try:
        return parse_ts(value, "scheduled_at")
    except InvalidRecord as exc:
        raise Invalid(str(exc).removeprefix("scheduled_at: ")) from None


class Option(NamedTuple):  # not a dataclass: making one costs ~1 ms at every start
    """One option of ``taskexec run``, as click declares it and ``fast_main`` reads it."""

    flags: tuple[str, ...]
    dest: str  # the command's keyword argument
    help: str
    metavar: str | None = None
    default: str | None = None
    show_default: bool = False
    flag: bool = False  # takes no value: True when given
    convert: Callable[[str], Any] | None = None  # the value -> the argument; Invalid: bad
    envvar: str | None = None  # read when the option is not given (an empty one is not)
    file: bool = False  # a file's path: a directory is a usage error (click.Path)


#: The options of ``taskexec run``, in ``--help`` order. ``--db`` is declared for click by
#: ``_common.db_option`` (every command's); its row here says what that one does.
OPTIONS: tuple[Option, ...] = (
    Option(("--task",), "task", "Task name (default: the command's basename).", "NAME"),
    Option(("--db", "-d"), "db", "", "DB", DEFAULT_DB, envvar=ENV_VAR, file=True),
    Option(
        ("--scheduled-at",),
        "scheduled_at",
        "When the run was due: 'auto' (now, rounded down to the minute, as cron fires) or an "
        "ISO-8601 time with a zone.",
        "auto|ISO",
        convert=_scheduled,
    ),
    Option(
        ("--timeout",),
        "timeout",
        "Stop the command after D (30s, 5m, 2h): SIGTERM, then SIGKILL after --kill-after; "
        "exit 124, status timeout.",
        "D",
        convert=_duration,
    ),
    Option(
        ("--kill-after",),
        "kill_after",
        "With --timeout: how long after SIGTERM to send SIGKILL.",
        "D",
        "5s",
        show_default=True,
        convert=_duration,
    ),
    Option(
        ("--durable",),
        "durable",
        "Commit the running row before the command starts (one commit; waits for another "
        "writer's lock up to 2 s). Default: committed within 20 ms, while the command runs.",
        flag=True,
    ),
    Option(
        ("--schedule",),
        "cron",
        "The cron expression this command runs on (e.g. '*/15 * * * *', UTC), saved as the "
        "task's schedule so `taskexec check` can tell a missed run; implies --scheduled-at auto.",
        "CRON",
    ),
)


def execute(
    task: str | None,
    db: str,
    scheduled_at: datetime | str | None,
    timeout: float | None,
    kill_after: float,
    durable: bool,
    cron: str | None,
    command: tuple[str, ...],
) -> NoReturn:
    """Run COMMAND and record it: `taskexec run [OPTIONS] -- CMD ARGS...`.

    Its stdin, stdout and stderr pass through unchanged and this exits with its exit code
    (128+N when signal N ended it, 127 when it is not found, 126 when it cannot be executed,
    124 on --timeout). SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are forwarded to
    it. One row per run: running at the start, then the status, duration, the last lines of
    stderr as the error message, host, pid and the command line (scrubbed). Recording never
    changes the exit code: an unusable database spools. Details: docs/integrations.md.
    """
    from ..integrations import command as command_lib

    if cron is not None:
        _save_schedule(db, task or command_lib.task_name(command), cron)
        scheduled_at = scheduled_at or "auto"
    when = scheduled_at if isinstance(scheduled_at, datetime) else None
    if scheduled_at == "auto":
        when = command_lib.scheduled_minute()
    result = command_lib.record_command(
        db,
        command,
        durable=durable,
        task=task,
        scheduled_at=when,
        timeout=timeout,
        kill_after=kill_after,
    )
    raise SystemExit(result.exit_code)


def _save_schedule(db: str, task: str, cron: str) -> None:
    """Keep the task's schedule current; a bad expression is a usage error before anything
    runs (BadSchedule), but a database that cannot take it never stops the command (it is
    told once)."""
    from ..alerts.schedules import Schedule, save_schedule
    from ..db import Store
    from ..errors import BadInput

    try:
        found = Schedule(task_slug=task, cron=cron, source="run")
    except BadInput as exc:
        raise BadSchedule(str(exc)) from None
    try:
        with Store(db) as store:
            save_schedule(store, found)
    except Exception as exc:  # noqa: BLE001 - whatever it is, the run goes on
        sys.stderr.write(f"taskexec: schedule not saved ({exc}); running anyway\n")
        sys.stderr.flush()


# -- without click: the console script's ``taskexec run`` ---------------------------------------


class NotMine(Exception):
    """Arguments ``parse`` leaves to click (help, a usage error, a form it does not take)."""


def parse(args: Sequence[str], environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """``run``'s arguments (what follows ``run``) as ``execute``'s keyword arguments, read as
    click reads them: options until ``--`` or the first argument that is not one (the rest is
    the command, as given), ``--name value`` or ``--name=value``, ``-d value``, the last of
    a repeated option, then each value converted. Raises NotMine for anything else, including
    every usage error, so that click reports it in its own words."""
    by_flag = {flag: option for option in OPTIONS for flag in option.flags}
    given: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            break
        if arg[:1] != "-" or len(arg) == 1:  # the command's first word
            i -= 1
            break
        name, eq, value = arg.partition("=")
        option = by_flag.get(name)
        if option is None or (eq and (option.flag or not name.startswith("--"))):
            raise NotMine(arg)  # -h, --help, a typo, --durable=1, -dX, -d=X: click's to say
        if option.flag:
            given[option.dest] = True
        elif eq:
            given[option.dest] = value
        elif i < len(args):
            given[option.dest] = args[i]
            i += 1
        else:
            raise NotMine(arg)  # no value
    command = tuple(args[i:])
    if not command:
        raise NotMine("no command")
    values: dict[str, Any] = {"command": command}
    for option in OPTIONS:
        raw = given.get(option.dest)
        if option.flag:
            values[option.dest] = bool(raw)
            continue
        if raw is None and option.envvar:
            raw = environ.get(option.envvar) or None
        if raw is None:
            raw = option.default
        if raw is not None and option.file and os.path.isdir(raw):
            raise NotMine(raw)
        if raw is not None and option.convert is not None:
            try:
                values[option.dest] = option.convert(raw)
            except Exception as exc:  # noqa: BLE001 - whatever it is, click says it
                raise NotMine(raw) from exc
        else:
            values[option.dest] = raw
    return values


def fast_main(args: Sequence[str], *, script: bool = False) -> None:
    """``taskexec run ARGS`` without click: runs the command and exits with its exit code;
    returns (having done nothing) when click must take the arguments instead.

    ``script``: this is the console script, whose garbage collector ``cli/__init__.py``
    turned off at the start. The imports allocate ~15,000 objects that all live as long as
    the process and would have cost ~30 collections (5-10 ms); they are frozen once the
    library is in (``gc.freeze``: later collections do not walk them) and the collector is
    turned back on before the command starts. At the end the interpreter's exit would walk
    every object again (10-20 ms): they are frozen then too and left to the OS; the exit is
    otherwise the same (atexit handlers, streams flushed, modules torn down).
    """
    try:
        values = parse(args)
    except NotMine:
        return
    if script:
        from ..integrations import command  # noqa: F401 - the library, with the collector off

        gc.freeze()
        gc.enable()
    try:
        execute(**values)
    except SystemExit:
        if script:
            gc.freeze()
        raise
    except BadSchedule:
        return  # found before anything ran: click says what is wrong with it
    except (Exception, KeyboardInterrupt) as exc:
        _as_click_would(exc)


def _as_click_would(exc: BaseException) -> NoReturn:
    """End as the ``taskexec`` click group ends on an error the command did not anticipate
    (``_common.Group``: one line and exit status 1, ``TASKEXEC_DEBUG=1`` for the traceback;
    "Aborted!" on Ctrl-C) by raising it inside that group: click is imported only here."""
    import click

    from ._common import Group

    class Raise(click.Group):
        def invoke(self, ctx: click.Context) -> Any:
            raise exc

    class Report(Group, Raise):  # Group's error handling around Raise.invoke
        pass

    Report("taskexec", invoke_without_command=True).main([], prog_name="taskexec")
    raise SystemExit(1)  # pragma: no cover - main() exits


# -- with click ---------------------------------------------------------------------------------


@cache
def _command() -> click.Command:
    """The click command, made from ``OPTIONS`` (``--help``, usage errors, ``CliRunner``)."""
    import click

    from ._common import db_option

    def adapt(convert: Callable[[str], Any]) -> Callable[..., Any]:
        def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
            if value is None:
                return None
            try:
                return convert(value)
            except Invalid as exc:
                raise click.BadParameter(str(exc)) from None

        return callback

    def run(**values: Any) -> None:
        try:
            execute(**values)
        except BadSchedule as exc:
            raise click.BadParameter(str(exc), param_hint="--schedule") from None

    run.__doc__ = execute.__doc__
    made: Callable[..., Any] = click.argument(
        "command", nargs=-1, required=True, type=click.UNPROCESSED
    )(run)
    for option in reversed(OPTIONS):  # decorators: the last one is applied first
        if option.dest == "db":
            made = db_option(made)
            continue
        settings: dict[str, Any] = {"metavar": option.metavar, "help": option.help}
        if option.default is not None:
            settings["default"] = option.default
        if option.show_default:
            settings["show_default"] = True
        if option.flag:
            settings["is_flag"] = True
        if option.convert is not None:
            settings["callback"] = adapt(option.convert)
        made = click.option(*option.flags, option.dest, **settings)(made)
    return click.command("run", context_settings={"allow_interspersed_args": False})(made)


def __getattr__(name: str) -> Any:
    """``run``, the click command, made when first asked for (click is not imported before)."""
    if name == "run":
        return _command()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
