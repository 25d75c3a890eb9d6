"""``taskexec run -- CMD ARGS...``: run any command (cron, systemd timers, CI) and record it.

Thin: parse the options, call ``taskexec.integrations.command.record_command``, exit with the
command's exit code. The library is imported inside the command, so other commands and
``taskexec --help`` do not load it.
"""

from __future__ import annotations

from datetime import datetime

import click

from ..errors import InvalidRecord
from ..model import parse_ts, parse_window
from ._common import db_option


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = parse_window(value).total_seconds()
    except InvalidRecord:
        raise click.BadParameter(
            f"expected a duration such as 30s, 5m or 2h, got {value!r}"
        ) from None
    if seconds <= 0:
        raise click.BadParameter("must be more than 0")
    return seconds


def _scheduled(ctx: click.Context, param: click.Parameter, value: str | None) -> object:
    if value is None or value == "auto":
        return value
    try:
        return parse_ts(value, "scheduled_at")
    except InvalidRecord as exc:
        raise click.BadParameter(str(exc).removeprefix("scheduled_at: ")) from None


@click.command(
    "run",
    context_settings={"allow_interspersed_args": False},
)
@click.option("--task", "task", metavar="NAME", help="Task name (default: the command's basename).")
@db_option
@click.option(
    "--scheduled-at",
    metavar="auto|ISO",
    callback=_scheduled,
    help="When the run was due: 'auto' (now, rounded down to the minute, as cron fires) or an "
    "ISO-8601 time with a zone.",
)
@click.option(
    "--timeout",
    metavar="D",
    callback=_duration,
    help="Stop the command after D (30s, 5m, 2h): SIGTERM, then SIGKILL after --kill-after; "
    "exit 124, status timeout.",
)
@click.option(
    "--kill-after",
    metavar="D",
    default="5s",
    show_default=True,
    callback=_duration,
    help="With --timeout: how long after SIGTERM to send SIGKILL.",
)
@click.option(
    "--durable",
    is_flag=True,
    help="Commit the running row before the command starts (one commit; waits for another "
    "writer's lock up to 2 s). Default: committed within 20 ms, while the command runs.",
)
@click.option(
    "--schedule",
    "cron",
    metavar="CRON",
    default=None,
    help="The cron expression this command runs on (e.g. '*/15 * * * *', UTC), saved as the "
    "task's schedule so `taskexec check` can tell a missed run; implies --scheduled-at auto.",
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(
    task: str | None,
    db: str,
    scheduled_at: datetime | str | None,
    timeout: float | None,
    kill_after: float,
    durable: bool,
    cron: str | None,
    command: tuple[str, ...],
) -> None:
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
    runs, but a database that cannot take it never stops the command (it is told once)."""
    from ..alerts.schedules import Schedule, save_schedule
    from ..db import Store
    from ..errors import BadInput, TaskexecError

    try:
        found = Schedule(task_slug=task, cron=cron, source="run")
    except BadInput as exc:
        raise click.BadParameter(str(exc), param_hint="--schedule") from None
    try:
        with Store(db) as store:
            save_schedule(store, found)
    except (TaskexecError, OSError, Exception) as exc:  # noqa: BLE001 - the run goes on
        click.echo(f"taskexec: schedule not saved ({exc}); running anyway", err=True)
