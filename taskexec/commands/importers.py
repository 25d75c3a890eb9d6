"""Commands that fill the database from outside: backfill, import-otlp, export-otlp, merge.

Thin: parse options, call ``taskexec.backfill`` / ``otlp`` / ``merge``, print a summary.
Importers exit 0 when nothing was skipped and 1 when something was (listed on stderr).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click

from .. import __version__, otlp
from .. import backfill as backfill_lib
from .. import merge as merge_lib
from ..model import parse_when
from ..store import Store
from ._common import db_option, friendly_errors

_SINCE_HELP = "Only runs that started at or after TS (ISO-8601 with a zone, or a window: 30d, 12h)."


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
    help="Larger files are reported, not read.",
)
@friendly_errors
def backfill(
    results_dir: str,
    db: str,
    dry_run: bool,
    since: str | None,
    patterns: tuple[str, ...],
    max_mb: int,
) -> None:
    """Import historical task result files (JSON, JSON lists, JSON Lines) from RESULTS_DIR.

    Walks RESULTS_DIR recursively. Rows get provenance 'backfill' and the idempotency key a
    live recording of the same run gets, so re-running, or backfilling over live data, inserts
    nothing twice. Files and records that cannot be imported are listed on stderr with the
    reason; every good one is still imported. Exit status: 0 when nothing was skipped, 1 when
    a file or a record was. Accepted shapes and field names: docs/backfill.md.
    """
    paths = backfill_lib.find_files(results_dir, patterns or backfill_lib.DEFAULT_PATTERNS)
    with _progress(len(paths), "backfill") as advance:
        report = backfill_lib.backfill(
            results_dir,
            db,
            dry_run=dry_run,
            since=parse_when(since) if since else None,
            max_bytes=max_mb * 2**20,
            progress=advance,
            paths=paths,
        )
    for problem in report.problems:
        click.echo(f"skipped: {problem}", err=True)
    if dry_run:
        click.echo(f"dry run of {results_dir} against {db}: nothing was written")
    _line("files scanned", report.files_scanned)
    _line("records found", report.records_found)
    _line("would insert" if dry_run else "inserted", report.inserted)
    _line("duplicates", report.duplicates, "already in the database or repeated in the input")
    if since:
        _line("before --since", report.before_since, "not imported")
    if report.naive_timestamps:
        _line("zone-less times", report.naive_timestamps, "timestamps without a zone, read as UTC")
    _line("skipped files", report.files_skipped, "see stderr" if report.files_skipped else "")
    _line("skipped records", report.records_skipped, "see stderr" if report.records_skipped else "")
    if not report.ok:
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
    report = otlp.import_files(files, db)
    for problem in report.problems:
        click.echo(f"skipped: {problem}", err=True)
    _line("files", report.files)
    _line("spans", report.spans)
    _line("task spans", report.tasks)
    _line("not tasks", report.not_tasks, "spans without a task attribute, ignored")
    _line("inserted", report.inserted)
    _line("duplicates", report.duplicates, "already in the database")
    _line("skipped", len(report.problems), "see stderr" if report.problems else "")
    if not report.ok:
        raise SystemExit(1)


@click.command("export-otlp")
@db_option
@click.option("--since", metavar="TS", help=_SINCE_HELP)
@friendly_errors
def export_otlp(db: str, since: str | None) -> None:
    """Write executions as OTLP/JSON spans to stdout, one document per line.

    The format is the Collector file exporter's, and carries every column as taskexec.*
    attributes, so `taskexec import-otlp` into another database reproduces the rows:

        taskexec export-otlp --db a.db > spans.json && taskexec import-otlp spans.json --db b.db
    """
    cutoff = parse_when(since) if since else None
    with Store.open_readonly(db) as store:
        records = map(merge_lib.record_from_row, merge_lib.iter_rows(store, since=cutoff))
        count = otlp.export(records, sys.stdout, version=__version__)
    click.echo(f"exported {count:,} executions", err=True)


@click.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--into",
    "into",
    required=True,
    type=click.Path(dir_okay=False),
    help="Target database (created if missing).",
)
@friendly_errors
def merge(sources: tuple[str, ...], into: str) -> None:
    """Merge other taskexec databases (e.g. one per host) SOURCES into --into, idempotently.

    Rows already in the target (same idempotency key or span id) are counted as duplicates,
    so merging again inserts nothing; error groups stay exact. Sources are only read.
    """
    report = merge_lib.merge(sources, into)
    for source, result in report.sources.items():
        click.echo(f"{source}: {result.inserted:,} inserted, {result.duplicates:,} already there")
    total = report.total
    click.echo(f"{into}: {total.inserted:,} rows inserted, {total.duplicates:,} duplicates")
