"""Bulk load vs the naive baseline, alternated several times: the ratio with its spread.

Prints figures, asserts nothing. Usage::

    .venv/bin/python benchmarks/bench_bulk.py [--rows 1000000] [--repeat 3] [--dir DIR]

Each round loads the same demo records into an empty file with ``append_many`` (default
workers), then runs the naive baseline of ``bench_write.py`` (a plain ``executemany`` of the
same prepared rows, default pragmas, no FTS, no rollups). Alternating the two shows how much
of a single ratio is the machine's noise.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from taskexec import Store
from taskexec.db import rollups
from taskexec.db.bulkload import default_workers
from taskexec.db.rows import COLUMNS, encode_record
from taskexec.db.schema import FTS_TRIGGERS
from taskexec.ingest.demo import generate

END = datetime(2026, 11, 24, tzinfo=UTC)


def fresh(path: Path) -> Path:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="demo runs to load")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of ours-then-naive")
    parser.add_argument("--dir", default=None, help="work folder (default: a temp dir)")
    args = parser.parse_args()
    folder = Path(args.dir or tempfile.mkdtemp(prefix="taskexec-bulk-"))
    folder.mkdir(parents=True, exist_ok=True)
    records = list(generate(runs=args.rows, days=30, seed=7, end=END))
    rows = [encode_record(r, "2026-01-01T00:00:00.000000Z") for r in records]
    marks = ", ".join("?" * len(COLUMNS))
    insert = f"INSERT INTO task_executions ({', '.join(COLUMNS)}) VALUES ({marks})"
    print(
        f"# {len(records):,} records, {default_workers()} worker processes, {os.cpu_count()} CPUs"
    )
    print("| round | append_many s | naive s | ratio |\n| --- | --- | --- | --- |")
    ratios = []
    for i in range(1, args.repeat + 1):
        t0 = time.perf_counter()
        with Store(fresh(folder / "ours.db")) as store:
            store.append_many(records)
        ours = time.perf_counter() - t0

        Store(fresh(folder / "naive.db")).close()
        conn = sqlite3.connect(folder / "naive.db")
        conn.execute("PRAGMA journal_mode = DELETE")
        for name in [*FTS_TRIGGERS, *rollups.TRIGGERS]:  # the baseline keeps no FTS or rollups
            conn.execute(f"DROP TRIGGER {name}")
        conn.commit()
        t0 = time.perf_counter()
        conn.executemany(insert, rows)
        conn.commit()
        naive = time.perf_counter() - t0
        conn.close()
        ratios.append(naive / ours)
        print(f"| {i} | {ours:.1f} | {naive:.1f} | {naive / ours:.2f}x |", flush=True)
    print(f"median ratio {statistics.median(ratios):.2f}x (min {min(ratios):.2f}x, target >= 2x)")


if __name__ == "__main__":
    main()
