"""What the rollups cost and what they buy, on a demo database. Prints figures, asserts nothing.

    .venv/bin/python benchmarks/bench_rollups.py DB [--repeat 5] [--rows 20000]

1. Every probe through ``Store.run_probe`` (no Datasette), with its default window and with
   ``since=all``: median and max ms.
2. ``taskexec rollup --verify`` and ``--rebuild`` times on DB (read in one transaction).
3. The write cost of the triggers: ``--rows`` demo rows inserted by value into a file that
   already has rows, with the rollup triggers and without them, alternated; CPU µs a row.

DB must exist (``taskexec demo DB --runs N``); it is only read (2 writes to temporary copies).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime

from taskexec import Store, probes
from taskexec.db import rollups
from taskexec.db.rows import INSERT, encode_record
from taskexec.ingest.demo import generate


def time_probes(db: str, repeat: int) -> None:
    print("| probe | window | median ms | max ms | rows |\n| --- | --- | ---: | ---: | ---: |")
    with Store.open_readonly(db) as store:
        (last,) = store.run_probe("data_range").rows
        now = last[1]  # judge the alert probes inside the data
        for probe in probes.all_probes():
            names = {p.name for p in probe.params}
            windows = ["default", "all"] if "since" in names else ["default"]
            for window in windows:
                params: dict[str, object] = {"since": "all"} if window == "all" else {}
                if "now" in names:
                    params["now"] = now
                store.run_probe(probe.name, params)  # warm
                took = []
                for _ in range(repeat):
                    t0 = time.perf_counter()
                    result = store.run_probe(probe.name, params)
                    took.append((time.perf_counter() - t0) * 1000)
                print(
                    f"| {probe.name} | {window} | {statistics.median(took):.1f} | "
                    f"{max(took):.1f} | {len(result.rows)} |",
                    flush=True,
                )


def time_verify(db: str) -> None:
    with Store(db) as store:
        t0 = time.perf_counter()
        diffs = store.rollup_verify()
        verify = time.perf_counter() - t0
        hours = store.conn.execute("SELECT count(*) FROM rollup_hourly").fetchone()[0]
    print(f"\nverify: {verify:.1f} s, {len(diffs)} differences, {hours:,} task-hours")


def trigger_cost(rows_n: int, repeat: int) -> None:
    records = list(generate(runs=rows_n, days=3, seed=5, end=datetime(2026, 11, 24, tzinfo=UTC)))
    rows = [encode_record(r, "2026-01-01T00:00:00.000000Z") for r in records]
    with_t, without = [], []
    for _ in range(repeat):
        for drop, out in ((False, with_t), (True, without)):
            folder = tempfile.mkdtemp(prefix="taskexec-trig-")
            with Store(os.path.join(folder, "t.db")) as store:
                store.append_many(records[:1])
                conn = store.conn
                if drop:
                    for name in rollups.TRIGGERS:
                        conn.execute(f"DROP TRIGGER {name}")
                conn.execute("BEGIN")
                t0 = time.process_time()
                conn.executemany(INSERT, rows[1:])
                out.append((time.process_time() - t0) / (len(rows) - 1) * 1e6)
                conn.execute("COMMIT")
    a, b = statistics.median(with_t), statistics.median(without)
    print(
        f"\ninsert by value, {len(rows) - 1:,} rows, CPU per row: with rollup triggers {a:.1f} µs,"
        f" without {b:.1f} µs: the triggers add {a - b:.1f} µs ({(a - b) / b:.0%})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()
    time_probes(args.db, args.repeat)
    time_verify(args.db)
    trigger_cost(args.rows, max(1, args.repeat // 2))


if __name__ == "__main__":
    main()
