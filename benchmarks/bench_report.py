"""Time ``taskexec report`` (both notebooks executed, HTML and PNGs written) on a big database.

    python benchmarks/bench_report.py [DB] [--runs 1000000] [--out DIR] [--repeat 1]

Builds DB with ``taskexec demo DB --runs N`` when it does not exist (the bulk path; about three
minutes for a million runs), then runs the real CLI in a fresh process, so the figure includes
interpreter start-up, kernel start-up, every query, every chart and the HTML export. Target:
under 60 s for 1,000,000 rows. Results go in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time

TARGET_S = 60.0


def taskexec(*args: str) -> list[str]:
    """The command line of the real CLI under this Python."""
    return [sys.executable, "-m", "taskexec.cli", *args]


def build(db: str, runs: int) -> None:
    """Create the demo database with the CLI's bulk-load path."""
    print(f"building: taskexec demo {db} --runs {runs}", flush=True)
    subprocess.run(taskexec("demo", db, "--runs", str(runs)), check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db", nargs="?", default=os.path.join(tempfile.gettempdir(), "bench-1m.db"))
    parser.add_argument("--runs", type=int, default=1_000_000, help="runs for a new database")
    parser.add_argument("--out", default=None, help="report folder (default: a temp folder)")
    parser.add_argument("--repeat", type=int, default=1, help="how many timed runs")
    args = parser.parse_args()
    if not os.path.exists(args.db):
        build(args.db, args.runs)
    with sqlite3.connect(f"file:{args.db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT count(*) FROM task_executions").fetchone()[0]
    out = args.out or tempfile.mkdtemp(prefix="bench-report-")
    print(f"database: {args.db} ({rows:,} rows, {os.path.getsize(args.db) / 1e6:,.0f} MB)")
    timings = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        subprocess.run(taskexec("report", args.db, "--out", out), check=True)
        timings.append(time.perf_counter() - started)
    best, worst = min(timings), max(timings)
    verdict = "ok" if worst < TARGET_S else "TOO SLOW"
    print(
        f"taskexec report: best {best:.1f} s, worst {worst:.1f} s over {len(timings)} run(s) "
        f"(target < {TARGET_S:.0f} s): {verdict}"
    )
    return 0 if worst < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
