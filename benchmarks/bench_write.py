"""Write-path benchmark: the cost of one tracked execution, bulk loading, and the readers.

Prints figures, asserts nothing. Usage::

    .venv/bin/python benchmarks/bench_write.py [--rows 1000000] [--track 5000] [--dir DIR]

1. ``track()`` around an empty body (two committed writes: the running row, then the outcome)
   vs a bare committed single-row INSERT into the same schema (the floor), p50/p99 µs.
2. ``append_many`` of N demo records into an empty file (every index, FTS, error groups), with
   its default worker processes and with ``workers=1``, vs a plain ``executemany`` of the same
   prepared rows into the same schema without FTS and with default pragmas (the naive
   baseline), rows/s and the ratios.
3. The three reader queries (by task, by trace, last failed) at N rows, p50/p99 ms.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from taskexec import Recorder, Store
from taskexec.bulkload import default_workers
from taskexec.demo import generate
from taskexec.migrations import FTS_TRIGGERS
from taskexec.store import _INSERT, COLUMNS, record_row

END = datetime(2026, 11, 24, tzinfo=UTC)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p * len(ordered)) - 1))]


def bench_track(folder: Path, n: int) -> None:
    rec = Recorder(folder / "track.db")
    for _ in range(200):  # warm up
        with rec.track("warmup"):
            pass
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        with rec.track("bench", task_id="task_bench"):
            pass
        samples.append((time.perf_counter_ns() - t0) / 1000)
    rec.close()

    Store(folder / "bare.db").close()
    conn = sqlite3.connect(folder / "bare.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    row = record_row(next(iter(generate(runs=1, days=1, end=END))), "2026-01-01T00:00:00.000000Z")
    bare = []
    for i in range(n + 200):
        values = (f"{i:016x}", *row[1:5], f"{i:064x}", *row[6:])
        t0 = time.perf_counter_ns()
        conn.execute("BEGIN")
        conn.execute(_INSERT, values)
        conn.execute("COMMIT")
        if i >= 200:
            bare.append((time.perf_counter_ns() - t0) / 1000)
    conn.close()
    print(f"\n## One tracked execution ({n:,} samples)")
    print("| what | p50 µs | p99 µs |\n| --- | --- | --- |")
    print(
        f"| bare committed single-row INSERT (floor) "
        f"| {pct(bare, 0.5):.0f} | {pct(bare, 0.99):.0f} |"
    )
    print(
        f"| `track()` around an empty body | {pct(samples, 0.5):.0f} | {pct(samples, 0.99):.0f} |"
    )
    print(
        f"ratio of p50s: {pct(samples, 0.5) / pct(bare, 0.5):.2f}x (target <= 3x); "
        f"track p99 {pct(samples, 0.99) / 1000:.2f} ms (target <= 2 ms)"
    )


def bench_bulk(folder: Path, runs: int) -> Path:
    print(f"\n## Bulk load ({runs:,} demo runs)")
    t0 = time.perf_counter()
    records = list(generate(runs=runs, days=30, seed=7, end=END))
    print(
        f"generated {len(records):,} records in {time.perf_counter() - t0:.1f} s (not timed below)"
    )

    # Our per-record preparation (scrub, stack hash, timestamps, JSON), timed on its own.
    t0 = time.perf_counter()
    rows = [record_row(r, "2026-01-01T00:00:00.000000Z") for r in records]
    prep = time.perf_counter() - t0

    def load(path: Path, workers: int | None) -> tuple[float, int]:
        t0 = time.perf_counter()
        with Store(path) as store:
            result = store.append_many(records, workers=workers)
        return time.perf_counter() - t0, result.inserted

    path = folder / "bulk.db"
    ours, n = load(path, None)
    size = sum(os.path.getsize(p) for p in folder.glob("bulk.db*"))
    one_path = folder / "bulk-one-process.db"
    one, _ = load(one_path, 1)
    for p in folder.glob("bulk-one-process.db*"):
        p.unlink()

    naive_path = folder / "naive.db"
    Store(naive_path).close()
    conn = sqlite3.connect(naive_path)
    conn.execute("PRAGMA journal_mode = DELETE")
    for name in FTS_TRIGGERS:
        conn.execute(f"DROP TRIGGER {name}")
    conn.commit()
    placeholders = ", ".join("?" * len(COLUMNS))
    t0 = time.perf_counter()
    conn.executemany(
        f"INSERT INTO task_executions ({', '.join(COLUMNS)}) VALUES ({placeholders})", rows
    )
    conn.commit()
    naive = time.perf_counter() - t0
    conn.close()
    workers = default_workers()
    print("| what | seconds | rows/s |\n| --- | --- | --- |")
    naive_label = "naive `executemany` of prepared rows, default pragmas, no FTS"
    print(f"| {naive_label} | {naive:.1f} | {n / naive:,.0f} |")
    ours_label = (
        f"`append_many`, all in ({workers} processes): "
        "scrub + hash + every index + FTS + error groups + ANALYZE"
    )
    print(f"| {ours_label} | {ours:.1f} | {n / ours:,.0f} |")
    print(f"| the same in one process (`workers=1`) | {one:.1f} | {n / one:,.0f} |")
    print(
        f"| for reference: preparing the rows in Python, one process (scrub, hash, timestamps, "
        f"JSON; the naive baseline gets them for free) | {prep:.1f} | {n / prep:,.0f} |"
    )
    print(
        f"ratio vs naive: {naive / ours:.2f}x all in (target >= 2x); "
        f"{naive / one:.2f}x in one process"
    )
    print(
        f"file {size / 1e6:,.0f} MB = {size / 1e6 / (n / 1e6):,.0f} MB per 1M rows (target <= 1000)"
    )
    return path


def bench_readers(path: Path, calls: int = 300) -> None:
    ro = Store.open_readonly(path)
    total = ro.count_executions()
    rng = random.Random(1)
    task_ids = [r[0] for r in ro.query("SELECT DISTINCT task_id FROM task_executions")]
    traces = [
        r[0] for r in ro.query("SELECT trace_id FROM task_executions WHERE attempt > 1 LIMIT 2000")
    ]

    def timed(fn) -> list[float]:
        out = []
        for _ in range(calls):
            t0 = time.perf_counter_ns()
            fn()
            out.append((time.perf_counter_ns() - t0) / 1e6)
        return out

    cases = {
        "latest 50 for a task_id": lambda: ro.list_executions(
            task_id=rng.choice(task_ids), limit=50
        ),
        "all attempts of a trace": lambda: ro.trace(rng.choice(traces)),
        "latest 20 failures": lambda: ro.last_failed(limit=20),
    }
    print(f"\n## Reader queries at {total:,} rows ({calls} calls each)")
    print("| query | p50 ms | p99 ms |\n| --- | --- | --- |")
    for name, fn in cases.items():
        t = timed(fn)
        print(f"| {name} | {statistics.median(t):.2f} | {pct(t, 0.99):.2f} |")
    ro.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="demo runs for the bulk load")
    parser.add_argument("--track", type=int, default=5000, help="samples for the track() timing")
    parser.add_argument("--dir", default=None, help="work folder (default: a temp dir)")
    args = parser.parse_args()
    folder = Path(args.dir or tempfile.mkdtemp(prefix="taskexec-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"# taskexec write benchmark (SQLite {sqlite3.sqlite_version}, {os.cpu_count()} cores)")
    bench_track(folder, args.track)
    path = bench_bulk(folder, args.rows)
    bench_readers(path)


if __name__ == "__main__":
    main()
