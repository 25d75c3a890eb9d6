"""``taskexec doctor`` and ``taskexec replay``: the file's health and the spool's backlog."""

from __future__ import annotations

import click

from ..db import Store
from ..db.doctor import diagnose
from ..db.writer import replay as replay_spool
from ._common import db_argument, friendly_errors

_MARKS = {True: "ok  ", False: "FAIL", None: "info"}


@click.command()
@db_argument
@click.option("--full", is_flag=True, help="Run SQLite's full integrity check (reads every page).")
@friendly_errors
def doctor(db: str, full: bool) -> None:
    """Check DB and its spool: integrity, journal mode, schema, full-text index, records
    waiting to be written (and any that could not be), attempts still running.

    Exit status: 0 when every check passes, 1 when one fails.
    """
    found = diagnose(db, full=full)
    width = max(len(c.name) for c in found.checks)
    click.echo(found.path)
    for check in found.checks:
        click.echo(f"  {_MARKS[check.ok]}  {check.name.ljust(width)}  {check.detail}")
    raise SystemExit(0 if found.healthy else 1)


@click.command()
@db_argument
@click.option(
    "--into",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the spooled records into this database instead of DB (DB is unusable).",
)
@friendly_errors
def replay(db: str, into: str | None) -> None:
    """Write the records spooled for DB (while it could not be written) into it now.

    A running recorder does this by itself once the file works again; this command is for a
    file whose writers have stopped. Replaying twice stores nothing twice.
    """
    with Store(into or db) as store:
        result = replay_spool(store, db)
    click.echo(
        f"replayed {result.rows} attempts and {result.finishes} outcomes "
        f"from {result.files} spool files"
    )
    if result.rejected:
        click.echo(f"{result.rejected} records could not be applied: see `taskexec doctor`")
