"""Time every canned query (probe) through Datasette in process on a large demo database.

    python benchmarks/bench_probes.py [DB] [--runs 1000000] [--repeat 5] [--only 'page:']

Builds DB with ``taskexec demo DB --runs N`` when it does not exist (the bulk path), then
requests ``/<db>/<probe>.json`` with default parameters and with a wide window (``since=3650d``,
every row), and a few pages a person opens (the executions table unfiltered, by status, by task
and both, a search; error groups, a trace page, the dashboard).
Prints p50/max wall milliseconds, CPU milliseconds (what the query costs when the machine is
not shared) and whether each stays under Datasette's 1 s limit. A query over
the limit comes back as an error, so "ok" also requires HTTP 200.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sqlite3
import statistics
import subprocess
import sys
import time
from typing import Any

from taskexec import probes
from taskexec.faces.datasette.metadata import DASHBOARD
from taskexec.faces.datasette.plugin import SETTINGS, make_datasette

LIMIT_MS = int(SETTINGS["sql_time_limit_ms"])
WIDE = {"since": "3650d"}


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
    ]
    print("building:", " ".join(["taskexec", *cmd[3:]]), flush=True)
    subprocess.run(cmd, check=True)


def cases(db: str) -> list[tuple[str, str]]:
    """(label, path) for every probe, default and wide, plus the pages people open."""
    name = os.path.splitext(os.path.basename(db))[0]
    out = []
    for probe in probes.all_probes():
        out.append((probe.name, f"/{name}/{probe.name}.json?_shape=objects"))
        wide = [f"{k}={v}" for k, v in WIDE.items() if k in {p.name for p in probe.params}]
        if wide:
            out.append(
                (
                    f"{probe.name} (wide)",
                    f"/{name}/{probe.name}.json?_shape=objects&" + "&".join(wide),
                )
            )
    with sqlite3.connect(db) as conn:
        trace = conn.execute(
            "SELECT trace_id FROM task_executions WHERE attempt = 3 ORDER BY id DESC LIMIT 1"
        ).fetchone()[0]
        task = conn.execute(
            "SELECT task_slug FROM task_executions ORDER BY id DESC LIMIT 1"
        ).fetchone()[0]
    table = f"/{name}/task_executions"
    out += [
        ("page: table", table),
        ("page: table ?status=failed", f"{table}?status=failed"),
        ("page: table ?task_slug", f"{table}?task_slug={task}"),
        ("page: table ?status=failed&task_slug", f"{table}?status=failed&task_slug={task}"),
        ("page: table ?_search=timed", f"{table}?_search=timed"),
        ("page: error_groups", f"/{name}/error_groups"),
        ("page: trace", f"/-/trace/{trace}"),
        ("page: dashboard", f"/-/dashboards/{DASHBOARD}?since=7d"),
    ]
    return out


async def measure(db: str, repeat: int, only: str = "") -> list[dict[str, Any]]:
    """Request each case once to warm up, then ``repeat`` times; collect timings."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    ds = make_datasette(db)
    results = []
    for label, path in cases(db):
        if only not in label:
            continue
        await ds.client.get(path)
        times, cpu, status = [], [], 0
        for _ in range(repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            response = await ds.client.get(path)
            times.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
            status = response.status_code
        rows = ""
        if path.endswith("_shape=objects") or "_shape=objects&" in path:
            rows = len(response.json().get("rows", [])) if status == 200 else "error"
        results.append(
            {
                "label": label,
                "p50": statistics.median(times),
                "max": max(times),
                "cpu": statistics.median(cpu),
                "status": status,
                "rows": rows,
                "ok": status == 200 and max(times) < LIMIT_MS,
            }
        )
        print(f"  {label:40} {results[-1]['p50']:8.1f} ms", file=sys.stderr, flush=True)
    return results


def table(results: list[dict[str, Any]]) -> str:
    """A markdown table of the results."""
    lines = [
        "| query | p50 ms | max ms | CPU ms (p50) | rows | HTTP | under 1 s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | :---: |",
    ]
    for r in results:
        ok = "yes" if r["ok"] else "**NO**"
        cells = [r["label"], f"{r['p50']:.0f}", f"{r['max']:.0f}", f"{r['cpu']:.0f}", r["rows"]]
        cells += [r["status"], ok]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db", nargs="?", default="bench-1m.db", help="database (built if missing)")
    parser.add_argument("--runs", type=int, default=1_000_000, help="runs when building")
    parser.add_argument("--repeat", type=int, default=5, help="timed requests per query")
    parser.add_argument(
        "--only", default="", help="only the cases whose label holds this text (e.g. 'page:')"
    )
    args = parser.parse_args()
    if not os.path.exists(args.db):
        build(args.db, args.runs)
    with sqlite3.connect(args.db) as conn:
        rows = conn.execute("SELECT count(*) FROM task_executions").fetchone()[0]
    python = sys.version.split()[0]
    print(f"{args.db}: {rows:,} rows; SQLite {sqlite3.sqlite_version}; Python {python}")
    results = asyncio.run(measure(args.db, args.repeat, args.only))
    print(table(results))
    slow = [r["label"] for r in results if not r["ok"]]
    if slow:
        print(f"over {LIMIT_MS} ms or failing: {', '.join(slow)}")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
