"""Identity: distinct executions are distinct rows (other host or process, a slot re-run by hand,
a double-fired slot), the same execution arriving again is one row (every importer re-run, the
OTLP round trip, the spool, a result file naming its live span), old databases migrate without
losing a row, independently generated demo databases merge whole, backfill links retries, and
the probe lists slots run more than once."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from taskexec import probes
from taskexec.cli import cli
from taskexec.db import Store, schema
from taskexec.db.rows import COLUMNS, encode_record
from taskexec.ingest.backfill import backfill, record_from_mapping
from taskexec.ingest.demo import generate
from taskexec.ingest.linking import link_retries, trace_of_key
from taskexec.ingest.merge import merge
from taskexec.model import TaskExecution, idempotency_key, live_key
from taskexec.recorder import Recorder

SLOT = "2025-11-05T06:00:00Z"
END = datetime(2025, 11, 6, tzinfo=UTC)
FTS_CHECK = (
    "INSERT INTO task_executions_fts (task_executions_fts, rank) VALUES ('integrity-check', 1)"
)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def write(path: Path, content: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content), encoding="utf-8")
    return path


def rows(db: Path, where: str = "1", order: str = "id") -> list[dict]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        sql = f"SELECT * FROM task_executions WHERE {where} ORDER BY {order}"
        return [dict(r) for r in conn.execute(sql)]
    finally:
        conn.close()


def count(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM task_executions").fetchone()[0]


def fts_ok(db: Path) -> None:
    conn = sqlite3.connect(db)
    try:
        conn.execute(FTS_CHECK)
    finally:
        conn.close()


def result(task: str = "nightly", **fields: object) -> dict:
    """One result file's object for the nightly slot, with ``fields`` changed."""
    base: dict[str, object] = {
        "task_id": task,
        "scheduled_at": SLOT,
        "started_at": "2025-11-05T06:00:01Z",
        "ended_at": "2025-11-05T06:00:03Z",
        "host": "worker-1",
        "success": True,
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


# -- distinct executions are distinct rows ---------------------------------------------------


def test_two_hosts_a_rerun_slot_and_a_double_fire_are_separate_rows(tmp_path):
    res, db = tmp_path / "results", tmp_path / "t.db"
    cases = {
        "first.json": result(),
        # Another worker ran the same slot at the same second (second-resolution files).
        "other_host.json": result(host="worker-2", success=False, error="disk full"),
        # Someone re-ran the slot by hand later on the same host.
        "by_hand.json": result(started_at="2025-11-05T09:12:00Z", ended_at=None),
        # The scheduler fired twice: the same host, two processes, the same second.
        "twice_a.json": result(task="sync", pid=101),
        "twice_b.json": result(task="sync", pid=102),
        # The same process fired twice, a few milliseconds apart.
        "same_process_a.json": result(task="digest", pid=7, started_at="2025-11-05T06:00:01.004Z"),
        "same_process_b.json": result(task="digest", pid=7, started_at="2025-11-05T06:00:01.009Z"),
    }
    for name, obj in cases.items():
        write(res / name, obj)
    old_keys = {
        schema.legacy_key(obj["task_id"], "2025-11-05T06:00:00.000000Z", 1)
        for obj in cases.values()
    }
    assert len(old_keys) == 3  # the old key made seven executions three rows

    first = backfill(res, db)
    assert (first.inserted, first.duplicates) == (7, 0)
    stored = rows(db)
    assert len({r["span_id"] for r in stored}) == len({r["trace_id"] for r in stored}) == 7
    failed = [r for r in stored if r["status"] == "failed"]
    assert [(r["host"], r["error_message"]) for r in failed] == [("worker-2", "disk full")]

    again = backfill(res, db)  # the same executions read again: nothing new
    assert (again.inserted, again.duplicates) == (0, 7)
    assert count(db) == 7
    fts_ok(db)


def test_default_key_separates_what_differs_and_matches_what_does_not():
    t0 = datetime(2025, 11, 5, 6, 0, 1, 4, tzinfo=UTC)
    slot = datetime(2025, 11, 5, 6, tzinfo=UTC)

    def key(**kw):
        fields = {"task_slug": "x", "started_at": t0, "scheduled_at": slot, "host": "h", "pid": 1}
        return TaskExecution(**{**fields, **kw}).idempotency_key

    base = key()
    assert base == key(status="failed", content="other outcome")  # the outcome is not identity
    assert base == key(started_at=t0.astimezone(UTC).replace(tzinfo=UTC))
    different = [
        key(started_at=t0 + timedelta(microseconds=1)),
        key(host="h2"),
        key(pid=2),
        key(pid=None),
        key(attempt=2),
        key(scheduled_at=None),
        key(task_id="other"),
    ]
    assert len({base, *different}) == len(different) + 1
    # The key reads the host as the row stores it (scrubbed), so it is recomputable from a row.
    assert key(host="10.1.2.3") == key(host="<ip>")
    assert base == idempotency_key(
        "x", "2025-11-05T06:00:01.000004Z", 1, host="h", pid=1, scheduled_at=slot
    )


# -- the same execution twice is one row -----------------------------------------------------


def test_every_importer_rerun_and_the_otlp_round_trip_add_nothing(tmp_path):
    res, db = tmp_path / "results", tmp_path / "t.db"
    write(res / "a.json", result())
    write(res / "b.json", result(host="worker-2", success=False, error="boom"))
    with Recorder(db) as rec:
        with rec.track("live_task", scheduled_at=datetime(2025, 11, 5, 7, tzinfo=UTC)) as live:
            live.summary("a live run")
        with pytest.raises(RuntimeError), rec.track("live_task"):
            raise RuntimeError("live failure")
    backfill(res, db)
    with Store(db) as store:
        store.append_many(generate(runs=150, days=2, seed=4, end=END))
    total = count(db)

    exported = tmp_path / "spans.jsonl"
    out = run("export-otlp", "--db", db)
    assert out.exit_code == 0
    exported.write_text(out.stdout)
    back = run("import-otlp", exported, "--db", db)  # the exported spans of rows already here
    assert back.exit_code == 0, back.output
    assert count(db) == total

    copy = tmp_path / "copy.db"
    assert run("import-otlp", exported, "--db", copy).exit_code == 0
    assert count(copy) == total
    assert run("import-otlp", exported, "--db", copy).exit_code == 0  # re-import
    assert count(copy) == total
    key_span = "SELECT idempotency_key, span_id FROM task_executions ORDER BY span_id"
    with sqlite3.connect(db) as a, sqlite3.connect(copy) as b:
        assert a.execute(key_span).fetchall() == b.execute(key_span).fetchall()

    merged = tmp_path / "merged.db"
    assert merge([db, copy], merged).total.inserted == total
    assert merge([db, copy], merged).total.inserted == 0
    assert backfill(res, merged).inserted == 0
    for path in (db, copy, merged):
        fts_ok(path)


def test_spooled_row_twice_and_a_result_file_naming_its_live_span(tmp_path):
    db = tmp_path / "t.db"
    record = TaskExecution(
        task_slug="spooled",
        started_at=datetime(2025, 11, 5, 6, tzinfo=UTC),
        host="worker-1",
        pid=5,
    )
    row = list(encode_record(record))
    with Store(db) as store:
        assert store.write_batch([row], []).inserted == 1
        again = store.write_batch([row], [])
        assert (again.inserted, again.duplicates) == (0, 1)
    with (
        Recorder(db) as rec,
        rec.track("report", scheduled_at=datetime(2025, 11, 5, 6, tzinfo=UTC)) as live,
    ):
        pass
    res = tmp_path / "results"
    # The result file names the live attempt's span: it is that execution, whatever its times.
    write(
        res / "report.json",
        result(task="report", span_id=live.span_id, started_at="2025-11-05T06:00:00.5Z"),
    )
    summary = backfill(res, db)
    assert (summary.inserted, summary.duplicates) == (0, 1)
    (live_row,) = rows(db, "task_id = 'report'")
    assert live_row["idempotency_key"] == live_key(live.span_id)
    assert live_row["provenance"] == "live"


# -- demo databases ----------------------------------------------------------------------------


def test_independently_generated_demo_databases_merge_whole(tmp_path):
    made = {
        "a.db": dict(runs=780, days=3, seed=1, end=END),
        "b.db": dict(runs=300, days=3, seed=2, end=END),  # another seed, same slots
        "c.db": dict(runs=300, days=3, seed=1, end=END + timedelta(hours=1)),  # another anchor
        "d.db": dict(runs=500, days=3, seed=1, end=END),  # the same seed, another run count
    }
    sizes = {}
    for name, params in made.items():
        with Store(tmp_path / name) as store:
            sizes[name] = store.append_many(generate(**params)).inserted
    target = tmp_path / "all.db"
    summary = merge([tmp_path / name for name in made], target)
    assert summary.total.duplicates == 0
    assert count(target) == sum(sizes.values())
    again = tmp_path / "again.db"  # the same parameters again: the same rows, nothing new
    with Store(again) as store:
        store.append_many(generate(**made["a.db"]))
    assert merge([again], target).total.inserted == 0
    fts_ok(target)


def test_demo_has_double_fired_slots_and_the_probe_lists_them(tmp_path):
    db = tmp_path / "demo.db"
    with Store(db) as store:
        store.append_many(generate(runs=3000, days=14, seed=7, end=END))
        found = store.run_probe("slots_run_more_than_once", {"since": "2025-10-01T00:00:00Z"})
    slots = found.dicts()
    assert slots and all(s["runs"] >= 2 for s in slots)
    assert slots == sorted(slots, key=lambda s: s["scheduled_at"], reverse=True)
    for slot in slots:
        assert slot["first_started_at"] <= slot["last_started_at"]
        assert slot["hosts"].startswith("worker-")
        assert len(slot["statuses"].split(",")) == slot["runs"]


# -- the probe ---------------------------------------------------------------------------------


def _probe_db(tmp_path: Path) -> Path:
    res, db = tmp_path / "results", tmp_path / "p.db"
    write(res / "1.json", result(host="worker-1"))
    write(res / "2.json", result(host="worker-2", started_at="2025-11-05T06:00:01.25Z"))
    write(res / "3.json", result(host="worker-1", started_at="2025-11-05T07:30:00Z", ended_at=None))
    # Its retry (attempt 2) is not another run of the slot.
    write(res / "4.json", result(task="solo", success=False, error="x"))
    write(
        res / "5.json",
        result(task="solo", attempt=2, started_at="2025-11-05T06:00:09Z", ended_at=None),
    )
    # A slot run once, and rows without a slot, are not listed.
    write(res / "6.json", result(task="once"))
    write(res / "7.json", result(task="free", scheduled_at=None))
    write(res / "8.json", result(task="free", scheduled_at=None, host="worker-2"))
    backfill(res, db)
    return db


def test_probe_lists_slots_run_more_than_once(tmp_path):
    db = _probe_db(tmp_path)
    with Store.open_readonly(db) as store:
        (slot,) = store.run_probe(
            "slots_run_more_than_once", {"since": "2025-11-01T00:00:00Z"}
        ).dicts()
        assert store.run_probe("slots_run_more_than_once").dicts() == []  # 7d back from now
    assert slot["task_id"] == "nightly" and slot["task_slug"] == "nightly"
    assert slot["scheduled_at"] == "2025-11-05T06:00:00.000000Z" and slot["runs"] == 3
    assert sorted(slot["hosts"].split(",")) == ["worker-1", "worker-2"]
    assert slot["first_started_at"] == "2025-11-05T06:00:01.000000Z"
    assert slot["last_started_at"] == "2025-11-05T07:30:00.000000Z"
    assert slot["seconds_apart"] == pytest.approx(5399.0, abs=0.01)
    params = {p.name for p in probes.get("slots_run_more_than_once").params}
    assert params == {"since", "limit"}

    cli_out = run(
        "probe", "slots_run_more_than_once", "--db", db, "-p", "since=2025-11-01T00:00:00Z"
    )
    assert cli_out.exit_code == 0 and "nightly" in cli_out.output and "worker-2" in cli_out.output


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="sqlite3 shell not installed")
def test_probe_runs_in_the_sqlite3_shell(tmp_path):
    db = _probe_db(tmp_path)
    sql = probes.get("slots_run_more_than_once").portable_sql({"since": "2025-11-01T00:00:00Z"})
    script = f".parameter set :limit NULL\n{sql};\n"
    out = subprocess.run(
        ["sqlite3", "-csv", str(db)], input=script, capture_output=True, text=True, check=True
    )
    (line,) = out.stdout.strip().splitlines()
    assert line.startswith("nightly,nightly,2025-11-05T06:00:00.000000Z,3,")


# -- migration ---------------------------------------------------------------------------------


def _old_database(path: Path) -> sqlite3.Connection:
    """A database as taskexec made it before m003/m004: only the first two migrations."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"CREATE TABLE {schema.MIGRATIONS_TABLE} (name TEXT PRIMARY KEY, applied_at TEXT)")
    for fn in schema.MIGRATIONS[:2]:
        fn(conn)
        conn.execute(
            f"INSERT INTO {schema.MIGRATIONS_TABLE} VALUES (?, '2025-11-01')", (fn.__name__,)
        )
    assert [fn.__name__ for fn in schema.MIGRATIONS[:2]] == ["m001_initial", "m002_heartbeat"]
    return conn


def _old_backfill_row(obj: dict) -> tuple:
    """The row the old backfill wrote for a result object: the old key, ids derived from it."""
    record = record_from_mapping(obj)
    values = dict(zip(COLUMNS, encode_record(record), strict=True))
    when = values["scheduled_at"] or values["started_at"]
    old = schema.legacy_key(record.task_id, when, record.attempt)
    trace = hashlib.sha256(f"{record.task_id}\x1f{when}".encode()).hexdigest()[:32]
    values.update(idempotency_key=old, span_id=old[:16], trace_id=trace)
    return tuple(values[c] for c in COLUMNS)


def test_migration_keeps_every_row_and_rekeys_old_default_keys(tmp_path):
    db = tmp_path / "old.db"
    conn = _old_database(db)
    marks = ", ".join("?" * len(COLUMNS))
    insert = f"INSERT INTO task_executions ({', '.join(COLUMNS)}) VALUES ({marks})"
    res = tmp_path / "results"
    files = {
        "a.json": result(),
        "b.json": result(task="sync", scheduled_at=None, content="synced 4 files"),
        "c.json": result(
            task="sync", scheduled_at=None, started_at="2025-11-05T06:10:00Z", ended_at=None
        ),
        "d.json": result(task="ip", host="10.0.0.7", success=False, error="refused"),
    }
    for name, obj in files.items():
        write(res / name, obj)
        conn.execute(insert, _old_backfill_row(obj))
    # A live row (span-keyed), a row with a key carried in by an import, a running row.
    live = TaskExecution(task_slug="live", started_at=datetime(2025, 11, 5, 8, tzinfo=UTC))
    live = TaskExecution(
        task_slug="live",
        started_at=live.started_at,
        span_id=live.span_id,
        idempotency_key=live_key(live.span_id),
        content="recorded live",
    )
    carried = TaskExecution(
        task_slug="carried",
        started_at=datetime(2025, 11, 5, 9, tzinfo=UTC),
        idempotency_key="k" * 64,
    )
    running = TaskExecution(
        task_slug="running",
        started_at=datetime(2025, 11, 5, 10, tzinfo=UTC),
        status="running",
        idempotency_key=schema.legacy_key("running", "2025-11-05T10:00:00.000000Z", 1),
    )
    # A row that already holds the key the first file's row is about to get (the same
    # execution imported from a newer database under another span id): both must stay.
    taken = record_from_mapping(files["a.json"])
    twin = TaskExecution(
        task_slug=taken.task_slug,
        started_at=taken.started_at,
        scheduled_at=taken.scheduled_at,
        host=taken.host,
        idempotency_key=taken.idempotency_key,
    )
    for record in (live, carried, running, twin):
        conn.execute(insert, encode_record(record))
    before = {r[0]: r for r in conn.execute("SELECT span_id, idempotency_key FROM task_executions")}
    with pytest.raises(sqlite3.DatabaseError):  # the old layout fails FTS5's own check
        conn.execute(FTS_CHECK)
    conn.close()

    Store(db).close()  # opening it migrates
    after = rows(db)
    assert len(after) == len(before) == 8
    assert {r["span_id"] for r in after} == set(before)  # no row lost, ids untouched
    assert len({r["idempotency_key"] for r in after}) == 8
    by_task = {}
    for r in after:
        by_task.setdefault(r["task_id"], []).append(r)
    assert by_task["live"][0]["idempotency_key"] == live_key(live.span_id)
    assert by_task["carried"][0]["idempotency_key"] == "k" * 64
    assert by_task["running"][0]["idempotency_key"] == idempotency_key(
        "running", "2025-11-05T10:00:00.000000Z", 1
    )
    nightly = {r["span_id"]: r["idempotency_key"] for r in by_task["nightly"]}
    assert nightly[twin.span_id] == taken.idempotency_key  # it had the key already: kept
    (migrated_span,) = set(nightly) - {twin.span_id}
    assert nightly[migrated_span] == schema.span_key(migrated_span)  # its new key was taken
    for r in by_task["sync"] + by_task["ip"]:
        assert r["idempotency_key"] == idempotency_key(
            r["task_id"],
            r["started_at"],
            1,
            host=r["host"],
            pid=r["pid"],
            scheduled_at=r["scheduled_at"],
        )
    assert by_task["ip"][0]["host"] == "<ip>"
    fts_ok(db)
    applied = {r[0] for r in sqlite3.connect(db).execute("SELECT name FROM _taskexec_migrations")}
    assert {"m003_execution_keys", "m004_fts_content_view"} <= applied

    # Backfilling the same files again: the recomputed keys match, nothing is added.
    again = backfill(res, db)
    assert (again.inserted, again.duplicates) == (0, 4)
    assert count(db) == 8
    hits = "SELECT count(*) FROM task_executions_fts WHERE task_executions_fts MATCH ?"
    with sqlite3.connect(db) as c:
        assert c.execute(hits, ("synced",)).fetchone()[0] == 1
        assert c.execute(hits, ("refused",)).fetchone()[0] == 1
        assert c.execute(hits, ("recorded",)).fetchone()[0] == 1


# -- backfill links retries --------------------------------------------------------------------


def _linked(db: Path, task: str) -> list[dict]:
    return rows(db, f"task_id = '{task}'", "attempt, started_at")


def test_backfill_links_retries_of_one_slot(tmp_path):
    res, db = tmp_path / "results", tmp_path / "t.db"
    write(
        res / "runs.json",
        [
            result(task="slot", success=False, error="flaky"),
            result(
                task="slot",
                attempt=2,
                started_at="2025-11-05T06:00:30Z",
                ended_at="2025-11-05T06:00:40Z",
                success=False,
                error="flaky",
            ),
            result(task="slot", attempt=3, started_at="2025-11-05T06:05:00Z", ended_at=None),
        ],
    )
    backfill(res, db)
    one, two, three = _linked(db, "slot")
    assert one["retry_of"] is None
    assert two["retry_of"] == one["span_id"] and three["retry_of"] == two["span_id"]
    assert one["trace_id"] == two["trace_id"] == three["trace_id"]
    with Store.open_readonly(db) as store:
        assert [a for a, _ in store.attempts_of([one["trace_id"]])[one["trace_id"]]] == [1, 2, 3]


def test_backfill_links_retries_without_a_slot_within_the_window(tmp_path):
    res, db = tmp_path / "results", tmp_path / "t.db"
    free = {"scheduled_at": None}
    # Across files, retry first in name order: it waits for its attempt 1.
    write(
        res / "a_retry.json",
        result(task="free", attempt=2, started_at="2025-11-05T06:40:00Z", ended_at=None, **free),
    )
    write(
        res / "b_first.json",
        result(task="free", success=False, error="timeout talking to api", **free),
    )
    # Outside the window (over an hour after attempt 1 ended): another run, not linked.
    write(
        res / "c_late.json",
        result(task="late", success=False, error="x", **free),
    )
    write(
        res / "d_late_retry.json",
        result(task="late", attempt=2, started_at="2025-11-05T07:00:04Z", ended_at=None, **free),
    )
    # After a success there is nothing to retry.
    write(res / "e_ok.json", result(task="fine", **free))
    write(
        res / "f_ok_retry.json",
        result(task="fine", attempt=2, started_at="2025-11-05T06:01:00Z", ended_at=None, **free),
    )
    summary = backfill(res, db)
    assert summary.inserted == 6
    first, retry = _linked(db, "free")
    assert retry["retry_of"] == first["span_id"] and retry["trace_id"] == first["trace_id"]
    for task in ("late", "fine"):
        a, b = _linked(db, task)
        assert b["retry_of"] is None and a["trace_id"] != b["trace_id"]
    assert backfill(res, db).inserted == 0  # linking changes no key


def test_linking_keeps_what_records_carry_and_stays_bounded():
    t0 = datetime(2025, 11, 5, 6, tzinfo=UTC)

    def rec(attempt: int, minutes: int, **kw) -> TaskExecution:
        return record_from_mapping(
            {
                "task_id": kw.pop("task", "t"),
                "attempt": attempt,
                "started_at": (t0 + timedelta(minutes=minutes)).isoformat(),
                "duration_s": 10,
                "success": kw.pop("success", False),
                **kw,
            }
        )

    first = rec(1, 0)
    assert first.trace_id == trace_of_key(first.idempotency_key)
    own_trace = rec(2, 1, trace_id="ab" * 16)  # names its own run, which is not first's
    own_link = rec(2, 2, retry_of="cd" * 8)
    out = list(link_retries([first, own_trace, own_link]))
    assert {r.span_id: (r.trace_id, r.retry_of) for r in out} == {
        first.span_id: (first.trace_id, None),
        own_trace.span_id: ("ab" * 16, None),
        own_link.span_id: (own_link.trace_id, "cd" * 8),
    }
    same_trace = rec(2, 3, trace_id=first.trace_id)  # carries first's trace: gets the link
    (_, linked) = list(link_retries([first, same_trace]))
    assert linked.trace_id == first.trace_id and linked.retry_of == first.span_id

    # Retries whose attempt 1 never comes go out unlinked, at the latest when memory is full.
    orphans = [rec(2, i, task=f"orphan{i}") for i in range(5)]
    stream = link_retries(orphans, hold=2)
    assert next(stream) is orphans[0]  # held back only while no more than `hold` wait
    assert [r.span_id for r in stream] == [r.span_id for r in orphans[1:]]
    # The window is a parameter: ten minutes is too short for a retry 40 minutes later.
    late = rec(2, 40)
    assert list(link_retries([first, late], window=timedelta(minutes=10)))[1].retry_of is None
    assert list(link_retries([first, late]))[1].retry_of == first.span_id
    # Of two attempts 1 that could have been retried, the one that ended last before it.
    other = rec(1, 20, host="worker-9")
    chosen = list(link_retries([first, other, late]))[2]
    assert chosen.retry_of == other.span_id


def test_linking_a_shuffled_stream_finds_every_retry():
    import random

    t0 = datetime(2025, 11, 5, tzinfo=UTC)
    rng = random.Random(5)
    objs, expected = [], {}
    for i in range(200):
        task, start = f"task{i % 7}", t0 + timedelta(minutes=3 * i)
        slot = {"scheduled_at": start.isoformat()} if i % 2 else {}
        tries = 1 + (i % 3)
        for attempt in range(1, tries + 1):
            began = start + timedelta(seconds=40 * (attempt - 1))
            objs.append(
                {
                    "task_id": task,
                    "attempt": attempt,
                    "started_at": began.isoformat(),
                    "duration_s": 30,
                    "success": attempt == tries,
                    **slot,
                }
            )
            expected[(task, began)] = (i, attempt)
    rng.shuffle(objs)
    out = list(link_retries(record_from_mapping(o) for o in objs))
    assert len(out) == len(objs)
    by_span = {r.span_id: r for r in out}
    for record in out:
        run_no, attempt = expected[(record.task_id, record.started_at)]
        if attempt == 1:
            assert record.retry_of is None
            continue
        prior = by_span[record.retry_of]
        assert expected[(prior.task_id, prior.started_at)] == (run_no, attempt - 1)
        assert record.trace_id == prior.trace_id
