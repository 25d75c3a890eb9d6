"""Latency of the MCP tools on a large database, in process and over stdio.

    python benchmarks/bench_mcp.py [DB] [--runs 1000000] [--calls 200]

Builds DB with ``taskexec demo DB --runs N --end 2026-11-20T12:00:00Z`` when it does not exist
(about 3 minutes for a million runs), else reuses it. Each tool is called ``--calls`` times,
cycling through the argument sets a debugging assistant sends (see ``scenarios``), first
through the SDK's in-process ``Client(server)``, then through ``taskexec mcp DB`` over stdio.
Prints p50/p99 milliseconds per tool and per argument set against the target: p99 <= 20 ms
over stdio through the SDK's ``Client`` for every argument set (the exit status says whether
it was met). Timings include the client's own work (it validates structured output against
the tool's schema; a second stdio pass leaves that out). The largest pages (``limit`` at its
maximum) and the page after them (``cursor``) are argument sets of their own. A few calls per
tool warm up first (imports, page cache, the client's schema validators), then
``gc.freeze()`` as ``taskexec mcp`` does.
"""

from __future__ import annotations

import argparse
import gc
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from mcp.types import CallToolRequest, CallToolRequestParams, CallToolResult

from taskexec.db import Store
from taskexec.faces.mcp import tools
from taskexec.faces.mcp.models import FAILED_PAGE, LIST_PAGE
from taskexec.faces.mcp.server import build_server
from taskexec.model import format_ts

TARGET_MS = 20.0
END = "2026-11-20T12:00:00Z"
Call = tuple[str, str, dict[str, Any]]  # (tool, label, arguments)


def build(db: str, runs: int) -> None:
    """Create the demo database with the real CLI (its bulk-load path)."""
    cmd = [
        sys.executable,
        "-c",
        "from taskexec.cli import cli; cli()",
        "demo",
        db,
        "--runs",
        str(runs),
        "--end",
        END,
    ]
    print("building:", "taskexec", " ".join(cmd[3:]), flush=True)
    subprocess.run(cmd, check=True)


def scenarios(db: str) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Argument sets per tool, anchored on the newest row so they match data of any age."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    newest = conn.execute("SELECT max(started_at) FROM task_executions").fetchone()[0]
    slug = conn.execute("SELECT task_slug FROM task_executions ORDER BY id DESC LIMIT 1").fetchone()
    traces = [
        r[0]
        for r in conn.execute(
            "SELECT trace_id FROM task_executions WHERE status = 'failed' ORDER BY started_at DESC "
            "LIMIT 200"
        )
    ]
    conn.close()
    anchor = datetime.fromisoformat(newest)
    day, week = format_ts(anchor - timedelta(days=1)), format_ts(anchor - timedelta(days=7))
    task = slug[0]
    # The second page of the largest pages: a cursor from the first (the same call a client
    # makes with next_cursor).
    with Store.open_readonly(db) as store:
        listed = tools.list_executions(store, limit=LIST_PAGE).next_cursor
        failed = tools.last_failed(store, limit=FAILED_PAGE).next_cursor
    return {
        "tasks_list": [
            ("newest 20", {}),
            ("status=failed", {"status": "failed"}),
            ("task_slug", {"task_slug": task}),
            ("since 1 day", {"since": day}),
            ("task_slug + since 7 days", {"task_slug": task, "since": week}),
            ("task_slug + status=failed", {"task_slug": task, "status": "failed"}),
            (f"limit {LIST_PAGE} (a full page)", {"limit": LIST_PAGE}),
            (f"next page of {LIST_PAGE} (cursor)", {"limit": LIST_PAGE, "cursor": listed}),
        ],
        "tasks_by_trace": [(f"trace {i}", {"trace_id": t}) for i, t in enumerate(traces)],
        "tasks_last_failed": [
            ("default (10)", {}),
            ("since 1 day", {"since": day}),
            ("task_slug", {"task_slug": task}),
            ("task_slug + since 7 days", {"task_slug": task, "since": week}),
            (f"limit {FAILED_PAGE} (a full page)", {"limit": FAILED_PAGE}),
            (f"next page of {FAILED_PAGE} (cursor)", {"limit": FAILED_PAGE, "cursor": failed}),
        ],
    }


def plan(db: str, calls: int) -> list[Call]:
    """``calls`` calls per tool, cycling through its argument sets."""
    out: list[Call] = []
    for group, sets in scenarios(db).items():
        tool = group.split(" ")[0]
        n = calls if tool == group else max(10, calls // 10)
        out += [(group, sets[i % len(sets)][0], sets[i % len(sets)][1]) for i in range(n)]
    return [(tool, label, args) for tool, label, args in out]


async def send(client: Client, tool: str, args: dict[str, Any], validate: bool) -> CallToolResult:
    """One tools/call. ``validate=False`` skips the Python client's re-validation of the result
    against the output schema (pure-Python jsonschema, ~80 us per listed item), so the time is
    the server plus the transport, as a client with a compiled validator would see it."""
    if validate:
        return await client.call_tool(tool, args)
    request = CallToolRequest(params=CallToolRequestParams(name=tool, arguments=args))
    return await client.session.send_request(request, CallToolResult)


async def run(
    client: Client, calls: list[Call], validate: bool = True
) -> dict[tuple[str, str], list[float]]:
    """Warm each tool up, then time every call (ms) by (group, label)."""
    for group, _, args in {c[0]: c for c in calls}.values():
        for _ in range(3):
            await client.call_tool(group.split(" ")[0], args)
    gc.freeze()  # as `taskexec mcp` does at startup: no full collections over the imported heap
    times: dict[tuple[str, str], list[float]] = defaultdict(list)
    for group, label, args in calls:
        t0 = time.perf_counter()
        result = await send(client, group.split(" ")[0], args, validate)
        times[(group, label)].append((time.perf_counter() - t0) * 1000)
        if result.is_error or not result.structured_content:
            raise SystemExit(f"{group} {args} failed: {result.content}")
    return times


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(title: str, times: dict[tuple[str, str], list[float]], detail: bool) -> bool:
    """Print p50/p99 per tool (and per argument set); True when every tool, and with
    ``detail`` every argument set of it, meets the target."""
    print(f"\n{title}")
    print(f"  {'tool / arguments':52} {'calls':>5} {'p50 ms':>8} {'p99 ms':>8}")
    by_group: dict[str, list[float]] = defaultdict(list)
    for (group, _), values in times.items():
        by_group[group] += values
    ok = True
    for group, values in by_group.items():
        p99 = pct(values, 0.99)
        counted = " " not in group
        mark = ("ok" if p99 <= TARGET_MS else "OVER") if counted else "(not counted)"
        ok = ok and (p99 <= TARGET_MS or not counted)
        print(f"  {group:52} {len(values):5} {statistics.median(values):8.2f} {p99:8.2f}  {mark}")
        if detail and not group.startswith("tasks_by_trace"):
            for (g, label), vals in times.items():
                if g == group:
                    within = pct(vals, 0.99) <= TARGET_MS
                    ok = ok and (within or not counted)
                    print(
                        f"    {label:50} {len(vals):5} {statistics.median(vals):8.2f} "
                        f"{pct(vals, 0.99):8.2f}{'' if within or not counted else '  OVER'}"
                    )
    return ok


async def main_async(db: str, calls: int) -> bool:
    work = plan(db, calls)
    async with Client(build_server(db)) as client:
        in_process = await run(client, work)
    report("in process: Client(server).call_tool", in_process, detail=True)
    exe = Path(sys.executable).with_name("taskexec")
    params = StdioServerParameters(command=str(exe), args=["mcp", db])
    async with Client(params) as client:
        full = await run(client, work)
        raw = await run(client, work, validate=False)
    ok = report(f"over stdio ({exe.name} mcp DB): Client.call_tool (the target)", full, True)
    report("over stdio: round trip without client-side schema validation", raw, True)
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = os.path.join(tempfile.gettempdir(), "taskexec-bench-1m.db")
    parser.add_argument("db", nargs="?", default=default)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    if not os.path.exists(args.db):
        build(args.db, args.runs)
    conn = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
    rows = conn.execute("SELECT count(*) FROM task_executions").fetchone()[0]
    conn.close()
    print(f"{args.db}: {rows:,} rows; {args.calls} calls per tool; target p99 <= {TARGET_MS} ms")
    ok = anyio.run(main_async, args.db, args.calls)
    print("\nall tools within target over stdio" if ok else "\nSOME TOOLS MISS THE TARGET")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
