"""Core commands: init, demo, sweep, prune."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import click

from ..db import Store
from ..db.bulkload import default_workers
from ..ingest.demo import default_anchor, parts
from ..model import format_ts, parse_ts, parse_window, utcnow
from ._common import db_argument, friendly_errors

#: Demo history must fit between these (the dates and epochs it derives stay representable).
_DEMO_FIRST = datetime(1970, 1, 1, tzinfo=UTC)
_DEMO_LAST = datetime(9999, 1, 1, tzinfo=UTC)


@click.command()
@db_argument
@friendly_errors
def init(db: str) -> None:
    """Create (or migrate) the database DB: tables, indexes, full-text search."""
    Store(db).close()
    click.echo(f"ready: {db}")


@click.command()
@db_argument
@click.option(
    "--runs",
    default=20_000,
    show_default=True,
    type=click.IntRange(1, 10_000_000),
    help="Logical runs to generate (retries add attempts).",
)
@click.option(
    "--days",
    default=30,
    show_default=True,
    type=click.IntRange(1, 3650),
    help="Days of history, ending at the anchor.",
)
@click.option(
    "--seed",
    default=7,
    show_default=True,
    type=click.IntRange(0, 2**63 - 1),
    help="Random seed (0 to 2**63-1).",
)
@click.option(
    "--end",
    default=None,
    help="Anchor (ISO-8601 with zone). Default: the anchor "
    "this seed used before in DB, else now floored to the hour.",
)
@friendly_errors
def demo(db: str, runs: int, days: int, seed: int, end: str | None) -> None:
    """Fill DB with realistic synthetic history (same seed and anchor: same rows).

    Re-running with the same seed reuses the stored anchor, so it adds nothing.
    """
    t0 = time.perf_counter()
    given = _demo_anchor(parse_ts(end, "--end"), days) if end is not None else None
    with Store(db) as store:
        key = f"demo_anchor:{seed}:{runs}:{days}"
        anchor: datetime
        if given is not None:
            anchor = given
        else:
            stored = store.get_meta(key)
            anchor = _demo_anchor(parse_ts(stored, key) if stored else default_anchor(), days)
        # Made in parts, one per CPU, each in its own process (the same rows as generate()).
        result = store.append_parts(parts(runs, days, seed, anchor, default_workers()))
        store.set_meta(key, format_ts(anchor))
    seconds = time.perf_counter() - t0
    click.echo(
        f"{db}: {result.inserted:,} rows inserted, {result.duplicates:,} already there "
        f"({runs:,} runs over {days} days to {format_ts(anchor)}; {seconds:.1f} s)"
    )


def _demo_anchor(anchor: datetime, days: int) -> datetime:
    """The anchor, when the demo's days before it fit between 1970 and 9998."""
    if not _DEMO_FIRST + timedelta(days=days) <= anchor <= _DEMO_LAST:
        raise click.BadParameter(
            f"{format_ts(anchor)} with --days {days} reaches outside the years "
            f"{_DEMO_FIRST.year} to {_DEMO_LAST.year - 1}",
            param_hint="'--end'",
        )
    return anchor


@click.command()
@db_argument
@click.option(
    "--older-than",
    default="1h",
    show_default=True,
    help="How long a run may stay 'running' before it counts as abandoned.",
)
@friendly_errors
def sweep(db: str, older_than: str) -> None:
    """Mark runs still 'running' after --older-than as 'abandoned' (their worker died)."""
    window = parse_window(older_than)
    with Store(db, create=False) as store:
        count = store.sweep(window.total_seconds())
    click.echo(f"{count} running row(s) marked abandoned")


@click.command()
@db_argument
@click.option("--older-than", required=True, help="Retention window, e.g. 90d, 12w, 24h.")
@friendly_errors
def prune(db: str, older_than: str) -> None:
    """Delete whole traces whose newest attempt is older than --older-than; reclaim space."""
    cutoff = utcnow() - parse_window(older_than)
    with Store(db, create=False) as store:
        result = store.prune(cutoff)
    click.echo(
        f"deleted {result.rows_deleted:,} rows in {result.traces_deleted:,} traces older than "
        f"{format_ts(cutoff)}; file {result.bytes_before:,} -> {result.bytes_after:,} bytes"
    )
