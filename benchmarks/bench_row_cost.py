"""Where one written row's CPU goes: indexes, full-text, rollups, the bare insert and commit.

Prints figures, asserts nothing. Usage::

    .venv/bin/python benchmarks/bench_row_cost.py [--rows 20000] [--group 20 --group 1000]
        [--repeat 3]

Each case creates a fresh file with ``Store`` (every index, trigger and table of the real
schema), drops one part of it, then inserts the same encoded demo rows in transactions of
``--group`` rows (``BEGIN IMMEDIATE`` ... ``COMMIT``, WAL, ``synchronous=NORMAL``: what the
background writer does) and reports CPU microseconds a row (``time.process_time``, so another
job on the machine inflates it less than wall time). The cases alternate within each round.
The difference between "everything" and a case without one part is what that part costs a
row; the figures explain the throughput ceiling of one SQLite writer in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from taskexec import Store
from taskexec.db import rollups
from taskexec.db.rows import COLUMNS, Row, encode_record
from taskexec.db.schema import FTS_TRIGGERS, INDEXES
from taskexec.ingest.demo import generate

MARKS = ", ".join("?" * len(COLUMNS))
INSERT = f"INSERT INTO task_executions ({', '.join(COLUMNS)}) VALUES ({MARKS})"

#: What each case drops from the real schema.
CASES: dict[str, list[tuple[str, str]]] = {
    "everything (the real schema)": [],
    "without full-text triggers": [("TRIGGER", n) for n in FTS_TRIGGERS],
    "without rollup triggers": [("TRIGGER", n) for n in rollups.TRIGGERS],
    "without secondary indexes": [("INDEX", n) for n in INDEXES],
    "bare table (none of them)": [
        *(("TRIGGER", n) for n in [*FTS_TRIGGERS, *rollups.TRIGGERS]),
        *(("INDEX", n) for n in INDEXES),
    ],
}


def trial(folder: Path, rows: list[Row], group: int, drop: list[tuple[str, str]]) -> float:
    """CPU µs a row to insert ``rows`` in groups of ``group`` into a fresh file minus ``drop``."""
    path = folder / "cost.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    Store(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = NORMAL")
    for kind, name in drop:
        conn.execute(f"DROP {kind} {name}")
    t0 = time.process_time()
    for i in range(0, len(rows), group):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(INSERT, rows[i : i + group])
        conn.execute("COMMIT")
    cpu = time.process_time() - t0
    conn.close()
    return cpu / len(rows) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="demo runs to write")
    parser.add_argument("--group", type=int, action="append", help="rows a transaction")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of every case")
    args = parser.parse_args()
    groups = args.group or [20, 1000]
    end = datetime(2026, 11, 24, tzinfo=UTC)
    records = list(generate(runs=args.rows, days=30, seed=3, end=end))
    rows = [encode_record(r, "2026-01-01T00:00:00.000000Z") for r in records]
    folder = Path(tempfile.mkdtemp(prefix="taskexec-rowcost-"))
    print(f"# {len(rows):,} demo rows into a fresh file; CPU µs a row, median of {args.repeat}")
    header = " | ".join(f"groups of {g}" for g in groups)
    print(f"| case | {header} |\n| --- |{' --- |' * len(groups)}")
    results: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.repeat):
        for group in groups:
            for name, drop in CASES.items():
                results.setdefault((name, group), []).append(trial(folder, rows, group, drop))
    for name in CASES:
        cells = " | ".join(f"{statistics.median(results[name, g]):.0f}" for g in groups)
        print(f"| {name} | {cells} |")
    for group in groups:
        every = statistics.median(results[next(iter(CASES)), group])
        parts = ", ".join(
            f"{name.removeprefix('without ')}: {every - statistics.median(results[name, g]):.0f}"
            for name in list(CASES)[1:4]
            for g in [group]
        )
        print(f"groups of {group}: a row costs {every:.0f} µs; of it {parts}")


if __name__ == "__main__":
    main()
