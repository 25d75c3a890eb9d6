"""Commands that fill the database from outside: backfill, import-otlp, export-otlp, merge.

Thin: parse options, call ``taskexec.ingest.backfill`` / ``otlp`` / ``merge``, print the
summary they return.
Importers exit 0 when nothing was skipped and 1 when something was (listed on stderr).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

import click

from ..config import DEFAULT_DB, ENV_VAR
from ..db import Store
from ..ingest import backfill as backfill_lib
from ..ingest import merge as merge_lib
from ..ingest import otlp
from ..model import parse_ts, window_start
from ..version import __version__
from ._common import db_argument, db_option, friendly_errors, printable

_SINCE_HELP = (
    "Only runs that started at or after TS: an ISO-8601 time with a zone, or a window back "
    "from now (30m, 24h, 7d, 2w, 1.5d), or all."
)


def _since(value: str | None) -> datetime | None:
    """``--since`` in the window grammar of every face (``model.window_start``)."""
    return parse_ts(window_start(value, name="--since")) if value else None


@contextmanager
def _progress(length: int, label: str) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on stderr when it is a terminal; ``None`` (no cost) otherwise."""
    if not sys.stderr.isatty():
        yield None
        return
    with click.progressbar(length=length, label=label, file=sys.stderr) as bar:
        yield bar.update


def _line(label: str, value: int, note: str = "") -> None:
    click.echo(f"{label + ':':<20}{value:>10,}{'  ' + note if note else ''}")


@click.command()
@click.argument("results_dir", type=click.Path(exists=True))
@db_option
@click.option("--dry-run", is_flag=True, help="Read and validate everything; write nothing.")
@click.option("--since", metavar="TS", help=_SINCE_HELP)
@click.option(
    "--glob",
    "patterns",
    multiple=True,
    metavar="PATTERN",
    help="File names to read (repeatable). Default: *.json, *.jsonl, *.ndjson.",
)
@click.option(
    "--max-mb",
    default=backfill_lib.DEFAULT_MAX_BYTES // 2**20,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="Larger files are reported, not read (1 to 10000).",
)
@click.option(
    "--follow-symlinks",
    is_flag=True,
    help="Read symbolic links that lead outside RESULTS_DIR and walk linked directories "
    "(default: such links are reported, not followed).",
)
@friendly_errors
def backfill(
    results_dir: str,
    db: str,
    dry_run: bool,
    since: str | None,
    patterns: tuple[str, ...],
    max_mb: int,
    follow_symlinks: bool,
) -> None:
    """Import historical task result files (JSON, JSON lists, JSON Lines) from RESULTS_DIR.

    Walks RESULTS_DIR recursively. Rows get provenance 'backfill' and an idempotency key from
    what identifies the execution (task, start, attempt, host, pid, slot), so re-running inserts
    nothing twice; a file that carries a live attempt's span_id matches that row. Retries of one
    run are linked (same trace, retry_of). Files and records that cannot be imported are listed
    on stderr with the reason; every good one is still imported. Symbolic links leading outside
    RESULTS_DIR are reported, not read, unless --follow-symlinks. Exit status: 0 when nothing
    was skipped, 1 when a file or a record was. Accepted shapes and field names:
    docs/backfill.md.
    """
    cutoff = _since(since)  # a bad --since fails before any work
    summary = backfill_lib.BackfillSummary(dry_run=dry_run)
    paths = backfill_lib.find_files(
        results_dir,
        patterns or backfill_lib.DEFAULT_PATTERNS,
        follow_symlinks=follow_symlinks,
        summary=summary,
    )
    with _progress(len(paths), "backfill") as advance:
        summary = backfill_lib.backfill(
            results_dir,
            db,
            dry_run=dry_run,
            since=cutoff,
            max_bytes=max_mb * 2**20,
            progress=advance,
            paths=paths,
            follow_symlinks=follow_symlinks,
            summary=summary,
        )
    for problem in summary.problems:
        click.echo(f"skipped: {printable(problem)}", err=True)
    if dry_run:
        click.echo(
            f"dry run of {printable(results_dir)} against {printable(db)}: nothing was written"
        )
    _line("files scanned", summary.files_scanned)
    _line("records found", summary.records_found)
    _line("would insert" if dry_run else "inserted", summary.inserted)
    _line("duplicates", summary.duplicates, "already in the database or repeated in the input")
    if since:
        _line("before --since", summary.before_since, "not imported")
    if summary.not_run:
        _line("not run yet", summary.not_run, "pending, queued...: no execution, not imported")
    if summary.naive_timestamps:
        _line("zone-less times", summary.naive_timestamps, "timestamps without a zone, read as UTC")
    _line("skipped files", summary.files_skipped, "see stderr" if summary.files_skipped else "")
    _line(
        "skipped records", summary.records_skipped, "see stderr" if summary.records_skipped else ""
    )
    if not summary.ok:
        raise SystemExit(1)


@click.command("import-otlp")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@db_option
@friendly_errors
def import_otlp(files: tuple[str, ...], db: str) -> None:
    """Import OpenTelemetry spans from OTLP/JSON FILES (one document, or one per line).

    Reads the OpenTelemetry Collector's file exporter output as well as single documents.
    Spans with a task attribute (taskexec.task_slug / taskexec.task_id, or
    cicd.pipeline.task.name) become rows with provenance 'otlp'; other spans are counted and
    skipped. Re-importing inserts nothing. Exit status: 0 when every file and task span was
    read, 1 when one was skipped (listed on stderr). Attribute mapping: docs/scale.md.
    """
    summary = otlp.import_files(files, db)
    for problem in summary.problems:
        click.echo(f"skipped: {printable(problem)}", err=True)
    _line("files", summary.files)
    _line("spans", summary.spans)
    _line("task spans", summary.tasks)
    _line("not tasks", summary.not_tasks, "spans without a task attribute, ignored")
    _line("inserted", summary.inserted)
    _line("duplicates", summary.duplicates, "already in the database")
    _line("skipped", len(summary.problems), "see stderr" if summary.problems else "")
    if not summary.ok:
        raise SystemExit(1)


@click.command("export-otlp")
@db_argument
@click.option("--since", metavar="TS", help=_SINCE_HELP)
@friendly_errors
def export_otlp(db: str, since: str | None) -> None:
    """Write executions as OTLP/JSON spans to stdout, one document per line.

    The format is the Collector file exporter's, and carries every column as taskexec.*
    attributes, so `taskexec import-otlp` into another database reproduces the rows:

        taskexec export-otlp a.db > spans.json && taskexec import-otlp spans.json --db b.db
    """
    cutoff = _since(since)
    skipped: list[str] = []

    def bad_row(row_id: object, exc: Exception) -> None:
        where = f"row id {row_id}" if row_id is not None else "unreadable from here on"
        skipped.append(f"{db}: {where}: {merge_lib.error_text(exc)}")
        click.echo(f"skipped: {printable(skipped[-1])}", err=True)

    with Store.open_readonly(db) as store:
        records = merge_lib.iter_stored_records(store, since=cutoff, on_error=bad_row)
        count = otlp.export(records, sys.stdout, version=__version__)
    click.echo(f"exported {count:,} executions", err=True)
    if skipped:
        click.echo(f"skipped {len(skipped):,} rows (listed above)", err=True)
        raise SystemExit(1)


@click.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--db",
    "-d",
    "--into",
    "into",
    envvar=ENV_VAR,
    default=DEFAULT_DB,
    metavar="DB",
    type=click.Path(dir_okay=False),
    help=f"The database to merge into, created if missing (default: ${ENV_VAR}, then "
    f"./{DEFAULT_DB}; --into is the older spelling).",
)
@friendly_errors
def merge(sources: tuple[str, ...], into: str) -> None:
    """Merge other taskexec databases (e.g. one per host) SOURCES into --db, idempotently.

    Rows already in the target (same idempotency key or span id) are counted as duplicates,
    so merging again inserts nothing; error groups stay exact. Sources are only read. A source
    that is not a taskexec database, and a row that is not a valid record, is listed on stderr
    and skipped; the rest is merged. Exit status: 0 when nothing was skipped, 1 otherwise.
    """
    summary = merge_lib.merge(sources, into)
    for problem in summary.problems:
        click.echo(f"skipped: {printable(problem)}", err=True)
    for source, result in summary.sources.items():
        click.echo(
            f"{printable(source)}: {result.inserted:,} inserted, "
            f"{result.duplicates:,} already there"
        )
    total = summary.total
    click.echo(
        f"{printable(into)}: {total.inserted:,} rows inserted, {total.duplicates:,} duplicates"
    )
    if not summary.ok:
        raise SystemExit(1)
