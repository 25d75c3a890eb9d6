"""FTS5's own integrity-check (rank 1, which compares the index with its content row by row)
passes on every database taskexec writes, by every write path, while rows without text
(running attempts, successes without a summary) stay out of the index, and search still finds
what has text."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from taskexec.db import Store, schema
from taskexec.db.bulkload import forkable
from taskexec.db.rows import COLUMNS, encode_outcome, encode_record
from taskexec.ingest.backfill import backfill
from taskexec.ingest.demo import generate
from taskexec.ingest.merge import merge
from taskexec.model import Outcome, TaskExecution, utcnow
from taskexec.recorder import Recorder

END = datetime(2025, 11, 6, tzinfo=UTC)
CHECK = "INSERT INTO task_executions_fts (task_executions_fts, rank) VALUES ('integrity-check', 1)"
MATCH = "SELECT rowid FROM task_executions_fts WHERE task_executions_fts MATCH ? ORDER BY rowid"
WITH_TEXT = (
    "SELECT id FROM task_executions WHERE content IS NOT NULL OR error_message IS NOT NULL "
    "ORDER BY id"
)


def check(db: Path) -> None:
    """Both integrity checks pass, and the index holds exactly the rows with text."""
    conn = sqlite3.connect(db)
    try:
        conn.execute(CHECK)
        conn.execute(
            "INSERT INTO task_executions_fts (task_executions_fts) VALUES ('integrity-check')"
        )
        indexed = [
            r[0] for r in conn.execute("SELECT id FROM task_executions_fts_docsize ORDER BY id")
        ]
        assert indexed == [r[0] for r in conn.execute(WITH_TEXT)]
    finally:
        conn.close()


def found(db: Path, word: str) -> list[int]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute(MATCH, (word,))]


def mixed(n: int, seed: int = 3) -> list[TaskExecution]:
    """Demo records, every third without a summary and every fifth still running: rows with
    and without text, interleaved."""
    out = []
    for i, record in enumerate(generate(runs=n, days=3, seed=seed, end=END)):
        if i % 5 == 0:
            record = dataclasses.replace(
                record,
                status="running",
                ended_at=None,
                duration_ms=None,
                content=None,
                error_type=None,
                error_message=None,
                stack_trace=None,
            )
        elif i % 3 == 0 and record.error_message is None:
            record = dataclasses.replace(record, content=None)
        out.append(record)
    return out


def plain(slug: str, start: datetime, **kw) -> TaskExecution:
    return TaskExecution(task_slug=slug, started_at=start, host="h", **kw)


def test_recorder_live_paths(tmp_path):
    db = tmp_path / "live.db"
    with Recorder(db) as rec:
        with rec.track("summarised") as run:
            run.summary("wrote the weekly digest")
        with rec.track("quiet"):
            pass  # a success without any text
        with pytest.raises(KeyError), rec.track("broken"):
            raise KeyError("marmalade")
        pending = rec.start("still_running")  # a running row with no text
        later = rec.start("finished_later")
        rec.flush()
        check(db)
        later.summary("finished after a while")
        later.finish()
        rec.flush()
        check(db)
        assert found(db, "marmalade") and found(db, "digest") and found(db, "while")
        pending.finish(status="failed", error_message="the queue vanished")
    check(db)
    assert found(db, "vanished")
    with Recorder(db, durable=True) as rec:  # running row and outcome written on this thread
        with rec.track("durable") as run:
            check(db)
            run.summary("durably done")
        with rec.track("durable_quiet"):
            pass
    check(db)
    assert found(db, "durably")


def test_store_append_start_finish_and_write_batch(tmp_path):
    db = tmp_path / "s.db"
    t0 = utcnow() - timedelta(minutes=10)
    with Store(db) as store:
        store.append(plain("a", t0))
        store.append(plain("b", t0, content="apple pie"))
        running = plain("c", t0, status="running")
        store.start(running)
        check(db)
        assert store.finish(running.span_id, status="success", ended_at=t0, duration_ms=1.0)
        check(db)  # finished without text: still out of the index
        other = plain("d", t0, status="running")
        store.start(other)
        assert store.finish(
            other.span_id,
            status="failed",
            ended_at=t0,
            duration_ms=1.0,
            error_type="ValueError",
            error_message="bad zucchini",
        )
        check(db)
        # The background writer's group commit: rows and finishes as JSON, with and without
        # error bookkeeping.
        starts = [plain(f"w{i}", t0 + timedelta(seconds=i), status="running") for i in range(6)]
        store.write_batch([encode_record(r) for r in starts[:3]], [], errors=False)
        store.write_batch([encode_record(r) for r in starts[3:]], [])
        check(db)
        ends = [
            (
                r.span_id,
                encode_outcome(
                    Outcome(
                        status="failed" if i % 2 else "success",
                        ended_at=t0 + timedelta(minutes=1),
                        duration_ms=5.0,
                        error_message="late turnip" if i % 2 else None,
                        content="harvest done" if i == 2 else None,
                    )
                ),
            )
            for i, r in enumerate(starts)
        ]
        store.write_batch([], ends[:3], errors=False)
        store.write_batch([encode_record(plain("x", t0, content="carrot"))], ends[3:])
        check(db)
        assert len(found(db, "turnip")) == 3 and found(db, "harvest") and found(db, "carrot")
        # Sweep writes an explanation onto a running row: it enters the index.
        stale = plain("stale", t0 - timedelta(hours=3), status="running")
        store.start(stale)
        assert store.sweep(older_than=3600) == 1
        check(db)
        assert found(db, "sweep")


@pytest.mark.parametrize("workers", [1, 2])
def test_bulk_loads_into_empty_and_into_populated_tables(tmp_path, workers):
    records = mixed(700)
    if workers > 1 and not forkable():
        pytest.skip("forking is not safe in this process (another thread runs)")
    db = tmp_path / "bulk.db"
    with Store(db) as store:
        # Into an empty table: a list goes parallel when workers > 1, a generator directly.
        loaded = records[:500] if workers > 1 else iter(records[:500])
        assert store.append_many(loaded, workers=workers).inserted == 500
    check(db)
    with Store(db) as store:
        # Into a populated table: a batch of >= 200 fills FTS in one statement, a small one
        # by trigger.
        assert store.append_many(records[500:], batch_size=150).inserted == len(records) - 500
        assert store.append_many(records).inserted == 0
    check(db)
    assert found(db, "memories")


def test_importers_prune_and_merge(tmp_path):
    res = tmp_path / "results"
    res.mkdir()
    for i in range(30):
        obj = {
            "task_id": f"t{i % 3}",
            "started_at": f"2025-11-05T06:{i:02}:00Z",
            "success": i % 4 != 0,
            "error": None if i % 4 else "failed to fetch parsnip",
            "summary": "backfilled summary" if i % 5 == 0 else None,
            "attempt": 1,
        }
        (res / f"r{i:02}.json").write_text(json.dumps(obj))
    db = tmp_path / "b.db"
    backfill(res, db)  # into an empty table
    check(db)
    with Store(db) as store:
        store.append(plain("extra", datetime(2025, 11, 5, 9, tzinfo=UTC)))
    (res / "late.json").write_text(
        json.dumps({"task_id": "t9", "started_at": "2025-11-05T07:00:00Z", "success": True})
    )
    backfill(res, db)  # into a populated table
    check(db)
    assert len(found(db, "parsnip")) == 8

    other = tmp_path / "other.db"
    with Store(other) as store:
        store.append_many(iter(mixed(300, seed=9)))
    merged = tmp_path / "merged.db"
    merge([db], merged)
    check(merged)
    merge([other, db], merged)  # into a populated table, with duplicates
    check(merged)

    with Store(merged) as store:
        result = store.prune(datetime(2025, 11, 5, 6, 15, tzinfo=UTC))
    assert result.rows_deleted > 0
    check(merged)
    assert len(found(merged, "parsnip")) == 4


def test_migrated_database_passes(tmp_path):
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute(f"CREATE TABLE {schema.MIGRATIONS_TABLE} (name TEXT PRIMARY KEY, applied_at TEXT)")
    for fn in schema.MIGRATIONS[:2]:  # m001, m002: the index over the table itself
        fn(conn)
        conn.execute(f"INSERT INTO {schema.MIGRATIONS_TABLE} VALUES (?, 'then')", (fn.__name__,))
    insert = (
        f"INSERT INTO task_executions ({', '.join(COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(COLUMNS))})"
    )
    for record in mixed(120):
        conn.execute(insert, encode_record(record))
    with pytest.raises(sqlite3.DatabaseError, match="malformed"):
        conn.execute(CHECK)
    before = [r[0] for r in conn.execute(MATCH, ("memories",))]
    conn.close()
    Store(db).close()
    check(db)
    assert found(db, "memories") == before != []
    with Store(db) as store:  # and it keeps passing as the migrated file is written
        store.append_many(mixed(50, seed=5))
        store.append(plain("after", utcnow()))
    check(db)
