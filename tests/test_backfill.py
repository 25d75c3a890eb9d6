"""Backfill: every accepted shape and alias from real files, malformed files reported by path,
idempotent re-runs, a dry run that writes nothing, and the live key shared with the Recorder."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from taskexec.cli import cli
from taskexec.errors import InvalidRecord
from taskexec.ingest.backfill import (
    BackfillSummary,
    backfill,
    find_files,
    parse_result_time,
    records_from_bytes,
)
from taskexec.model import TaskExecution, idempotency_key, live_key
from taskexec.recorder import Recorder

T0 = "2025-11-05T06:00:00Z"


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def summary(result) -> dict[str, int]:
    """The command's summary lines ("label:   1,234  note") as {label: number}."""
    out = {}
    for line in result.stdout.splitlines():
        if m := re.match(r"^([a-z][a-z \-]+):\s+([\d,]+)", line):
            out[m.group(1)] = int(m.group(2).replace(",", ""))
    return out


def write(path: Path, content: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_text(json.dumps(content), encoding="utf-8")
    return path


def rows(db: Path, where: str = "1") -> list[dict]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    return [
        dict(r) for r in conn.execute(f"SELECT * FROM task_executions WHERE {where} ORDER BY id")
    ]


def one(obj: dict) -> dict:
    """Parse one object the way a file would be parsed; return the record's fields."""
    summary = BackfillSummary()
    records = records_from_bytes(json.dumps(obj).encode(), "x.json", summary)
    assert summary.ok, summary.problems
    (record,) = records
    return {name: getattr(record, name) for name in record.__dataclass_fields__}


# -- shapes ----------------------------------------------------------------------------------


def test_object_list_and_json_lines_files(tmp_path):
    res = tmp_path / "results"
    write(
        res / "daily_reflection_2025-11-05T06-00-00.json",
        {"task_id": "daily_reflection", "started_at": T0, "success": True},
    )
    write(res / "batch.json", [{"name": "a", "timestamp": T0}, {"name": "b", "timestamp": T0}])
    write(
        res / "deep" / "log.jsonl",
        '{"name": "c", "timestamp": "2025-11-05T07:00:00Z"}\n\n{"name": "d", "timestamp": 1}\n',
    )
    # JSON Lines in a .json file is recognised too (the whole-document parse sees "extra data").
    write(res / "lines.json", '{"name": "e", "timestamp": 5}\n{"name": "f", "timestamp": 6}\n')
    write(res / "notes.txt", "not a result file")
    db = tmp_path / "t.db"
    result = run("backfill", res, "--db", db)
    assert result.exit_code == 0, result.output
    slugs = sorted(r["task_slug"] for r in rows(db))
    assert slugs == ["a", "b", "c", "d", "daily_reflection", "e", "f"]
    assert {r["provenance"] for r in rows(db)} == {"backfill"}
    assert summary(result)["files scanned"] == 4
    assert summary(result)["records found"] == 7


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (
            {"task_id": "t1", "task_slug": "s", "started_at": T0},
            {"task_id": "t1", "task_slug": "s"},
        ),
        ({"id": "t2", "task_name": "n", "start_time": T0}, {"task_id": "t2", "task_slug": "n"}),
        ({"id": 42, "name": "n", "timestamp": T0}, {"task_id": "42", "task_slug": "n"}),
        ({"id": "only-id", "timestamp": T0}, {"task_id": "only-id", "task_slug": "only-id"}),
        (
            {"name": "only-name", "timestamp": T0},
            {"task_id": "only-name", "task_slug": "only-name"},
        ),
        (
            {"name": "s", "timestamp": T0, "ended_at": "2025-11-05T06:00:02Z"},
            {"duration_ms": 2000.0},
        ),
        (
            {"name": "s", "timestamp": T0, "completed_at": "2025-11-05T06:00:01.5Z"},
            {"duration_ms": 1500.0},
        ),
        (
            {"name": "s", "timestamp": T0, "duration_ms": 250},
            {"duration_ms": 250.0, "ended_at": datetime(2025, 11, 5, 6, 0, 0, 250000, tzinfo=UTC)},
        ),
        ({"name": "s", "timestamp": T0, "duration_s": 1.25}, {"duration_ms": 1250.0}),
        (
            {"name": "s", "ended_at": "2025-11-05T06:00:10Z", "duration_s": 10},
            {"started_at": datetime(2025, 11, 5, 6, 0, tzinfo=UTC)},
        ),
        ({"name": "s", "timestamp": T0, "success": True}, {"status": "success"}),
        ({"name": "s", "timestamp": T0, "success": False}, {"status": "failed"}),
        ({"name": "s", "timestamp": T0, "status": "Timed_Out"}, {"status": "timeout"}),
        ({"name": "s", "timestamp": T0, "status": "canceled"}, {"status": "cancelled"}),
        ({"name": "s", "timestamp": T0, "status": "ok", "success": False}, {"status": "success"}),
        (
            {"name": "s", "timestamp": T0, "error": "boom"},
            {"status": "failed", "error_message": "boom", "error_type": None},
        ),
        (
            {
                "name": "s",
                "timestamp": T0,
                "success": False,
                "error": {
                    "type": "KeyError",
                    "message": "k",
                    "traceback": "Traceback...\nKeyError: k",
                },
            },
            {
                "error_type": "KeyError",
                "error_message": "k",
                "stack_trace": "Traceback...\nKeyError: k",
            },
        ),
        ({"name": "s", "timestamp": T0, "error": None}, {"status": "success"}),
        (
            {
                "name": "s",
                "timestamp": T0,
                "memories_retrieved": 7,
                "files_written": ["a.md", "b.md"],
                "attempt": 2,
                "retrieval_sources": ["notes"],
            },
            {
                "memories_retrieved": 7,
                "files_written": ("a.md", "b.md"),
                "attempt": 2,
                "retrieval_sources": ("notes",),
            },
        ),
        (
            {
                "name": "s",
                "timestamp": T0,
                "summary": "did things",
                "model": "m1",
                "attributes": {"k": 1},
            },
            {"content": "did things", "attributes": {"model": "m1", "k": 1}},
        ),
    ],
)
def test_field_aliases(obj, expected):
    record = one(obj)
    for name, value in expected.items():
        assert record[name] == value, name


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-11-05T06:00:00Z", datetime(2025, 11, 5, 6, tzinfo=UTC)),
        ("2025-11-05T06:00:00z", datetime(2025, 11, 5, 6, tzinfo=UTC)),
        ("2025-11-05T08:00:00.5+02:00", datetime(2025, 11, 5, 6, 0, 0, 500000, tzinfo=UTC)),
        ("2025-11-05T01:00:00-0500", datetime(2025, 11, 5, 6, tzinfo=UTC)),
        (1762322400, datetime(2025, 11, 5, 6, tzinfo=UTC)),
        (1762322400.25, datetime(2025, 11, 5, 6, 0, 0, 250000, tzinfo=UTC)),
        (1762322400123, datetime(2025, 11, 5, 6, 0, 0, 123000, tzinfo=UTC)),
        ("1762322400", datetime(2025, 11, 5, 6, tzinfo=UTC)),
        ("1762322400123", datetime(2025, 11, 5, 6, 0, 0, 123000, tzinfo=UTC)),
        (1762322400123456789, datetime(2025, 11, 5, 6, 0, 0, 123456, tzinfo=UTC)),
    ],
)
def test_timestamps_with_zone_or_epoch(value, expected):
    assert parse_result_time(value, "started_at") == expected


def test_zoneless_timestamp_is_utc_and_counted(tmp_path):
    res = tmp_path / "r"
    write(
        res / "a.json",
        {"name": "a", "started_at": "2025-11-05 06:00:00", "ended_at": "2025-11-05T06:00:01"},
    )
    db = tmp_path / "t.db"
    result = run("backfill", res, "--db", db)
    assert result.exit_code == 0
    assert rows(db)[0]["started_at"] == "2025-11-05T06:00:00.000000Z"
    assert summary(result)["zone-less times"] == 2


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(1974, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    )
)
def test_epoch_and_iso_forms_agree(when):
    # Epoch units are told apart by magnitude, which is unambiguous from March 1973 on.
    when = when.replace(microsecond=when.microsecond // 1000 * 1000)
    ms = (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    assert parse_result_time(ms, "t") == parse_result_time(when.isoformat(), "t") == when
    assert parse_result_time(str(ms), "t") == when


def test_bad_timestamps_name_the_field():
    for value in ("yesterday", True, None, [1], float("nan")):
        with pytest.raises(InvalidRecord) as info:
            parse_result_time(value, "start_time")
        assert info.value.field == "start_time"


# -- malformed input -------------------------------------------------------------------------


def test_malformed_files_are_reported_and_good_files_imported(tmp_path):
    res = tmp_path / "r"
    good = [write(res / f"good_{i}.json", {"name": f"g{i}", "timestamp": T0}) for i in range(3)]
    write(res / "bad_json.json", '{"name": "x", "timestamp": ')
    write(res / "wrong_types.json", {"name": "x", "timestamp": T0, "memories_retrieved": "many"})
    write(res / "latin1.json", '{"name": "café", "timestamp": 1}'.encode("latin-1"))
    write(res / "empty.json", b"")
    write(res / "scalar.json", "42")
    write(res / "empty_list.json", "[]")
    big = res / "huge.json"
    with open(big, "wb") as handle:  # sparse: 100 MB on paper, a few bytes on disk
        handle.write(b'[{"name": "x", "timestamp": 1}, ')
        handle.truncate(100 * 1024 * 1024)
    db = tmp_path / "t.db"
    result = run("backfill", res, "--db", db)
    assert result.exit_code == 1
    errors = result.stderr
    expect = {
        "bad_json.json": "invalid JSON at line 1",
        "wrong_types.json": "memories_retrieved",
        "latin1.json": "not UTF-8",
        "empty.json": "empty file",
        "scalar.json": "expected an object or a list of objects",
        "empty_list.json": "no records",
        "huge.json": "over the 52,428,800-byte limit",
    }
    for name, reason in expect.items():
        line = next((ln for ln in errors.splitlines() if name in ln), None)
        assert line is not None, f"{name} not reported:\n{errors}"
        assert str(res / name) in line and reason in line, line
    assert sorted(r["task_slug"] for r in rows(db)) == ["g0", "g1", "g2"]
    assert len(good) == 3
    assert summary(result)["skipped files"] == 7


def test_bad_records_are_skipped_and_the_rest_of_the_file_imported(tmp_path):
    res = tmp_path / "r"
    write(
        res / "list.json",
        [
            {"name": "ok1", "timestamp": T0},
            {"name": "bad", "timestamp": T0, "attempt": 0},
            "not an object",
            {"name": "ok2", "timestamp": T0, "status": "exploded"},
            {"timestamp": T0},
            {"name": "ok3", "timestamp": T0, "success": "yes"},
            {"name": "ok4", "timestamp": T0},
        ],
    )
    write(
        res / "l.jsonl",
        '{"name": "l1", "timestamp": 1}\n{oops}\n{"name": "l2", "timestamp": "x"}\n',
    )
    db = tmp_path / "t.db"
    result = run("backfill", res, "--db", db)
    assert result.exit_code == 1
    errors = result.stderr
    list_path = str(res / "list.json")
    assert f"{list_path}: record 2: attempt: must be an integer >= 1" in errors
    assert f"{list_path}: record 3: expected an object, got a string" in errors
    assert f"{list_path}: record 4: status: unknown status 'exploded'" in errors
    assert f"{list_path}: record 5: task_slug: missing" in errors
    assert f"{list_path}: record 6: success: expected true or false" in errors
    assert f"{res / 'l.jsonl'}: line 2: invalid JSON" in errors
    assert f"{res / 'l.jsonl'}: line 3: timestamp: not an ISO-8601 timestamp" in errors
    assert sorted(r["task_slug"] for r in rows(db)) == ["l1", "ok1", "ok4"]
    assert summary(result)["skipped records"] == 7
    assert summary(result)["skipped files"] == 0


def test_framework_states_map_and_unknown_ones_list_the_aliases(tmp_path):
    """Celery's and RQ's states as their result backends write them: a retried attempt
    failed, a revoked one was cancelled, a started one has no end (yet), a pending one never
    ran (counted, not imported, not a problem)."""
    res = tmp_path / "r"
    states = {
        "RETRY": "failed",
        "REVOKED": "cancelled",
        "STARTED": "running",
        "SUCCESS": "success",
        "FAILURE": "failed",
        "finished": "success",
        "stopped": "cancelled",
    }
    records = [
        {"task_name": f"t_{state.lower()}", "timestamp": T0, "status": state}
        for state in [*states, "PENDING", "queued"]
    ]
    write(res / "celery.jsonl", "\n".join(json.dumps(r) for r in records) + "\n")
    db = tmp_path / "t.db"
    result = run("backfill", res, "--db", db)
    assert result.exit_code == 0, result.stderr
    got = {r["task_slug"]: r["status"] for r in rows(db)}
    assert got == {f"t_{state.lower()}": status for state, status in states.items()}
    counts = summary(result)
    assert counts["inserted"] == len(states) and counts["not run yet"] == 2
    assert "skipped records" in counts and counts["skipped records"] == 0

    write(res / "bad.json", {"task_name": "x", "timestamp": T0, "status": "exploded"})
    bad = run("backfill", res, "--db", db)
    assert bad.exit_code == 1
    (line,) = bad.stderr.strip().splitlines()
    assert "status: unknown status 'exploded'; expected one of running, success" in line
    for alias in ("succeeded", "finished = success", "retry", "revoked", "lost = abandoned"):
        assert alias in line
    assert "pending" in line and "have not run" not in line and "has not run" in line


def test_size_limit_is_configurable(tmp_path):
    res = tmp_path / "r"
    write(res / "a.json", {"name": "a", "timestamp": T0, "pad": "x" * 2_000_000})
    result = run("backfill", res, "--db", tmp_path / "t.db", "--max-mb", 1)
    assert result.exit_code == 1 and "over the 1,048,576-byte limit" in result.stderr
    assert run("backfill", res, "--db", tmp_path / "t.db", "--max-mb", 3).exit_code == 0


def test_missing_directory_is_a_clean_error(tmp_path):
    result = run("backfill", tmp_path / "nope", "--db", tmp_path / "t.db")
    assert result.exit_code == 2 and "does not exist" in result.output


# -- idempotency, dry run, filters -----------------------------------------------------------


def _results(res: Path, n: int = 20) -> None:
    for i in range(n):
        write(
            res / f"r{i:03}.json",
            {
                "task_id": f"task-{i % 3}",
                "started_at": f"2025-11-05T06:{i:02}:00Z",
                "success": i % 4 != 0,
                "error": None if i % 4 else {"type": "RuntimeError", "message": f"failure #{i}"},
            },
        )


def test_rerun_inserts_nothing(tmp_path):
    res, db = tmp_path / "r", tmp_path / "t.db"
    _results(res)
    first = run("backfill", res, "--db", db)
    assert summary(first)["inserted"] == 20
    before = rows(db)
    again = run("backfill", res, "--db", db)
    assert again.exit_code == 0
    assert summary(again)["inserted"] == 0
    assert summary(again)["duplicates"] == 20
    assert rows(db) == before
    groups = sqlite3.connect(db).execute("SELECT count(*), sum(occurrences) FROM error_groups")
    assert groups.fetchone() == (1, 5)  # the digits differ: one group of five


def test_ids_are_derived_so_reruns_are_identical(tmp_path):
    res = tmp_path / "r"
    _results(res, 3)
    backfill(res, tmp_path / "a.db")
    backfill(res, tmp_path / "b.db")
    q = "SELECT span_id, trace_id, idempotency_key FROM task_executions ORDER BY span_id"
    assert (
        sqlite3.connect(tmp_path / "a.db").execute(q).fetchall()
        == sqlite3.connect(tmp_path / "b.db").execute(q).fetchall()
    )


def test_dry_run_writes_nothing(tmp_path):
    res, db = tmp_path / "r", tmp_path / "t.db"
    _results(res, 10)
    run("backfill", res, "--db", db)
    _results(res, 15)  # 5 new files
    write(res / "broken.json", "{")
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    result = run("backfill", res, "--db", db, "--dry-run")
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    wal = tmp_path / "t.db-wal"  # SQLite's read protocol may create it; nothing is written to it
    assert not wal.exists() or wal.stat().st_size == 0
    assert "nothing was written" in result.stdout
    assert summary(result)["would insert"] == 5
    assert summary(result)["duplicates"] == 10
    assert result.exit_code == 1 and "broken.json" in result.stderr
    assert len(rows(db)) == 10


def test_dry_run_does_not_create_the_database(tmp_path):
    res = tmp_path / "r"
    _results(res, 4)
    write(res / "dup.json", {"task_id": "task-0", "started_at": "2025-11-05T06:00:00Z"})
    result = run("backfill", res, "--db", tmp_path / "new.db", "--dry-run")
    assert result.exit_code == 0
    assert not (tmp_path / "new.db").exists()
    assert summary(result)["would insert"] == 4
    assert summary(result)["duplicates"] == 1


def test_since_and_glob(tmp_path):
    res, db = tmp_path / "r", tmp_path / "t.db"
    _results(res, 10)
    write(res / "other.txt", json.dumps({"name": "txt", "timestamp": T0}))
    result = run("backfill", res, "--db", db, "--since", "2025-11-05T06:05:00Z")
    assert result.exit_code == 0
    assert len(rows(db)) == 5 and summary(result)["before --since"] == 5
    result = run("backfill", res, "--db", db, "--glob", "*.txt")
    assert [r["task_slug"] for r in rows(db, "task_slug = 'txt'")] == ["txt"]
    assert find_files(res, ["r00[0-2].json"]) == [str(res / f"r00{i}.json") for i in range(3)]


# -- the live key ----------------------------------------------------------------------------


def test_backfill_of_a_live_run_that_names_its_span_adds_no_row(tmp_path):
    db = tmp_path / "t.db"
    scheduled = datetime(2025, 11, 5, 6, 0, tzinfo=UTC)
    with (
        Recorder(db) as rec,
        rec.track("daily_reflection", scheduled_at=scheduled) as live,
    ):
        live.retrieved(3)
    res = tmp_path / "r"
    write(
        res / "daily_reflection_2025-11-05T06-00-00.json",
        {
            "task_id": "daily_reflection",
            "span_id": live.span_id,
            "scheduled_at": "2025-11-05T06:00:00Z",
            "started_at": "2025-11-05T06:00:00.731Z",
            "success": True,
            "memories_retrieved": 3,
        },
    )
    result = run("backfill", res, "--db", db)
    assert result.exit_code == 0
    assert summary(result)["duplicates"] == 1
    (row,) = rows(db)
    assert row["provenance"] == "live" and row["span_id"] == live.span_id
    assert row["idempotency_key"] == live_key(live.span_id)
    assert row["scheduled_at"] == "2025-11-05T06:00:00.000000Z"


def test_key_uses_started_at_without_a_schedule():
    record = one({"task_id": "t", "started_at": "2025-11-05T08:00:00+02:00", "attempt": 3})
    assert record["idempotency_key"] == idempotency_key(
        "t", datetime(2025, 11, 5, 6, tzinfo=UTC), 3
    )


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
_KEYS = [
    "task_id",
    "id",
    "started_at",
    "ended_at",
    "scheduled_at",
    "status",
    "success",
    "error",
    "duration_ms",
    "duration_s",
    "attempt",
    "memories_retrieved",
    "files_written",
    "trace_id",
    "span_id",
    "attributes",
    "content",
    "pid",
]
_TIMES = st.one_of(st.integers(), st.floats(), st.text(max_size=30), st.just(T0))
_RECORD = st.fixed_dictionaries(
    {"name": st.text(min_size=1, max_size=8), "timestamp": _TIMES},
    optional={key: _JSON | _TIMES for key in _KEYS},
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_RECORD, max_size=4) | _RECORD)
def test_any_json_is_imported_or_reported_never_raises(doc):
    summary = BackfillSummary()
    records = records_from_bytes(json.dumps(doc).encode(), "f.json", summary)
    assert summary.records_found == len(records) + summary.records_skipped
    assert all(p.path == "f.json" and p.reason for p in summary.problems)


# -- hostile input: one bad file never stops an import ---------------------------------------


def _six_good(res: Path) -> None:
    for i in range(6):
        write(res / f"good_{i}.json", {"task_id": f"good_{i}", "started_at": T0})


def _nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = {"a": value}
    return value


HOSTILE = {
    "symlink loop": (None, "symbolic link loop"),
    "list nested 900 deep": ("[" * 900 + "]" * 900, "expected an object, got a list"),
    "object nested 900 deep": (
        {"task_id": "x", "started_at": T0, "payload": _nested(900)},
        "payload: nested deeper than 32 levels",
    ),
    "JSON nested 5000 deep": ("[" * 5000 + "]" * 5000, "invalid JSON: nested too deeply"),
    "attempt over 2**63": (
        '{"task_id": "x", "started_at": 1, "attempt": 99999999999999999999}',
        "attempt: must be an integer >= 1 and <= 2**63-1",
    ),
    "pid over 2**63": (
        '{"task_id": "x", "started_at": 1, "pid": 99999999999999999999}',
        "pid: must be a 64-bit integer",
    ),
    "memories_retrieved over 2**63": (
        '{"task_id": "x", "started_at": 1, "memories_retrieved": 99999999999999999999}',
        "memories_retrieved: must be an integer >= 0 and <= 2**63-1",
    ),
    "duration_ms over any span": (
        {"task_id": "x", "started_at": T0, "duration_ms": 10**30},
        "duration_ms: out of range",
    ),
    "a date past 9999 in UTC": (
        {"task_id": "x", "started_at": "9999-12-31T23:59:59-05:00"},
        "started_at: out of range",
    ),
    "a date before year 1 in UTC": (
        {"task_id": "x", "started_at": "0001-01-01T00:00:00+05:00"},
        "started_at: out of range",
    ),
    "a 5000-digit number": ('{"task_id": "x", "started_at": ' + "9" * 5000 + "}", "invalid JSON"),
    "superscript digits": ({"task_id": "x", "started_at": "²³"}, "not an ISO-8601"),
    "a lone surrogate": (
        '{"task_id": "x", "started_at": 1, "note": "\\udc00"}',
        "note: holds a lone surrogate",
    ),
    "host that is not text": ({"task_id": "x", "started_at": T0, "host": 7}, "host: expected"),
    "UTF-16": (json.dumps({"task_id": "x", "started_at": T0}).encode("utf-16"), "UTF-16"),
    "binary garbage": (bytes(range(256)), "not UTF-8"),
}


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_one_hostile_file_among_six_good_ones(tmp_path, kind):
    res = tmp_path / "r"
    _six_good(res)
    content, reason = HOSTILE[kind]
    bad = res / "bad.json"
    if content is None:
        bad.symlink_to("bad.json")
    else:
        write(bad, content)
    db = tmp_path / "t.db"
    result = CliRunner().invoke(cli, ["backfill", str(res), "--db", str(db)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"skipped: {bad}: ") and reason in line, line
    assert sorted(r["task_slug"] for r in rows(db)) == [f"good_{i}" for i in range(6)]


def test_jsonl_lines_fail_alone(tmp_path):
    path = write(
        tmp_path / "r" / "log.jsonl",
        '{"task_id": "a", "started_at": 1}\n'
        + "[" * 5000
        + "]" * 5000
        + "\n"
        + '{"task_id": "b", "started_at": "9999-12-31T23:59:59-05:00"}\n'
        + '{"task_id": "c", "started_at": 2, "note": "line\u2028separator"}\n',
    )
    summary = backfill(path.parent, tmp_path / "t.db")
    assert [str(p) for p in summary.problems] == [
        f"{path}: line 2: invalid JSON: nested too deeply to parse",
        f"{path}: line 3: started_at: out of range: '9999-12-31T23:59:59-05:00' is past year "
        "9999 (or before 1) in UTC",
    ]
    assert summary.inserted == 2  # U+2028 inside a string does not split the line


def test_nesting_limit_is_32_levels():
    ok = {"task_id": "x", "started_at": T0, "payload": _nested(31)}  # 31 objects + the leaf
    assert one(ok)["attributes"]["payload"]["a"]["a"]
    summary = BackfillSummary()
    deep = {"task_id": "x", "started_at": T0, "payload": _nested(33)}
    assert records_from_bytes(json.dumps(deep).encode(), "x.json", summary) == []
    assert str(summary.problems[0]) == "x.json: payload: nested deeper than 32 levels"


def test_symlinks_outside_the_directory_are_not_followed_unless_asked(tmp_path):
    res, outside = tmp_path / "r", tmp_path / "outside"
    _six_good(res)
    write(outside / "secret.json", {"task_id": "secret", "started_at": T0})
    write(outside / "dir" / "far.json", {"task_id": "far", "started_at": T0})
    (res / "escape.json").symlink_to(outside / "secret.json")
    (res / "linked").symlink_to(outside / "dir")
    (res / "alias.json").symlink_to(res / "good_0.json")  # inside: read, a duplicate
    (res / "self").symlink_to(res)  # a directory loop
    (res / "dangling.json").symlink_to(res / "nothing.json")
    db = tmp_path / "t.db"
    result = run("backfill", res, "--db", db)
    assert result.exit_code == 1
    errors = result.stderr.splitlines()
    assert len(errors) == 3, errors
    escape = f"skipped: {res / 'escape.json'}: symbolic link to {outside / 'secret.json'}, "
    assert any(e.startswith(escape) and "not followed" in e for e in errors), errors
    assert any(f"{res / 'linked'}: symbolic link to" in e and "not followed" in e for e in errors)
    assert any(f"{res / 'dangling.json'}: dangling symbolic link" in e for e in errors)
    assert len(rows(db)) == 6 and summary(result)["duplicates"] == 1

    followed = run("backfill", res, "--db", tmp_path / "f.db", "--follow-symlinks")
    assert followed.exit_code == 1  # the dangling link is still reported
    assert followed.stderr.count("skipped:") == 1 and "dangling" in followed.stderr
    slugs = sorted(r["task_slug"] for r in rows(tmp_path / "f.db"))
    assert slugs == sorted([*(f"good_{i}" for i in range(6)), "secret", "far"])


def test_a_named_symlink_to_a_file_is_read(tmp_path):
    target = write(tmp_path / "elsewhere" / "one.json", {"task_id": "one", "started_at": T0})
    (tmp_path / "link.json").symlink_to(target)
    result = run("backfill", tmp_path / "link.json", "--db", tmp_path / "t.db")
    assert result.exit_code == 0 and len(rows(tmp_path / "t.db")) == 1


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_reported_never_waited_on(tmp_path):
    res = tmp_path / "r"
    _six_good(res)
    os.mkfifo(res / "pipe.json")
    (res / "dir.json").mkdir()  # a directory named like a result file is walked, not read
    result = run("backfill", res, "--db", tmp_path / "t.db")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"skipped: {res / 'pipe.json'}: not a regular file (a FIFO)"
    assert len(rows(tmp_path / "t.db")) == 6


def test_a_file_that_vanishes_mid_run_is_reported(tmp_path):
    res = tmp_path / "r"
    _six_good(res)
    paths = find_files(res)
    (res / "good_3.json").unlink()  # listed, then gone before it is read
    summary = backfill(res, tmp_path / "t.db", paths=paths)
    assert [str(p) for p in summary.problems] == [
        f"{res / 'good_3.json'}: cannot open: it disappeared (no such file)"
    ]
    assert summary.inserted == 5


def test_permission_denied_is_reported(tmp_path, monkeypatch):
    # As root chmod 0 stops nothing, so the refusal is simulated here; test_hostile.py runs
    # the real thing in a process without root's permission-skipping capabilities.
    res = tmp_path / "r"
    _six_good(res)
    write(res / "secret.json", {"task_id": "secret", "started_at": T0})
    (res / "closed").mkdir()
    real_open, real_scandir = os.open, os.scandir

    def refusing_open(path, *args, **kwargs):
        if str(path).endswith("secret.json"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    def refusing_scandir(path="."):
        if str(path).endswith("closed"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "open", refusing_open)
    monkeypatch.setattr(os, "scandir", refusing_scandir)
    result = run("backfill", res, "--db", tmp_path / "t.db")
    assert result.exit_code == 1
    assert sorted(result.stderr.splitlines()) == [
        f"skipped: {res / 'closed'}: cannot list the directory: Permission denied",
        f"skipped: {res / 'secret.json'}: cannot open: Permission denied",
    ]
    assert len(rows(tmp_path / "t.db")) == 6


def test_unprintable_file_names_stay_on_one_line(tmp_path):
    res = tmp_path / "r"
    _six_good(res)
    with open(os.path.join(os.fsencode(res), b"bad\xff\x1b[2Jname\n.json"), "wb") as handle:
        handle.write(b"{")
    result = run("backfill", res, "--db", tmp_path / "t.db")
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert "bad\\udcff\\x1b[2Jname\\x0a.json: invalid JSON" in line


def test_record_range_checks_name_the_field():
    base = {"task_slug": "t", "started_at": datetime(2025, 1, 1, tzinfo=UTC)}
    for name, value in [
        ("attempt", 2**63),
        ("attempt", 0),
        ("pid", 2**63),
        ("pid", -(2**63) - 1),
        ("memories_retrieved", 2**63),
        ("memories_retrieved", -1),
        ("duration_ms", 10**30),
        ("duration_ms", float("nan")),
        ("duration_ms", float("inf")),
        ("duration_ms", 10**400),
        ("ended_at", datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5)))),
        ("scheduled_at", datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))),
    ]:
        with pytest.raises(InvalidRecord) as info:
            TaskExecution(**{**base, name: value})
        assert info.value.field == name and len(str(info.value)) < 200
    edge = TaskExecution(**base, attempt=2**63 - 1, pid=-(2**63), memories_retrieved=2**63 - 1)
    assert edge.attempt == 2**63 - 1
