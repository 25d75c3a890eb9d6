"""Merging per-host databases: overlapping rows land once, error groups stay exact, re-runs are
no-ops, and bad sources are refused with a clear message."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

from click.testing import CliRunner

from taskexec.cli import cli
from taskexec.db import Store
from taskexec.ingest.demo import generate
from taskexec.ingest.merge import merge

END = datetime(2025, 11, 6, tzinfo=UTC)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def table(db, sql):
    return sqlite3.connect(db).execute(sql).fetchall()


ROWS = (
    "SELECT span_id, trace_id, parent_span_id, attempt, retry_of, idempotency_key, task_id, "
    "task_slug, status, error_type, error_message, stack_trace, stack_hash, first_seen_error, "
    "scheduled_at, started_at, ended_at, duration_ms, memories_retrieved, retrieval_sources, "
    "files_written, parents, causes, provenance, host, pid, content, attributes "
    "FROM task_executions ORDER BY span_id"
)
GROUPS = "SELECT * FROM error_groups ORDER BY stack_hash"


def test_merge_of_overlapping_databases(tmp_path):
    records = list(generate(runs=900, days=10, seed=11, end=END))
    records.sort(key=lambda r: r.started_at)
    third = len(records) // 3
    host_a, host_b, expected = tmp_path / "a.db", tmp_path / "b.db", tmp_path / "all.db"
    with Store(host_a) as store:  # older two thirds
        store.append_many(records[: 2 * third])
    with Store(host_b) as store:  # newer two thirds: the middle third is in both
        store.append_many(records[third:])
    with Store(expected) as store:  # what one database holding everything looks like
        store.append_many(records)
    target = tmp_path / "merged.db"
    with Store(target) as store:  # the target is not empty: it already has some of b's rows
        store.append_many(records[-50:])

    result = run("merge", host_b, host_a, "--into", target)  # newer first: groups must still fix up
    assert result.exit_code == 0, result.output
    in_b = len(records) - third
    assert f"{host_b}: {in_b - 50:,} inserted, 50 already there" in result.output
    assert f"{host_a}: {third:,} inserted, {third:,} already there" in result.output

    assert table(target, ROWS) == table(expected, ROWS)  # includes first_seen_error
    assert table(target, GROUPS) == table(expected, GROUPS)
    assert len({row[13] for row in table(target, ROWS)}) == 2  # some rows are first-seen errors

    again = merge([host_a, host_b], target)
    assert again.total.inserted == 0 and again.total.duplicates == len(records) + third
    assert table(target, ROWS) == table(expected, ROWS)


def test_merge_into_a_new_database_and_fts(tmp_path):
    source = tmp_path / "a.db"
    with Store(source) as store:
        store.append_many(generate(runs=200, days=3, seed=5, end=END))
    target = tmp_path / "new.db"
    summary = merge([source], target)
    assert summary.total.inserted == table(source, "SELECT count(*) FROM task_executions")[0][0]
    fts = "SELECT count(*) FROM task_executions_fts WHERE task_executions_fts MATCH 'memories'"
    assert table(target, fts) == table(source, fts) != [(0,)]


def test_bad_sources_are_refused(tmp_path):
    target = tmp_path / "t.db"
    Store(target).close()
    same = run("merge", target, "--into", target)
    assert same.exit_code == 1 and "cannot merge into itself" in same.output
    plain = tmp_path / "plain.db"
    sqlite3.connect(plain).execute("CREATE TABLE x (y)").connection.commit()
    other = run("merge", plain, "--into", target)
    assert other.exit_code == 1 and "not a taskexec database" in other.output
    missing = run("merge", tmp_path / "nope.db", "--into", target)
    assert missing.exit_code == 2 and "does not exist" in missing.output
