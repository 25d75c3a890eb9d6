"""Rollups stay exact on every write path, and ``verify`` / ``rebuild`` / doctor see to it."""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskexec import Recorder, Store, TaskExecution
from taskexec.db import functions, rollups, schema
from taskexec.histogram import BIN_SQL, te_bin, te_bin_ms
from taskexec.ingest.demo import generate
from taskexec.ingest.merge import merge

T0 = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)


def rec(i: int, **kw) -> TaskExecution:
    start = kw.pop("started_at", T0 + timedelta(minutes=7 * i))
    status = kw.pop("status", "success")
    ended = None if status == "running" else start + timedelta(milliseconds=kw.pop("ms", 1000 + i))
    return TaskExecution(
        task_slug=kw.pop("task_slug", f"task_{i % 3}"),
        task_id=kw.pop("task_id", f"id_{i % 3}"),
        started_at=start,
        ended_at=ended,
        status=status,
        **kw,
    )


def exact(store: Store) -> None:
    diffs = store.rollup_verify()
    assert not diffs, "\n".join(map(str, diffs[:5]))
    assert all(a == b for a, b in store.rollup_totals().values())


@pytest.mark.parametrize("workers", [1, 2])
def test_bulk_load_counts_what_sql_counts(tmp_path: Path, workers: int) -> None:
    records = list(generate(runs=3000, days=4, seed=11, end=T0))
    with Store(tmp_path / "bulk.db") as store:
        store.append_many(records, workers=workers)
        exact(store)
        assert store.conn.execute("SELECT sum(attempts) FROM rollup_hourly").fetchone()[0] == len(
            records
        )
        # a second load into a table that is not empty goes row by row, through the triggers
        store.append_many(list(generate(runs=500, days=2, seed=12, end=T0)), workers=workers)
        exact(store)


def test_live_recorder_running_finish_sweep_and_late_finish(tmp_path: Path) -> None:
    path = tmp_path / "live.db"
    rec_ = Recorder(path, flush_interval=0.01)
    for i in range(30):
        try:
            with rec_.track(f"job_{i % 4}", attempt=1 + i % 3) as run:
                run.memories_retrieved = i % 5
                run.retrieval_sources = ["web", "notes"][: i % 3]
                if i % 4 == 0:
                    raise ValueError(f"bad {i}")
        except ValueError:
            pass
    hanging = rec_.start("hangs")
    rec_.close()
    with Store(path) as store:
        assert store.conn.execute("SELECT count(*) FROM task_executions").fetchone()[0] == 31
        exact(store)
        assert store.sweep(0) == 1  # the running attempt is abandoned...
        exact(store)
    rec2 = Recorder(path, flush_interval=0.01)
    rec2.finish_span(hanging.span_id, "success")  # ...and then its worker finishes it after all
    rec2.close()
    with Store(path) as store:
        got = store.conn.execute(
            "SELECT sum(success), sum(abandoned) FROM rollup_hourly WHERE task_slug = 'hangs'"
        ).fetchone()
        assert tuple(got) == (1, 0)
        exact(store)


def test_arbitrary_updates_and_deletes(tmp_path: Path) -> None:
    """Writes that bypass taskexec (plain SQL) still go through the triggers."""
    rng = random.Random(5)
    with Store(tmp_path / "sql.db") as store:
        store.append_many(
            [
                rec(
                    i,
                    status=rng.choice(["success", "failed", "running", "timeout"]),
                    attempt=1 + i % 4,
                )
                for i in range(200)
            ],
            workers=1,
        )
        conn = store.conn
        statements = [
            "UPDATE task_executions SET duration_ms = duration_ms * 3 WHERE id % 7 = 0",
            "UPDATE task_executions SET task_slug = 'moved' WHERE id % 11 = 0",
            "UPDATE task_executions SET started_at = '2026-04-01T00:30:00.000000Z' "
            "WHERE id % 13 = 0",
            "UPDATE task_executions SET attempt = attempt + 5 WHERE id % 17 = 0",
            "UPDATE task_executions SET status = 'success', duration_ms = 5 "
            "WHERE status = 'running'",
            "UPDATE task_executions SET memories_retrieved = id, "
            "retrieval_sources = '[\"a\", 3, true, null]' WHERE id % 5 = 0",
            "UPDATE task_executions SET heartbeat_at = '2026-04-01T00:00:00.000000Z'",
            "DELETE FROM task_executions WHERE id % 9 = 0",
            "DELETE FROM task_executions WHERE attempt > 5",
            "UPDATE task_executions SET duration_ms = NULL WHERE id % 19 = 0",
        ]
        for sql in statements:
            conn.execute(sql)
            exact(store)
        conn.execute("DELETE FROM task_executions")
        assert all(
            conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] == 0 for t in rollups.TABLES
        )


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 40),
            st.sampled_from(["success", "failed", "running", "cancelled", "abandoned"]),
            st.integers(1, 4),
            st.one_of(st.none(), st.floats(0, 1e7, allow_nan=False)),
            st.one_of(st.none(), st.integers(0, 50)),
        ),
        max_size=40,
    ),
    st.lists(st.tuples(st.integers(1, 45), st.sampled_from(["delete", "slow", "slug", "end"]))),
)
def test_any_writes_stay_exact(tmp_path: Path, rows, changes) -> None:
    path = tmp_path / f"h{random.getrandbits(40)}.db"
    with Store(path) as store:
        records = []
        for i, (minute, status, attempt, ms, memories) in enumerate(rows):
            start = T0 + timedelta(minutes=minute * 13)
            records.append(
                TaskExecution(
                    task_slug=f"t{i % 2}",
                    task_id=f"t{i % 2}",
                    started_at=start,
                    ended_at=None
                    if status == "running" or ms is None
                    else start + timedelta(milliseconds=ms),
                    status=status,
                    attempt=attempt,
                    memories_retrieved=None if status == "running" else memories,
                )
            )
        store.append_many(records, workers=1)
        exact(store)
        for row_id, change in changes:
            sql = {
                "delete": "DELETE FROM task_executions WHERE id = ?",
                "slow": "UPDATE task_executions SET duration_ms = coalesce(duration_ms, 1) * 10 "
                "WHERE id = ?",
                "slug": "UPDATE task_executions SET task_slug = 'other' WHERE id = ?",
                "end": "UPDATE task_executions SET status = 'failed' WHERE id = ?",
            }[change]
            store.conn.execute(sql, (row_id,))
        exact(store)


def test_prune_and_merge_and_backfill_stay_exact(tmp_path: Path) -> None:
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    with Store(a) as store:
        store.append_many(list(generate(runs=800, days=10, seed=1, end=T0)))
    with Store(b) as store:
        store.append_many(list(generate(runs=600, days=10, seed=2, end=T0)))
    merge([b], a)
    with Store(a) as store:
        exact(store)
        result = store.prune(T0 - timedelta(days=4, hours=3, minutes=17))
        assert result.rows_deleted > 0
        exact(store)
    results = tmp_path / "results"
    results.mkdir()
    for i in range(5):
        (results / f"r{i}.json").write_text(
            '{"task_id": "task_x", "task_slug": "backfilled", "status": "success", '
            f'"started_at": "2026-02-0{i + 1}T10:00:00Z", '
            f'"ended_at": "2026-02-0{i + 1}T10:00:04Z"}}'
        )
    done = subprocess.run(
        [sys.executable, "-m", "taskexec.cli", "backfill", str(results), "--db", str(a)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    with Store(a) as store:
        assert (
            store.conn.execute(
                "SELECT sum(attempts) FROM rollup_hourly WHERE task_slug = 'backfilled'"
            ).fetchone()[0]
            == 5
        )
        exact(store)


def test_migration_fills_rollups_of_an_older_file(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with Store(path) as store:
        store.append_many(list(generate(runs=300, days=3, seed=4, end=T0)))
    conn = sqlite3.connect(path)
    for name in rollups.TRIGGERS:
        conn.execute(f"DROP TRIGGER {name}")
    for table in rollups.TABLES:
        conn.execute(f"DROP TABLE {table}")
    conn.execute(f"DELETE FROM {schema.MIGRATIONS_TABLE} WHERE name = 'm006_rollups'")
    conn.execute("DROP INDEX ix_te_error_type")  # as m001 made it before m006
    conn.execute(
        "CREATE INDEX ix_te_error_type ON task_executions (error_type) WHERE error_type IS NOT NULL"
    )
    conn.commit()
    conn.close()
    with Store(path) as store:
        exact(store)
        for name in ("ix_te_error_type", "ix_te_slots", "ix_te_long_runs"):
            (sql,) = store.conn.execute(
                "SELECT sql FROM sqlite_master WHERE name = ?", (name,)
            ).fetchone()
            assert sql == schema.INDEXES[name]


def _finish_steps(conn: sqlite3.Connection, span_id: str) -> int:
    """SQLite VM steps (in thousands) to finish one running row with a plain UPDATE."""
    steps = [0]

    def tick() -> int:
        steps[0] += 1
        return 0

    conn.set_progress_handler(tick, 1000)
    conn.execute(
        "UPDATE task_executions SET status = 'success', duration_ms = 5.0, "
        "ended_at = started_at WHERE span_id = ?",
        (span_id,),
    )
    conn.set_progress_handler(None, 0)
    return steps[0]


def test_migration_replaces_the_update_trigger_that_reread_the_hour(tmp_path: Path) -> None:
    """m008: a file whose m006 ran before the update trigger learned to skip an extreme the row
    still holds gets this version's triggers, and a finish then costs the same in a full hour
    as in an empty one."""
    path = tmp_path / "old.db"
    hour = "2026-03-01T06"
    with Store(path) as store:
        store.append_many(
            [
                rec(i, started_at=T0 + timedelta(seconds=i), task_slug="job", task_id="job", ms=1)
                for i in range(3000)
            ]
        )
    conn = sqlite3.connect(path, isolation_level=None)
    name = "te_rollup_counts_au"
    current = rollups.TRIGGERS[name]
    _, _, adds, removes = rollups._PARTS["counts"]
    # The definition m006 shipped with: any extreme the old row held was read again.
    older = (
        current.split("\nBEGIN")[0]
        + "\n"
        + rollups._body(
            rollups._remove_statements("old")[removes] + rollups._add_statements("new")[adds]
        )
    )
    assert older != current
    conn.execute(f"DROP TRIGGER {name}")
    conn.execute(older)
    conn.execute(
        f"DELETE FROM {schema.MIGRATIONS_TABLE} WHERE name = 'm008_rollup_triggers_current'"
    )
    # Two running rows: one alone in its hour, one in the hour of 3,000 rows.
    conn.execute(
        "INSERT INTO task_executions (span_id, trace_id, attempt, idempotency_key, task_id, "
        "task_slug, status, started_at, provenance, created_at) VALUES "
        "('a000000000000001', 'a0000000000000000000000000000001', 1, 'k1', 'job', 'job', "
        "'running', '2026-03-02T06:00:00.000000Z', 'live', '2026-03-02T06:00:00.000000Z'), "
        "('a000000000000002', 'a0000000000000000000000000000002', 1, 'k2', 'job', 'job', "
        f"'running', '{hour}:59:00.000000Z', 'live', '{hour}:59:00.000000Z')"
    )
    alone, full = _finish_steps(conn, "a000000000000001"), _finish_steps(conn, "a000000000000002")
    assert full > 5 * max(alone, 1), (alone, full)  # the old trigger re-reads the full hour
    conn.execute(
        "UPDATE task_executions SET status = 'running', duration_ms = NULL, ended_at = NULL "
        "WHERE span_id LIKE 'a0000%'"
    )
    conn.close()
    with Store(path) as store:  # migrates
        (sql,) = store.conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = ?", (name,)
        ).fetchone()
        assert sql == current
        alone = _finish_steps(store.conn, "a000000000000001")
        full = _finish_steps(store.conn, "a000000000000002")
        assert full <= 2 * max(alone, 1), (alone, full)
        exact(store)


def test_migration_adds_the_daily_error_rollup_to_an_older_file(tmp_path: Path) -> None:
    """m009: a file whose rollups predate ``rollup_errors_daily`` gets it filled from the
    hourly rollup, and error triggers that keep it exact from then on."""
    path = tmp_path / "old.db"
    with Store(path) as store:
        store.append_many(list(generate(runs=400, days=3, seed=9, end=T0)))
        failures = store.conn.execute(f"SELECT sum(failures) FROM {rollups.ERRORS}").fetchone()[0]
    assert failures > 0
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"DROP TABLE {rollups.ERRORS_DAILY}")
    for name, sql in rollups.TRIGGERS.items():
        if rollups.ERRORS_DAILY in sql:  # the error triggers as m006 first shipped them
            head, body = sql.split("\nBEGIN\n    ")
            kept = [s for s in body.removesuffix(";\nEND").split(";\n    ") if "_daily" not in s]
            conn.execute(f"DROP TRIGGER {name}")
            conn.execute(head + "\n" + rollups._body(kept))
    conn.execute(f"DELETE FROM {schema.MIGRATIONS_TABLE} WHERE name = 'm009_daily_error_rollup'")
    conn.close()
    with Store(path) as store:
        daily = store.conn.execute(f"SELECT sum(failures) FROM {rollups.ERRORS_DAILY}").fetchone()
        assert daily[0] == failures
        exact(store)
        store.append(rec(1, status="failed", error_message="boom", error_type="ValueError"))
        store.conn.execute("DELETE FROM task_executions WHERE rowid = 1")
        exact(store)


def test_schema_definitions_change_only_with_a_migration() -> None:
    """Files made by an earlier version keep the indexes, triggers and tables their migrations
    made (m006 builds the rollups from the live definitions, once). So a changed definition
    needs a migration that brings older files to it, as m008 did for the update trigger; add
    it, then update the name and fingerprint here."""
    text = "\n".join(
        [*schema.INDEXES.values(), *schema.FTS_TRIGGERS.values(), *rollups.DDL]
        + list(rollups.TRIGGERS.values())
    )
    fingerprint = hashlib.sha256(text.encode()).hexdigest()[:16]
    assert (schema.MIGRATIONS[-1].__name__, fingerprint) == (
        "m009_daily_error_rollup",
        "7b79d963b5d6f7d8",
    )


def test_verify_finds_and_rebuild_fixes_a_tampered_rollup(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    with Store(path) as store:
        store.append_many(list(generate(runs=300, days=3, seed=4, end=T0)))
    conn = sqlite3.connect(path)
    conn.execute(
        "UPDATE rollup_hourly SET failed = failed + 2 "
        "WHERE hour = (SELECT min(hour) FROM rollup_hourly)"
    )
    conn.commit()
    conn.close()
    cli = [sys.executable, "-m", "taskexec.cli"]
    verify = subprocess.run([*cli, "rollup", str(path), "--verify"], capture_output=True, text=True)
    assert verify.returncode == 1
    assert "failed stored" in verify.stdout and "rollup --rebuild" in verify.stdout
    doctor = subprocess.run([*cli, "doctor", str(path)], capture_output=True, text=True)
    assert doctor.returncode == 1 and "rollups" in doctor.stdout
    rebuild = subprocess.run(
        [*cli, "rollup", str(path), "--rebuild"], capture_output=True, text=True
    )
    assert rebuild.returncode == 0, rebuild.stderr
    again = subprocess.run([*cli, "rollup", str(path)], capture_output=True, text=True)
    assert again.returncode == 0 and "exact" in again.stdout


def test_bins_python_and_sql_agree_and_bound_the_error() -> None:
    conn = sqlite3.connect(":memory:")
    values = [0.0, 0.0005, 0.001, 0.0011, 1.0, 1.5, 999.999, 1000.0, 12345.678, 3.6e6, 8.64e7]
    values += [random.Random(1).lognormvariate(7, 2) for _ in range(2000)]
    for ms in values:
        sql_bin = conn.execute(f"SELECT {BIN_SQL.format('?')}", (ms,)).fetchone()[0]
        assert sql_bin == te_bin(ms)
        if ms >= 0.001:
            assert abs(te_bin_ms(sql_bin) - ms) <= 0.01 * ms + 0.0005


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.one_of(st.none(), st.integers(-50, 50)), st.integers(0, 20)), max_size=60
    ),
    st.booleans(),
)
def test_quantiles_aggregate_is_nearest_rank_in_any_row_order(rows, presorted) -> None:
    """te_quantiles answers the nearest-rank p50/p95/p99 of the merged bins whether the rows
    come in bin order (its fast path) or not, with repeated bins, NULL bins and zero counts."""
    if presorted:
        rows = sorted(rows, key=lambda r: (r[0] is None, r[0] or 0))
    merged: dict[int, int] = {}
    for b, n in rows:
        if b is not None and n:
            merged[b] = merged.get(b, 0) + n
    expected = None
    if merged:
        total, upto, out = sum(merged.values()), 0, []
        for b in sorted(merged):
            upto += merged[b]
            while len(out) < 3 and upto >= (0.50, 0.95, 0.99)[len(out)] * total:
                out.append(te_bin_ms(b))
        expected = out
    conn = sqlite3.connect(":memory:")
    functions.register(conn)
    conn.execute("CREATE TABLE h (seq INTEGER PRIMARY KEY, bin, n)")
    conn.executemany("INSERT INTO h (bin, n) VALUES (?, ?)", rows)
    got = conn.execute(
        "SELECT te_quantiles(bin, n) FROM (SELECT * FROM h ORDER BY seq)"
    ).fetchone()[0]
    assert (json.loads(got) if got is not None else None) == expected
