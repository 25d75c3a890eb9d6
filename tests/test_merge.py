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


def test_a_bad_source_or_row_is_skipped_and_the_rest_merged(tmp_path):
    good = tmp_path / "good.db"
    with Store(good) as store:
        store.append_many(generate(runs=20, days=1, seed=2, end=END))
    broken = tmp_path / "broken.db"
    with Store(broken) as store:
        store.append_many(generate(runs=10, days=1, seed=3, end=END))
    conn = sqlite3.connect(broken)
    conn.execute("UPDATE task_executions SET started_at = 'soon' WHERE id = 3")
    conn.execute("UPDATE task_executions SET task_slug = ' ' WHERE id = 5")
    conn.commit()
    conn.close()
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"\x00not sqlite" * 500)
    newer = tmp_path / "newer.db"
    Store(newer).close()
    conn = sqlite3.connect(newer)
    conn.execute("INSERT INTO _taskexec_migrations (name, applied_at) VALUES ('m999_x', '')")
    conn.commit()
    conn.close()
    target = tmp_path / "t.db"
    result = CliRunner().invoke(
        cli, ["merge", str(garbage), str(good), str(newer), str(broken), "--into", str(target)]
    )
    assert result.exit_code == 1, result.output
    errors = result.stderr.splitlines()
    assert len(errors) == 4, errors
    assert errors[0].startswith(f"skipped: {garbage} is not a usable SQLite database")
    assert errors[1].startswith(f"skipped: {newer} was written by a newer taskexec")
    assert (
        errors[2] == f"skipped: {broken}: row id 3: started_at: not an ISO-8601 timestamp: 'soon'"
    )
    assert errors[3] == f"skipped: {broken}: row id 5: task_slug: must be a non-empty string"
    count = "SELECT count(*) FROM task_executions"
    merged = table(target, count)[0][0]
    assert merged == table(good, count)[0][0] + table(broken, count)[0][0] - 2
    assert f"{good}: " in result.stdout and f"{broken}: " in result.stdout


def test_export_skips_rows_that_are_not_records(tmp_path):
    db = tmp_path / "a.db"
    with Store(db) as store:
        store.append_many(generate(runs=5, days=1, seed=4, end=END))
    conn = sqlite3.connect(db)
    conn.execute("UPDATE task_executions SET attempt = 2 * 9223372036854775807 WHERE id = 2")
    conn.execute("UPDATE task_executions SET attributes = '{not json' WHERE id = 4")
    conn.commit()
    conn.close()
    result = CliRunner().invoke(cli, ["export-otlp", "--db", str(db)])
    assert result.exit_code == 1
    errors = result.stderr.splitlines()
    assert errors[0].startswith(f"skipped: {db}: row id 2: attempt: must be an integer >= 1")
    assert errors[1].startswith(f"skipped: {db}: unreadable from here on: ")
    assert "exported 2 executions" in result.stderr  # rows 1 and 3; row 4 ends the read


def test_merge_of_two_independently_generated_demo_databases_keeps_every_row(tmp_path):
    # Two hosts each ran `taskexec demo` with their own seed (the issue: 843 + 323 rows merged
    # into 1,149): every row is a distinct execution and must survive the merge.
    a, b, target = tmp_path / "a.db", tmp_path / "b.db", tmp_path / "all.db"
    assert run("demo", a, "--runs", 780, "--days", 3, "--seed", 1, "--end", END).exit_code == 0
    assert run("demo", b, "--runs", 300, "--days", 3, "--seed", 2, "--end", END).exit_code == 0
    count = "SELECT count(*) FROM task_executions"
    (n_a,), (n_b,) = table(a, count)[0], table(b, count)[0]
    result = run("merge", a, b, "--into", target)
    assert result.exit_code == 0, result.output
    assert table(target, count) == [(n_a + n_b,)]
    again = merge([a, b], target)
    assert again.total.inserted == 0 and again.total.duplicates == n_a + n_b
