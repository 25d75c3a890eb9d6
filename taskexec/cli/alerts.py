"""``taskexec check``, ``taskexec watch`` and ``taskexec schedule``: be told when runs are
missed, late, stuck or slow, and when something new breaks."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import click

from ..alerts.check import CheckResult, check, notify_urls
from ..alerts.notify import Notifier
from ..alerts.schedules import THRESHOLDS, Schedule, save_schedule
from ..db import Store, awareness
from ..errors import TaskexecError
from ..model import format_ts, parse_window, utcnow
from ._common import db_argument, db_option, friendly_errors, printable
from .textable import render, terminal_width

_NOTIFY = click.option(
    "--notify",
    "urls",
    multiple=True,
    metavar="URL",
    help="An apprise notification URL (json://, mailto://, slack://, ntfy://, ...); repeat for "
    "several. Default: $TASKEXEC_NOTIFY (space separated).",
)
_BASE_URL = click.option(
    "--base-url",
    default=None,
    help="Where `taskexec serve` is reachable, for links to trace pages "
    "(default: $TASKEXEC_BASE_URL, then http://127.0.0.1:8001).",
)
_NO_RESOLVED = click.option(
    "--no-resolved", is_flag=True, help="Do not send a message when an alert resolves."
)


def _run_check(db: str, urls: tuple[str, ...], base_url: str | None, resolved: bool) -> CheckResult:
    notifier = Notifier(notify_urls(urls), base_url)
    with Store(db, create=False) as store:
        return check(store, notifier=notifier, notify_resolved=resolved)


def _report(result: CheckResult) -> None:
    for alert in result.opened:
        click.echo(f"FIRED     {alert['kind']:<10} {printable(alert['title'], 300)}")
    for alert in result.resolved:
        click.echo(f"RESOLVED  {alert['kind']:<10} {printable(alert['title'], 300)}")
    told = (
        f"; {result.sent} message{'' if result.sent == 1 else 's'} sent"
        if result.sent or result.failed
        else ""
    )
    if result.failed:
        told += f", {result.failed} failed (retried at the next check)"
    if result.suppressed:
        told += f", {result.suppressed} held back by the rate limit"
    click.echo(
        f"{len(result.opened)} fired, {len(result.resolved)} resolved, {result.open_now} open{told}"
    )


@click.command("check")
@db_argument
@_NOTIFY
@_BASE_URL
@_NO_RESOLVED
def check_command(db: str, urls: tuple[str, ...], base_url: str | None, no_resolved: bool) -> None:
    """Look for missed, late, stuck and slow runs, new and returning errors and failure
    spikes in DB; open an alert for each new finding, resolve those that are gone, and send a
    message about each change. Each alert fires once: running check again sends nothing new.

    For cron: exit status 0 when nothing fired, 1 when an alert fired, 2 on an error (bad
    database, bad notification URL).
    """
    try:
        result = _run_check(db, urls, base_url, not no_resolved)
    except (TaskexecError, sqlite3.Error) as exc:
        click.echo(f"Error: {printable(exc)}", err=True)
        raise SystemExit(2) from None
    _report(result)
    raise SystemExit(1 if result.fired else 0)


@click.command()
@db_argument
@_NOTIFY
@_BASE_URL
@_NO_RESOLVED
@click.option(
    "--every",
    default="60s",
    show_default=True,
    help="How often to check: 30s, 5m, 1h...",
)
@click.option(
    "--times",
    type=click.IntRange(1, None),
    default=None,
    help="Stop after this many checks (default: run until interrupted).",
)
@friendly_errors
def watch(
    db: str,
    urls: tuple[str, ...],
    base_url: str | None,
    no_resolved: bool,
    every: str,
    times: int | None,
) -> None:
    """Run `taskexec check` on DB again and again (every minute by default), printing what
    fires and resolves; an error in one round is printed and the next round goes on."""
    interval = parse_window(every).total_seconds()
    if not 1 <= interval <= 86400:
        raise click.BadParameter("must be from 1s to 24h", param_hint="--every")
    notifier = Notifier(notify_urls(urls), base_url)  # a bad URL stops here, at once
    rounds = 0
    try:
        while times is None or rounds < times:
            rounds += 1
            started = time.monotonic()
            try:
                with Store(db, create=False) as store:
                    result = check(store, notifier=notifier, notify_resolved=not no_resolved)
                if result.opened or result.resolved or rounds == 1:
                    click.echo(f"{format_ts(utcnow())}  ", nl=False)
                    _report(result)
            except (TaskexecError, sqlite3.Error) as exc:
                click.echo(f"{format_ts(utcnow())}  error: {printable(exc)}", err=True)
            if times is not None and rounds >= times:
                break
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
    except KeyboardInterrupt:
        pass


@click.group()
def schedule() -> None:
    """When tasks should run, so `taskexec check` can tell when a run is missed."""


def _seconds(value: str | None, hint: str) -> float | None:
    if value is None:
        return None
    try:
        return parse_window(value).total_seconds()
    except TaskexecError as exc:
        raise click.BadParameter(str(exc), param_hint=hint) from None


def _thresholds(values: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in values:
        name, sep, number = item.partition("=")
        try:
            if not sep:
                raise ValueError
            out[name.strip()] = float(number)
        except ValueError:
            raise click.BadParameter(
                f"expected NAME=NUMBER, got {item!r} (names: {', '.join(THRESHOLDS)})",
                param_hint="--threshold",
            ) from None
    return out


@schedule.command("add")
@click.argument("task")
@db_option
@click.option("--cron", default=None, help="A cron expression, e.g. '*/15 * * * *'.")
@click.option("--every", default=None, help="Or an interval: 10m, 1h, 1d...")
@click.option("--tz", "timezone", default="UTC", show_default=True, help="The cron's time zone.")
@click.option("--grace", default="5m", show_default=True, help="How late a start may be.")
@click.option("--max-duration", default=None, help="Longest normal run, e.g. 10m.")
@click.option(
    "--threshold",
    "thresholds",
    multiple=True,
    metavar="NAME=NUMBER",
    help=f"Override a detection threshold for this task ({', '.join(THRESHOLDS)}).",
)
@friendly_errors
def schedule_add(
    task: str,
    db: str,
    cron: str | None,
    every: str | None,
    timezone: str,
    grace: str,
    max_duration: str | None,
    thresholds: tuple[str, ...],
) -> None:
    """Say when TASK should run (a cron expression or an interval); replaces its schedule."""
    found = Schedule(
        task_slug=task,
        cron=cron,
        every_seconds=_seconds(every, "--every"),
        timezone=timezone,
        grace_seconds=_seconds(grace, "--grace") or 0.0,
        max_duration_seconds=_seconds(max_duration, "--max-duration"),
        thresholds=_thresholds(thresholds),
    )
    with Store(db) as store:
        save_schedule(store, found)
    click.echo(f"{task}: {found.describe()}, grace {found.grace_seconds:g} s")


@schedule.command("list")
@db_argument
@friendly_errors
def schedule_list(db: str) -> None:
    """List the schedules with each task's last start and next expected slot."""
    with Store(db, create=False) as store:
        rows = awareness.schedules(store)
    if not rows:
        click.echo("(no schedules)")
        return
    table: list[dict[str, Any]] = [
        {
            "task": r["task_slug"],
            "when": r["cron"] or f"every {r['every_seconds']:g} s",
            "tz": r["timezone"],
            "grace_s": r["grace_seconds"],
            "last start": r["last_started_at"] or "-",
            "expected": r["expected_at"] or "(at the next check)",
            "source": r["source"],
        }
        for r in rows
    ]
    click.echo(render(table, width=terminal_width()))


@schedule.command("remove")
@click.argument("task")
@db_option
@friendly_errors
def schedule_remove(task: str, db: str) -> None:
    """Forget TASK's schedule."""
    with Store(db, create=False) as store:
        found = awareness.remove_schedule(store, task)
    if not found:
        raise click.ClickException(f"no schedule for {task!r}")
    click.echo(f"{task}: schedule removed")
