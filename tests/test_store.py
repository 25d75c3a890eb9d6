"""The store: schema, idempotent appends, error groups, reads, sweep, prune, bad files."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskexec import DatabaseError, InvalidRecord, Store, TaskExecution
from taskexec.model import new_span_id, new_trace_id

T0 = datetime(2025, 11, 5, 6, 0, tzinfo=UTC)


def rec(i: int = 0, **kw) -> TaskExecution:
    base = dict(
        task_slug=kw.pop("task_slug", "daily_reflection"),
        task_id=kw.pop("task_id", "task_007"),
        started_at=T0 + timedelta(minutes=i),
        ended_at=T0 + timedelta(minutes=i, seconds=3),
    )
    base.update(kw)
    return TaskExecution(**base)


def failing(i: int, error_type="KeyError", message="'title'", func="load_notes", **kw):
    stack = (
        "Traceback (most recent call last):\n"
        f'  File "/srv/app/notes.py", line {10 + i}, in {func}\n'
        "    x = d['title']\n"
        f"{error_type}: {message}\n"
    )
    return rec(
        i, status="failed", error_type=error_type, error_message=message, stack_trace=stack, **kw
    )


def test_schema_indexes_and_fts(store):
    names = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master")}
    for expected in (
        "task_executions",
        "error_groups",
        "task_executions_fts",
        "ux_te_idempotency_key",
        "ux_te_span_id",
        "ix_te_task_id_started",
        "ix_te_task_slug_started",
        "ix_te_trace_id",
        "ix_te_status_started",
        "ix_te_stack_hash_started",
    ):
        assert expected in names
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_append_is_idempotent(store):
    r = rec()
    assert store.append(r) == "inserted"
    assert store.append(r) == "duplicate"
    # Same run recorded again with a new span id: same key, still a duplicate.
    again = TaskExecution(task_slug=r.task_slug, task_id=r.task_id, started_at=r.started_at)
    assert store.append(again) == "duplicate"
    assert store.count_executions() == 1


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.integers(0, 40), min_size=1, max_size=60))
def test_append_many_idempotent_property(tmp_path_factory, minutes):
    path = tmp_path_factory.mktemp("idem") / "t.db"
    records = [rec(m) for m in minutes]
    with Store(path) as s:
        first = s.append_many(records)
        assert first.inserted == len(set(minutes))
        assert first.inserted + first.duplicates == len(minutes)
        second = s.append_many(records)
        assert second.inserted == 0 and second.duplicates == len(minutes)
        assert s.count_executions() == len(set(minutes))


def test_bulk_into_non_empty_table_and_counts(store):
    store.append(rec(0))
    result = store.append_many([rec(i) for i in range(0, 50)])
    assert (result.inserted, result.duplicates) == (49, 1)
    assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_error_groups_and_first_seen(store):
    store.append(failing(5))
    store.append(failing(9))  # same bug, lines moved
    store.append(failing(7, error_type="ValueError", message="bad", func="parse_notes"))
    groups = {g["error_type"]: g for g in store.error_groups()}
    assert groups["KeyError"]["occurrences"] == 2
    assert groups["ValueError"]["occurrences"] == 1
    rows = store.list_executions(status="failed", limit=10)
    flags = {r["started_at"][11:16]: r["first_seen_error"] for r in rows}
    assert flags == {"06:05": 1, "06:09": 0, "06:07": 1}
    # A backfilled older occurrence becomes the first one.
    store.append_many([failing(1)])
    flags = {r["started_at"][11:16]: r["first_seen_error"] for r in store.list_executions(limit=10)}
    assert flags["06:01"] == 1 and flags["06:05"] == 0
    key_group = store.error_group(rows[0]["stack_hash"]) or {}
    assert key_group.get("occurrences") in (3, 1)


def test_bulk_load_groups_match_incremental(tmp_path):
    records = [failing(i, message=f"'k{i % 3}'") for i in range(30)] + [
        rec(100 + i) for i in range(30)
    ]
    with Store(tmp_path / "bulk.db") as a, Store(tmp_path / "inc.db") as b:
        a.append_many(records)  # empty table: the load path
        for r in records:
            b.append(r)
        ga = sorted((g["stack_hash"], g["occurrences"], g["first_seen"]) for g in a.error_groups())
        gb = sorted((g["stack_hash"], g["occurrences"], g["first_seen"]) for g in b.error_groups())
        assert ga == gb
        assert a.conn.execute("SELECT sum(first_seen_error) FROM task_executions").fetchone()[
            0
        ] == len(ga)


def test_pii_is_scrubbed_before_disk(store, db_path):
    r = failing(
        1,
        message="user bob@example.com from 10.1.2.3",
        content="mailed alice@example.org",
        attributes={"ip": "192.168.0.7"},
    )
    store.append(r)
    raw = db_path.read_bytes() + (db_path.parent / (db_path.name + "-wal")).read_bytes()
    for secret in (b"bob@example.com", b"10.1.2.3", b"alice@example.org", b"192.168.0.7"):
        assert secret not in raw
    row = store.list_executions(limit=1)[0]
    assert "<email>" in row["error_message"] and "<ip>" in row["error_message"]
    assert row["attributes"] == {"ip": "<ip>"}


def test_reads(store):
    trace = new_trace_id()
    first = failing(1, trace_id=trace, task_slug="sync_inbox", task_id="task_011")
    second = rec(
        2,
        trace_id=trace,
        attempt=2,
        retry_of=first.span_id,
        task_slug="sync_inbox",
        task_id="task_011",
    )
    store.append_many([rec(0), first, second])
    attempts = store.trace(trace)
    assert [a["attempt"] for a in attempts] == [1, 2]
    assert attempts[1]["retry_of"] == first.span_id
    assert [r["task_slug"] for r in store.list_executions(task_id="task_011", limit=5)] == [
        "sync_inbox"
    ] * 2
    assert store.count_executions(status="failed") == 1
    assert len(store.list_executions(since=T0 + timedelta(minutes=1), limit=10)) == 2
    assert len(store.list_executions(until=T0 + timedelta(minutes=1), limit=10)) == 1
    failed = store.last_failed(limit=5)
    assert failed[0]["span_id"] == first.span_id and failed[0]["group_occurrences"] == 1
    with pytest.raises(InvalidRecord, match="limit"):
        store.list_executions(limit=0)
    with pytest.raises(InvalidRecord, match="status"):
        store.list_executions(status="nope")


def test_full_text_search(store):
    store.append(rec(1, content="summarised twelve memories about gardening"))
    store.append(failing(2, message="'compost'"))
    hits = store.conn.execute(
        "SELECT rowid FROM task_executions_fts WHERE task_executions_fts MATCH ?", ("gardening",)
    ).fetchall()
    assert len(hits) == 1
    assert (
        store.conn.execute(
            "SELECT count(*) FROM task_executions_fts WHERE task_executions_fts MATCH 'compost'"
        ).fetchone()[0]
        == 1
    )


def test_start_finish_and_sweep(store):
    old = rec(0, status="running", ended_at=None)
    now = TaskExecution(task_slug="x", started_at=datetime.now(UTC), status="running")
    store.start(old)
    store.start(now)
    assert store.sweep(older_than=3600) == 1
    statuses = {r["span_id"]: r["status"] for r in store.list_executions(limit=5)}
    assert statuses == {old.span_id: "abandoned", now.span_id: "running"}
    assert store.finish(now.span_id, status="success", ended_at=datetime.now(UTC), duration_ms=5.0)
    assert not store.finish(
        new_span_id(), status="success", ended_at=datetime.now(UTC), duration_ms=1
    )


def test_prune_deletes_whole_traces_and_keeps_groups(store):
    now = datetime.now(UTC)
    old_trace, mixed_trace = new_trace_id(), new_trace_id()
    records = [
        failing(0, trace_id=old_trace, started_at=now - timedelta(days=100), ended_at=None),
        failing(
            1,
            trace_id=mixed_trace,
            task_id="b",
            started_at=now - timedelta(days=100),
            ended_at=None,
        ),
        rec(2, trace_id=mixed_trace, attempt=2, started_at=now - timedelta(days=1), ended_at=None),
        failing(3, started_at=now - timedelta(days=2), ended_at=None),
    ]
    store.append_many(records)
    result = store.prune(now - timedelta(days=90))
    assert (result.rows_deleted, result.traces_deleted) == (1, 1)
    assert {r["trace_id"] for r in store.list_executions(limit=10)} >= {mixed_trace}
    assert store.error_groups()[0]["occurrences"] == 2
    assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    fts = store.conn.execute(
        "INSERT INTO task_executions_fts (task_executions_fts) VALUES ('integrity-check')"
    )
    assert fts is not None


def test_readonly_store_cannot_write(store, db_path):
    store.append(rec())
    ro = Store.open_readonly(db_path)
    assert ro.count_executions() == 1
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        ro.conn.execute("DELETE FROM task_executions")
    with pytest.raises(DatabaseError, match="read-only"):
        ro.append(rec(5))
    ro.close()


def test_missing_and_foreign_databases(tmp_path):
    with pytest.raises(DatabaseError, match="no database"):
        Store.open_readonly(tmp_path / "missing.db")
    foreign = tmp_path / "other.db"
    sqlite3.connect(foreign).execute("CREATE TABLE people (name TEXT)").connection.commit()
    with pytest.raises(DatabaseError, match="not a taskexec"):
        Store(foreign)
    with pytest.raises(DatabaseError, match="not a taskexec"):
        Store.open_readonly(foreign)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DatabaseError, match="not a usable SQLite"):
        Store(junk)


def test_bulk_batches_into_populated_table_keep_fts_exact(store):
    store.append(rec(0, content="seed row"))
    records = [rec(i, content=f"batch row number {i} about gardening") for i in range(1, 600)]
    records += [failing(700 + i, message=f"'compost{i % 2}'") for i in range(10)]
    result = store.append_many(records)
    assert result.inserted == 609
    conn = store.conn
    conn.execute("INSERT INTO task_executions_fts (task_executions_fts) VALUES ('integrity-check')")
    hits = conn.execute(
        "SELECT count(*) FROM task_executions_fts WHERE task_executions_fts MATCH 'gardening'"
    ).fetchone()[0]
    assert hits == 599
    assert "te_fts_ai" in {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    # The trigger is back: a single append is indexed too.
    store.append(rec(900, content="lonely zucchini"))
    assert (
        conn.execute(
            "SELECT count(*) FROM task_executions_fts WHERE task_executions_fts MATCH 'zucchini'"
        ).fetchone()[0]
        == 1
    )


def test_rows_without_text_stay_out_of_fts_and_it_stays_consistent(store):
    now = datetime.now(UTC)
    quiet = TaskExecution(task_slug="x", started_at=now - timedelta(days=200), status="running")
    later = TaskExecution(task_slug="x", started_at=now, status="running")
    store.start(quiet)
    store.start(later)
    conn = store.conn
    fts_rows = "SELECT count(*) FROM task_executions_fts_docsize"
    assert conn.execute(fts_rows).fetchone()[0] == 0  # running rows with no text: not indexed
    store.finish(
        later.span_id,
        status="failed",
        ended_at=now,
        duration_ms=1.0,
        error_type="KeyError",
        error_message="'marmalade'",
    )
    assert store.sweep(older_than=3600) == 1  # writes an explanation on the quiet row
    assert conn.execute(fts_rows).fetchone()[0] == 2
    hit = "SELECT count(*) FROM task_executions_fts WHERE task_executions_fts MATCH ?"
    assert conn.execute(hit, ("marmalade",)).fetchone()[0] == 1
    assert conn.execute(hit, ("worker",)).fetchone()[0] == 1
    store.prune(now - timedelta(days=90))
    assert conn.execute(fts_rows).fetchone()[0] == 1
    conn.execute("INSERT INTO task_executions_fts (task_executions_fts) VALUES ('integrity-check')")
