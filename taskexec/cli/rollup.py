"""``taskexec rollup``: check the rollups against the raw rows, or rebuild them."""

from __future__ import annotations

import time

import click

from ..db import Store
from ._common import db_argument, friendly_errors


@click.command()
@db_argument
@click.option(
    "--verify",
    "action",
    flag_value="verify",
    default=True,
    help="Compare every rollup figure with the raw rows (the default).",
)
@click.option(
    "--rebuild", "action", flag_value="rebuild", help="Recompute every rollup from the raw rows."
)
@friendly_errors
def rollup(db: str, action: str) -> None:
    """Check DB's rollups (the per-task, per-hour aggregates every chart reads) against its
    raw rows, or rebuild them. They are kept exact on every write; a difference means the file
    was written by something that bypassed taskexec's triggers.

    Exit status: 0 when exact (or rebuilt), 1 when --verify finds a difference.
    """
    started = time.perf_counter()
    with Store(db, create=False) as store:
        if action == "rebuild":
            hours = store.rollup_rebuild()
            click.echo(f"rebuilt: {hours:,} task-hours ({time.perf_counter() - started:.1f} s)")
            return
        diffs = store.rollup_verify()
    took = f"{time.perf_counter() - started:.1f} s"
    if not diffs:
        click.echo(f"exact: every rollup figure matches the raw rows ({took})")
        return
    for diff in diffs[:10]:
        click.echo(f"differs: {diff}")
    more = f" (and {len(diffs) - 10} more)" if len(diffs) > 10 else ""
    click.echo(f"{len(diffs)} rollup rows differ{more}; `taskexec rollup --rebuild` fixes them")
    raise SystemExit(1)
