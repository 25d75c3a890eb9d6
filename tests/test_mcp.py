"""MCP tools in process, through the SDK's own Client: every tool, every error, no writes.

Answers are checked against SQL run directly on the demo database, so a wrong filter, order,
count or outcome fails here. Times are explicit ISO values: the demo ends 2026-11-20T12:00Z.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from taskexec.db import awareness
from taskexec.db.store import Store
from taskexec.faces.mcp.models import COUNT_CAP, FAILED_PAGE, LIST_PAGE
from taskexec.faces.mcp.server import build_server
from taskexec.ingest.demo import generate
from taskexec.model import FAILURE_STATUSES, STATUSES, WINDOW_FORMS, window_start

pytestmark = pytest.mark.anyio
SINCE = "2026-11-19T12:00:00Z"
SINCE_CANON = "2026-11-19T12:00:00.000000Z"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def db(demo_db: Path) -> Path:
    return demo_db


def sql(path: Path, query: str, *params: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(query, params).fetchall()
    finally:
        conn.close()


def copy_db(source: Path, target: Path) -> None:
    """A consistent copy of a database, whatever is still in its WAL."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    src.backup(dst)
    src.close()
    dst.close()


async def call(path: Path | str, tool: str, **args: Any) -> dict[str, Any]:
    """Call a tool that must succeed; return its structured content."""
    with anyio.fail_after(30):
        async with Client(build_server(str(path)), raise_exceptions=True) as client:
            result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def error(path: Path | str, tool: str, **args: Any) -> str:
    """Call a tool that must fail; return the message the client sees."""
    with anyio.fail_after(30):
        async with Client(build_server(str(path)), raise_exceptions=True) as client:
            result = await client.call_tool(tool, args)
    assert result.is_error
    text = " ".join(getattr(c, "text", "") for c in result.content)
    assert "Traceback" not in text and 'File "' not in text
    return text


# -- discovery -----------------------------------------------------------------------------------


async def test_tools_are_listed_with_bounds_enums_and_output_schemas(db: Path) -> None:
    async with Client(build_server(str(db)), raise_exceptions=True) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == {"tasks_list", "tasks_by_trace", "tasks_last_failed", "tasks_alerts"}
    for tool in tools.values():
        assert tool.annotations is not None and tool.annotations.read_only_hint is True
        assert tool.output_schema is not None
        assert tool.description and len(tool.description) > 200  # says when to use it
    props = tools["tasks_list"].input_schema["properties"]
    assert (props["limit"]["minimum"], props["limit"]["maximum"], props["limit"]["default"]) == (
        1,
        LIST_PAGE,
        20,
    )
    assert props["cursor"]["anyOf"][0]["maxLength"] == 1000
    status_enum = next(s["enum"] for s in props["status"]["anyOf"] if "enum" in s)
    assert status_enum == list(STATUSES)
    failed = tools["tasks_last_failed"].input_schema["properties"]
    limit = failed["limit"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, FAILED_PAGE, 10)
    assert "cursor" in failed
    assert tools["tasks_by_trace"].input_schema["required"] == ["trace_id"]
    alerts = tools["tasks_alerts"].input_schema["properties"]
    assert (alerts["state"]["enum"], alerts["state"]["default"]) == (
        ["open", "resolved", "all"],
        "open",
    )
    limit = alerts["limit"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 200, 50)
    assert alerts["task_slug"]["anyOf"][0]["maxLength"] == 200
    assert "required" not in tools["tasks_alerts"].input_schema
    output = tools["tasks_alerts"].output_schema
    assert {"summary", "alerts", "counts", "returned", "truncated"} <= set(output["properties"])
    # Compact output schemas: nested models in place, optional values as a list of types, so a
    # client checks an answer without reference lookups or trying anyOf branches.
    for tool in tools.values():
        text = json.dumps(tool.output_schema)
        assert "$ref" not in text and "anyOf" not in text
        assert '"title": "' not in text  # a property may be called title; no schema has one
    window = tools["tasks_list"].output_schema["properties"]["window"]
    assert window["properties"]["since"]["type"] == ["string", "null"]
    # A list's items are checked as objects with their required fields; each field is
    # described in words (typing every field of every item is most of a client's time).
    item = tools["tasks_list"].output_schema["properties"]["executions"]["items"]
    assert set(item) == {"type", "required", "description"} and item["type"] == "object"
    assert set(item["required"]) == {"trace_id", "task_slug", "attempt", "status", "started_at"}
    assert "trace_id (string): The logical run; pass it to tasks_by_trace." in item["description"]
    assert "error_type (string, optional)." in item["description"]


async def test_datasette_hook_declares_the_same_tools_plus_database(db: Path) -> None:
    """One declaration: Datasette's /-/mcp lists exactly the stdio tools, plus ``database``."""
    from datasette.app import Datasette
    from datasette_mcp import create_mcp_server

    datasette = Datasette([str(db)])
    async with Client(build_server(str(db)), raise_exceptions=True) as client:
        ours = {t.name: t for t in (await client.list_tools()).tools}
        direct = await client.call_tool("tasks_last_failed", {"since": SINCE, "limit": 3})
    async with Client(create_mcp_server(datasette), raise_exceptions=True) as client:
        hooked = {t.name: t for t in (await client.list_tools()).tools if t.name in ours}
        via_hook = await client.call_tool(
            "tasks_last_failed", {"since": SINCE, "limit": 3, "database": db.stem}
        )
    assert set(hooked) == set(ours)
    for name, tool in ours.items():
        other = hooked[name].model_dump()
        schema = other.pop("input_schema")
        assert "database" not in tool.input_schema["properties"]
        assert schema["properties"].pop("database")["anyOf"][0]["maxLength"] == 200
        assert {**other, "input_schema": schema} == tool.model_dump()
    assert via_hook.structured_content == direct.structured_content


# -- tasks_list ----------------------------------------------------------------------------------


async def test_list_filters_orders_and_counts(db: Path) -> None:
    until = "2026-11-20T06:00:00+02:00"  # 04:00Z
    out = await call(db, "tasks_list", status="failed", since=SINCE, until=until, limit=5)
    assert out["window"] == {
        "since": SINCE_CANON,
        "until": "2026-11-20T04:00:00.000000Z",
        "understood_as": f"since {SINCE_CANON} until 2026-11-20T04:00:00.000000Z",
    }
    expected = sql(
        db,
        "SELECT trace_id, attempt FROM task_executions WHERE status = 'failed' "
        "AND started_at >= ? AND started_at < ? ORDER BY started_at DESC, id DESC",
        SINCE_CANON,
        "2026-11-20T04:00:00.000000Z",
    )
    assert len(expected) > 5
    assert [(e["trace_id"], e["attempt"]) for e in out["executions"]] == expected[:5]
    assert out["returned"] == 5
    assert out["total_matching"] == len(expected) and out["total_is_exact"]
    assert out["truncated"] is True
    assert all(e["status"] == "failed" and e["error_type"] for e in out["executions"])


async def test_list_by_task_returns_everything_when_it_fits(db: Path) -> None:
    out = await call(db, "tasks_list", task_slug="send_digest", since="2026-11-20T00:00:00Z")
    count = sql(
        db,
        "SELECT count(*) FROM task_executions WHERE task_slug = 'send_digest' AND started_at >= ?",
        "2026-11-20T00:00:00.000000Z",
    )[0][0]
    assert 0 < count < 20
    assert out["returned"] == out["total_matching"] == count and out["truncated"] is False
    assert "next_cursor" not in out
    stamps = [e["started_at"] for e in out["executions"]]
    assert stamps == sorted(stamps, reverse=True)
    by_id = await call(db, "tasks_list", task_id="task_021", since="2026-11-20T00:00:00Z")
    assert by_id["executions"] == out["executions"]


async def pages(path: Path, tool: str, key: str, **args: Any) -> list[dict[str, Any]]:
    """Every page of a paged answer, following next_cursor (the cursor alone after the first)."""
    found, cursor = [], None
    async with Client(build_server(str(path)), raise_exceptions=True) as client:
        for _ in range(100):
            given = {"cursor": cursor, "limit": args.get("limit", 20)} if cursor else args
            result = await client.call_tool(tool, given)
            assert not result.is_error, result.content
            out = result.structured_content
            assert out is not None
            found.append(out)
            assert out["truncated"] == ("next_cursor" in out)
            cursor = out.get("next_cursor")
            if cursor is None:
                return found
    raise AssertionError("no end of pages")


async def test_list_pages_follow_the_cursor(db: Path) -> None:
    """Pages of tasks_list, cursor after cursor, are the whole answer in order, once each;
    the window stays what the first page understood."""
    found = await pages(db, "tasks_list", "executions", task_slug="sync_inbox", since=SINCE)
    listed = [(e["trace_id"], e["attempt"]) for page in found for e in page["executions"]]
    expected = sql(
        db,
        "SELECT trace_id, attempt FROM task_executions WHERE task_slug = 'sync_inbox' AND "
        "started_at >= ? ORDER BY started_at DESC, id DESC",
        SINCE_CANON,
    )
    assert len(found) > 2 and listed == expected
    assert {page["total_matching"] for page in found} == {len(expected)}
    assert all(page["window"] == found[0]["window"] for page in found)
    full = await pages(db, "tasks_list", "executions", since=SINCE, limit=LIST_PAGE)
    assert [len(page["executions"]) for page in full[:-1]] == [LIST_PAGE] * (len(full) - 1)


async def test_cursor_mistakes_say_what_to_do(db: Path) -> None:
    first = await call(db, "tasks_list", status="failed", limit=1)
    cursor = first["next_cursor"]
    same = await call(db, "tasks_list", status="failed", limit=1, cursor=cursor)
    alone = await call(db, "tasks_list", limit=1, cursor=cursor)
    assert same == alone and same["executions"] != first["executions"]
    assert same["executions"][0]["status"] == "failed"
    other = await error(db, "tasks_list", status="timeout", cursor=cursor)
    assert "cursor" in other and "status='failed'" in other and "start over" in other
    for bad in ("nonsense", cursor[:-5], "eyJ0IjoieCJ9"):
        message = await error(db, "tasks_list", cursor=bad)
        assert "not a tasks_list cursor" in message and "next_cursor" in message
    failed = await call(db, "tasks_last_failed", limit=1)
    assert "not a tasks_list cursor" in await error(db, "tasks_list", cursor=failed["next_cursor"])


async def test_relative_window_is_reported(db: Path) -> None:
    before = datetime.now(UTC)
    out = await call(db, "tasks_list", since="24h")
    since = datetime.fromisoformat(out["window"]["since"])
    assert out["window"]["understood_as"] == "last 24h"
    assert abs(since - (before - timedelta(hours=24))) < timedelta(seconds=30)
    assert out["returned"] == 0  # the demo data ends before "now"
    # The empty answer says where the data is (the demo's 14 days end 2026-11-20).
    assert out["hint"].startswith("No executions since ")
    assert "this database spans 2026-11-06 to 2026-11-20" in out["hint"]
    assert "since='all'" in out["hint"]


@pytest.mark.parametrize(
    ("since", "hours"), [("2w", 336), ("1.5d", 36), ("90m", 1.5), ("30s", 30 / 3600)]
)
async def test_every_window_of_the_grammar(db: Path, since: str, hours: float) -> None:
    before = datetime.now(UTC)
    out = await call(db, "tasks_list", since=since)
    start = datetime.fromisoformat(out["window"]["since"])
    assert abs(start - (before - timedelta(hours=hours))) < timedelta(seconds=30)
    assert out["window"]["understood_as"] == f"last {since}"


async def test_since_all_is_every_row(db: Path) -> None:
    out = await call(db, "tasks_list", since="all", limit=1)
    assert out["window"] == {"understood_as": "all time"}  # no bound: none written
    total = sql(db, "SELECT count(*) FROM task_executions")[0][0]
    assert out["total_matching"] == min(total, COUNT_CAP)


async def test_unknown_task_gets_a_hint_with_known_ones(db: Path) -> None:
    out = await call(db, "tasks_list", task_slug="no_such_task")
    assert out["executions"] == [] and out["total_matching"] == 0
    assert "'no_such_task'" in out["hint"] and "sync_inbox" in out["hint"]


async def test_total_is_capped_on_big_databases(tmp_path: Path) -> None:
    path = tmp_path / "big.db"
    end = datetime(2026, 11, 20, 12, tzinfo=UTC)
    with Store(path) as store:
        store.append_many(generate(runs=COUNT_CAP + 500, days=3, seed=1, end=end))
    since = "2026-11-17T00:00:00Z"  # a window: counting stops at the cap
    out = await call(path, "tasks_list", limit=1, since=since)
    assert out["total_matching"] == COUNT_CAP and out["total_is_exact"] is False
    assert out["truncated"] is True
    # Only task and status filters: the rollups count them exactly, at any size.
    every = await call(path, "tasks_list", limit=1)
    rows = sql(path, "SELECT count(*) FROM task_executions")[0][0]
    assert every["total_matching"] == rows > COUNT_CAP and every["total_is_exact"] is True
    failed = await call(path, "tasks_list", limit=1, status="failed", task_slug="sync_inbox")
    expected = sql(
        path,
        "SELECT count(*) FROM task_executions WHERE status = 'failed' AND task_slug = 'sync_inbox'",
    )[0][0]
    assert failed["total_matching"] == expected and failed["total_is_exact"] is True


async def test_a_database_from_before_the_rollups_still_counts(
    demo_db: Path, tmp_path: Path
) -> None:
    """Read-only, an old database is not upgraded: without the rollups, counting stops at the
    cap as it did before them."""
    path = tmp_path / "old.db"
    copy_db(demo_db, path)
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE rollup_hourly")
    out = await call(path, "tasks_list", limit=1, status="failed")
    failed = sql(path, "SELECT count(*) FROM task_executions WHERE status = 'failed'")[0][0]
    assert out["total_matching"] == failed and out["returned"] == 1


async def test_empty_database_says_so(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    Store(path).close()
    for tool in ("tasks_list", "tasks_last_failed"):
        out = await call(path, tool)
        assert out["hint"] == "The database has no executions yet."


# -- tasks_by_trace ------------------------------------------------------------------------------


def retried_trace(db: Path, final: str) -> str:
    return sql(
        db,
        "SELECT trace_id FROM task_executions GROUP BY trace_id HAVING count(*) >= 2 "
        "AND max(CASE WHEN attempt = (SELECT max(attempt) FROM task_executions t2 "
        "WHERE t2.trace_id = task_executions.trace_id) THEN status END) = ? "
        "ORDER BY trace_id LIMIT 1",
        final,
    )[0][0]


async def test_trace_lists_attempts_with_errors_and_outcome(db: Path) -> None:
    trace_id = retried_trace(db, "success")
    out = await call(db, "tasks_by_trace", trace_id=trace_id.upper())  # case is forgiven
    rows = sql(
        db,
        "SELECT attempt, status, span_id, error_type, stack_hash FROM task_executions "
        "WHERE trace_id = ? ORDER BY attempt",
        trace_id,
    )
    attempts = out["attempts"]
    assert out["trace_id"] == trace_id
    assert [(a["attempt"], a["status"], a["span_id"]) for a in attempts] == [r[:3] for r in rows]
    for prev, nxt in zip(attempts, attempts[1:], strict=False):
        assert nxt["retry_of"] == prev["span_id"]
    failed = [a for a in attempts if a["status"] in FAILURE_STATUSES]
    assert failed and all(a["error_type"] and a["error_message"] for a in failed)
    assert all("Traceback" in a["stack_trace"] and len(a["stack_hash"]) == 64 for a in failed)
    assert out["outcome"]["succeeded"] is True and out["outcome"]["recovered"] is True
    assert out["outcome"]["attempts"] == len(rows)
    assert out["outcome"]["final_status"] == "success"


async def test_trace_that_never_succeeded(db: Path) -> None:
    trace_id = retried_trace(db, "failed")
    out = await call(db, "tasks_by_trace", trace_id=trace_id)
    assert out["outcome"]["succeeded"] is False and out["outcome"]["final_status"] == "failed"
    assert out["outcome"]["recovered"] is False and out["outcome"]["attempts"] >= 2


# -- tasks_last_failed ---------------------------------------------------------------------------


async def test_last_failed_is_one_entry_per_run_with_group_and_outcome(db: Path) -> None:
    found = await pages(db, "tasks_last_failed", "failures", since=SINCE, limit=7)
    assert len(found) > 1 and all(page["window"]["since"] == SINCE_CANON for page in found)
    failures = [f for page in found for f in page["failures"]]
    assert sum(page["returned"] for page in found) == len(failures)
    traces = [f["trace_id"] for f in failures]
    assert len(set(traces)) == len(traces)  # each run once, across pages too
    expected = sql(
        db,
        f"SELECT trace_id, max(started_at) FROM task_executions WHERE status IN "
        f"({', '.join(repr(s) for s in FAILURE_STATUSES)}) AND started_at >= ? "
        "GROUP BY trace_id ORDER BY 2 DESC",
        SINCE_CANON,
    )
    assert [(f["trace_id"], f["started_at"]) for f in failures] == expected
    for f in failures:
        assert f["status"] in FAILURE_STATUSES
        attempts = sql(
            db,
            "SELECT status FROM task_executions WHERE trace_id = ? ORDER BY attempt",
            f["trace_id"],
        )
        assert f["final_status"] == attempts[-1][0]
        assert f["failed_attempts"] == sum(s in FAILURE_STATUSES for (s,) in attempts)
        assert f"{len(attempts)} attempt" in f["run"] or f"attempt {len(attempts)}" in f["run"]
        if f.get("stack_hash"):
            assert f["culprit"] and ".py:" in f["culprit"]
    for page in found:
        listed = {f["stack_hash"] for f in page["failures"] if f.get("stack_hash")}
        assert {e["stack_hash"] for e in page["distinct_errors"]} == listed
        assert sum(e["runs_listed"] for e in page["distinct_errors"]) == sum(
            1 for f in page["failures"] if f.get("stack_hash")
        )
        for e in page["distinct_errors"]:
            n, first, last = sql(
                db,
                "SELECT count(*), min(started_at), max(started_at) FROM task_executions "
                "WHERE stack_hash = ?",
                e["stack_hash"],
            )[0]
            assert (e["occurrences"], e["first_seen"], e["last_seen"]) == (n, first, last)
            ages = [
                datetime.fromisoformat(f["started_at"]) - datetime.fromisoformat(first)
                for f in page["failures"]
                if f.get("stack_hash") == e["stack_hash"]
            ]
            assert e["is_new"] == any(age < timedelta(hours=24) for age in ages)
    errors = [e for page in found for e in page["distinct_errors"]]
    assert any(e["is_new"] for e in errors) and any(not e["is_new"] for e in errors)
    assert any(f["final_status"] == "success" for f in failures)  # recovered by a retry
    assert any(f["final_status"] != "success" for f in failures)
    new_first = next(page for page in found if any(e["is_new"] for e in page["distinct_errors"]))
    assert new_first["distinct_errors"][0]["is_new"] is True  # new errors lead
    assert "NEW" in new_first["summary"]
    assert found[0]["summary"].startswith("The 7 most recent failed runs (since ")
    assert all(p["summary"].startswith("The next 7 failed run(s)") for p in found[1:-1])
    assert found[-1]["summary"].startswith(f"The last {found[-1]['returned']} failed run(s)")


async def test_last_failed_limit_and_task_filter(db: Path) -> None:
    out = await call(db, "tasks_last_failed", since=SINCE, limit=3, task_slug="sync_inbox")
    assert out["returned"] == 3 and out["truncated"] is True
    assert all(f["task_slug"] == "sync_inbox" for f in out["failures"])


async def test_last_failed_with_nothing_to_report(db: Path) -> None:
    out = await call(db, "tasks_last_failed", since="2030-01-01T00:00:00Z")
    assert out["failures"] == [] and out["returned"] == 0
    assert out["distinct_errors"] == [] and out["truncated"] is False
    assert "next_cursor" not in out
    assert out["hint"].startswith("No failures since 2030-01-01; this database spans 2026-11-06")


# -- tasks_alerts --------------------------------------------------------------------------------

T1 = "2026-11-20T10:00:00.000000Z"
T2 = "2026-11-20T11:00:00.000000Z"


def finding(kind: str, task: str, key: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "task_slug": task,
        "alert_key": key,
        "since": extra.pop("since", T1),
        "title": f"{kind} {task}",
        "detail": f"detail of {kind} {task}",
        **extra,
    }


@pytest.fixture(scope="module")
def alerts_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three alerts: 'late sync_inbox' opened at T1 and resolved at T2, 'missed send_digest'
    opened at T1 and still open, 'new_error sync_inbox' opened at T2 (names a run) and open."""
    path = tmp_path_factory.mktemp("alerts") / "alerts.db"
    missed = finding("missed", "send_digest", "schedule")
    late = finding("late", "sync_inbox", "a" * 16, trace_id="ab" * 16, span_id="a" * 16)
    new = finding(
        "new_error",
        "sync_inbox",
        "f" * 64,
        trace_id="cd" * 16,
        span_id="c" * 16,
        stack_hash="f" * 64,
        since=T2,
    )
    with Store(path) as store:
        awareness.apply_findings(store, [missed, late], T1)
        awareness.apply_findings(store, [missed, new], T2)
    return path


async def test_alerts_open_by_default_newest_first(alerts_db: Path) -> None:
    out = await call(alerts_db, "tasks_alerts")
    assert out["state"] == "open"
    assert [(a["kind"], a["task_slug"]) for a in out["alerts"]] == [
        ("new_error", "sync_inbox"),
        ("missed", "send_digest"),
    ]
    assert out["counts"] == {"open": 2, "resolved": 1}
    assert out["returned"] == 2 and out["truncated"] is False and "hint" not in out
    new = out["alerts"][0]
    assert new == {
        "kind": "new_error",
        "task_slug": "sync_inbox",
        "title": "new_error sync_inbox",
        "detail": "detail of new_error sync_inbox",
        "state": "open",
        "since": T2,
        "opened_at": T2,
        "last_seen_at": T2,
        "trace_id": "cd" * 16,
        "span_id": "c" * 16,
        "stack_hash": "f" * 64,
        "times_opened": 1,
    }
    missed = out["alerts"][1]
    assert "trace_id" not in missed and missed["last_seen_at"] == T2  # no value: left out
    assert out["summary"].startswith("2 open alert(s): 1 new_error, 1 missed; newest:")
    assert out["summary"].endswith("; in all: 2 open, 1 resolved.")
    # The run an alert names is one tasks_by_trace can be asked about.
    assert len(new["trace_id"]) == 32


async def test_alerts_resolved_all_limit_and_task(alerts_db: Path) -> None:
    resolved = await call(alerts_db, "tasks_alerts", state="resolved")
    assert [a["kind"] for a in resolved["alerts"]] == ["late"]
    assert (
        resolved["alerts"][0]["resolved_at"] == T2 and resolved["alerts"][0]["state"] == "resolved"
    )
    every = await call(alerts_db, "tasks_alerts", state="all")
    opened = [a["opened_at"] for a in every["alerts"]]
    assert len(opened) == 3 and opened == sorted(opened, reverse=True)
    assert every["alerts"][0]["kind"] == "new_error"
    one = await call(alerts_db, "tasks_alerts", state="all", limit=1)
    assert one["returned"] == 1 and one["truncated"] is True
    assert one["summary"].startswith("The 1 newest alert(s)")
    inbox = await call(alerts_db, "tasks_alerts", state="all", task_slug="sync_inbox")
    assert {a["task_slug"] for a in inbox["alerts"]} == {"sync_inbox"}
    assert inbox["counts"] == {"open": 1, "resolved": 1}


async def test_alerts_empty_answers_say_why(alerts_db: Path, tmp_path: Path) -> None:
    unknown = await call(alerts_db, "tasks_alerts", task_slug="no_such_task")
    assert unknown["alerts"] == [] and unknown["counts"] == {"open": 0, "resolved": 0}
    assert "'no_such_task'" in unknown["hint"] and "send_digest" in unknown["hint"]
    path = tmp_path / "calm.db"
    with Store(path) as store:
        awareness.apply_findings(store, [finding("late", "t", "k")], T1)
        awareness.apply_findings(store, [], T2)
    calm = await call(path, "tasks_alerts")
    assert calm["alerts"] == [] and calm["returned"] == 0
    assert calm["summary"] == "No open alerts (in all: 0 open, 1 resolved)."
    assert "state='resolved'" in calm["hint"]
    empty = tmp_path / "empty.db"
    Store(empty).close()
    none = await call(empty, "tasks_alerts", state="all")
    assert "taskexec check" in none["hint"] and "0 task(s) have a schedule" in none["hint"]
    old = tmp_path / "old.db"  # written before alerts existed: no alerts table
    Store(old).close()
    with sqlite3.connect(old) as conn:
        conn.execute("DROP TABLE alerts")
    before = await call(old, "tasks_alerts")
    assert before["alerts"] == [] and "taskexec check" in before["hint"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ({"state": "closed"}, ["state", "'open'", "'resolved'", "'all'"]),
        ({"limit": 0}, ["limit", "greater than or equal to 1"]),
        ({"limit": 201}, ["limit", "less than or equal to 200"]),
        ({"task_slug": "x" * 201}, ["task_slug", "at most 200"]),
    ],
)
async def test_alerts_bad_arguments(
    alerts_db: Path, args: dict[str, Any], words: list[str]
) -> None:
    message = await error(alerts_db, "tasks_alerts", **args)
    for word in words:
        assert word in message


def test_alerts_answer_checks_its_arguments_when_called_directly(alerts_db: Path) -> None:
    from taskexec.errors import InvalidRecord
    from taskexec.faces.mcp.tools import alerts

    with Store.open_readonly(alerts_db) as store:
        with pytest.raises(InvalidRecord, match="state: expected 'open', 'resolved' or 'all'"):
            alerts(store, state="closed")
        with pytest.raises(InvalidRecord, match="limit"):
            alerts(store, limit=500)


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "trace_id", ["xyz", "0" * 32, "g" * 32, "a" * 31, "a" * 33, "00-" + "a" * 32 + "-01"]
)
async def test_malformed_trace_id(db: Path, trace_id: str) -> None:
    message = await error(db, "tasks_by_trace", trace_id=trace_id)
    assert "32 hex characters" in message and "tasks_list" in message


async def test_unknown_trace_id(db: Path) -> None:
    message = await error(db, "tasks_by_trace", trace_id="ab" * 16)
    assert "no execution has trace_id" in message


async def test_unknown_status(db: Path) -> None:
    message = await error(db, "tasks_list", status="crashed")
    assert "status" in message and "'failed'" in message and "'abandoned'" in message


@pytest.mark.parametrize(
    ("tool", "limit", "bound"),
    [
        ("tasks_list", 0, "greater than or equal to 1"),
        ("tasks_list", LIST_PAGE + 1, f"less than or equal to {LIST_PAGE}"),
        ("tasks_last_failed", 0, "greater than or equal to 1"),
        ("tasks_last_failed", FAILED_PAGE + 1, f"less than or equal to {FAILED_PAGE}"),
    ],
)
async def test_limit_out_of_range(db: Path, tool: str, limit: int, bound: str) -> None:
    message = await error(db, tool, limit=limit)
    assert "limit" in message and bound in message


@pytest.mark.parametrize(
    ("since", "fix"),
    [
        ("2026-11-19T12:00:00", "has no zone; add Z or an offset"),
        ("2026-11-19", "has no zone; add Z or an offset"),
        ("yesterday", "'yesterday' is not a window; use " + WINDOW_FORMS),
        ("24", "'24' is not a window; use " + WINDOW_FORMS),
        ("banana", "since: 'banana' is not a window"),
        ("100000000w", "longer than the limit of 100 years (36525d)"),
    ],
)
async def test_bad_since(db: Path, since: str, fix: str) -> None:
    for tool in ("tasks_list", "tasks_last_failed"):
        message = await error(db, tool, since=since)
        assert "since" in message and fix in message
    # The same message as every other face (the CLI, Datasette) gives for it.
    with pytest.raises(ValueError) as raised:
        window_start(since)
    assert str(raised.value) in message


async def test_until_before_since(db: Path) -> None:
    message = await error(
        db, "tasks_list", since="2026-11-20T00:00:00Z", until="2026-11-19T00:00:00Z"
    )
    assert "swap" in message


async def test_missing_and_foreign_databases(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    for tool, args in (
        ("tasks_list", {}),
        ("tasks_last_failed", {}),
        ("tasks_by_trace", {"trace_id": "ab" * 16}),
        ("tasks_alerts", {"state": "all"}),
    ):
        message = await error(missing, tool, **args)
        assert "no database at" in message and "taskexec demo" in message
    assert not missing.exists()  # reading never creates the file
    foreign = tmp_path / "other.db"
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)").connection.close()
    assert "not a taskexec database" in await error(foreign, "tasks_list")


# -- read-only -----------------------------------------------------------------------------------


async def test_no_tool_writes_whatever_the_arguments(db: Path, tmp_path: Path) -> None:
    path = tmp_path / "copy.db"
    source = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    target = sqlite3.connect(path)
    source.backup(target)  # a consistent copy, whatever is still in the WAL
    source.close()
    target.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    hostile = "x'; DROP TABLE task_executions; --"
    trace_id = sql(path, "SELECT trace_id FROM task_executions LIMIT 1")[0][0]
    await call(path, "tasks_list", task_slug=hostile, task_id=hostile, limit=LIST_PAGE)
    await call(path, "tasks_list", status="failed", since="7d", until="1h")
    await call(path, "tasks_by_trace", trace_id=trace_id)
    await call(path, "tasks_last_failed", task_slug=hostile, limit=FAILED_PAGE)
    await call(path, "tasks_last_failed", since=SINCE, limit=FAILED_PAGE)
    await call(path, "tasks_alerts", state="all", task_slug=hostile, limit=200)
    await error(path, "tasks_by_trace", trace_id=hostile)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert sql(path, "SELECT count(*) FROM task_executions")[0][0] > 0
    with (
        Store.open_readonly(path) as store,
        pytest.raises(sqlite3.OperationalError, match="readonly"),
    ):
        store.conn.execute("DELETE FROM task_executions")


async def test_a_file_put_in_place_is_read_anew(demo_db: Path, tmp_path: Path) -> None:
    """The read-only connection a server keeps open follows the file at its path: a file put
    in its place, or removed, is noticed on the next call."""
    path = tmp_path / "swapped.db"
    copy_db(demo_db, path)
    server = build_server(str(path))
    async with Client(server, raise_exceptions=True) as client:
        before = await client.call_tool("tasks_list", {"limit": 1})
        assert before.structured_content is not None
        assert before.structured_content["total_matching"] > 0
        fresh = tmp_path / "fresh.db"
        Store(fresh).close()
        os.replace(fresh, path)
        after = await client.call_tool("tasks_list", {"limit": 1})
        assert after.structured_content is not None
        assert after.structured_content["total_matching"] == 0
        path.unlink()
        gone = await client.call_tool("tasks_list", {"limit": 1})
        assert gone.is_error and "no database at" in gone.content[0].text


def test_datasette_plugin_loads_without_the_mcp_extra() -> None:
    """Datasette imports every plugin at startup: ours must not need mcp or pydantic for that."""
    code = (
        "import sys; sys.modules['mcp'] = sys.modules['pydantic'] = None; "
        "import taskexec.faces.mcp.datasette_hook as m; assert callable(m.register_mcp_tools)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
