"""One writer process of ``bench_write.py --only writers`` (started with ``python -c``, never
forked): records ``n`` executions in a tight loop into one file and writes what it measured to a
JSON file. Not a benchmark on its own.

Protocol: the parent starts N of these; each opens its ``Recorder`` (or, for ``bare``, its own
connection), warms up, prints ``ready`` and blocks reading one byte from stdin, a pipe shared by
all of them; the parent writes N bytes in one write, which wakes them all at once. Each timed
execution is ``with rec.track("bench", attributes={"i": i}): pass`` (enter + exit), then
``rec.close()`` is timed on its own (the final flush). Times are ``time.monotonic()``
(system-wide on Linux), so the parent can place them against its own "go".

``mode``: ``default`` (background writer), ``durable`` (``durable=True``: both writes committed
on the task's thread) or ``bare`` (one committed single-row INSERT per execution on a plain
connection with the Store's pragmas: the floor).
"""

from __future__ import annotations

import json
import os
import resource
import sqlite3
import sys
import time
from datetime import UTC, datetime
from typing import Any

WARMUP = 100  # executions recorded as task "warmup" before "go" (and flushed before it)


def _usage(who: int) -> tuple[float, int, int]:
    """CPU seconds (user + system), voluntary and involuntary context switches."""
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime, r.ru_nvcsw, r.ru_nivcsw


def _bare(db: str, n: int, ready: Any) -> dict[str, Any]:
    from taskexec.db.rows import COL, INSERT, encode_record
    from taskexec.ingest.demo import generate

    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 10000")  # the Store's
    conn.execute("PRAGMA synchronous = NORMAL")  # the file is WAL already (made by Store)
    end = datetime(2026, 11, 24, tzinfo=UTC)
    row = list(encode_record(next(iter(generate(runs=1, days=1, end=end)))))
    pid = os.getpid()

    def values(i: int, slug: str = "bench") -> tuple[Any, ...]:
        row[COL["span_id"]] = f"{pid:08x}{int(slug != 'bench')}{i:07x}"
        row[COL["idempotency_key"]] = f"bare-{slug}-{pid}-{i}"
        row[COL["task_slug"]] = row[COL["task_id"]] = slug
        return tuple(row)

    for i in range(WARMUP):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(INSERT, values(i, "warmup"))
        conn.execute("COMMIT")
    ready()
    lat = []
    t_loop = time.monotonic()
    for i in range(n):
        v = values(i)
        t0 = time.perf_counter_ns()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(INSERT, v)
        conn.execute("COMMIT")
        lat.append(time.perf_counter_ns() - t0)
    t_loop_end = time.monotonic()
    conn.close()
    return {"lat_ns": lat, "t_loop": t_loop, "t_loop_end": t_loop_end, "stats": {}}


def _recorder(db: str, n: int, durable: bool, ready: Any) -> dict[str, Any]:
    from taskexec import Recorder

    rec = Recorder(db, durable=durable)
    for i in range(WARMUP):
        with rec.track("warmup", attributes={"i": i}):
            pass
    rec.flush()
    ready()
    lat = []
    perf = time.perf_counter_ns
    t_loop = time.monotonic()
    for i in range(n):
        t0 = perf()
        with rec.track("bench", attributes={"i": i}):
            pass
        lat.append(perf() - t0)
    t_loop_end = time.monotonic()
    cpu_main_loop = _usage(resource.RUSAGE_THREAD)[0]
    rec.close()
    stats = rec.stats
    return {
        "lat_ns": lat,
        "t_loop": t_loop,
        "t_loop_end": t_loop_end,
        "cpu_main_loop": cpu_main_loop,
        "stats": {
            "submitted": stats.submitted,
            "written": stats.written,
            "spooled": stats.spooled,
            "replayed": stats.replayed,
            "rejected": stats.rejected,
            "lost": stats.lost,
            "problems": dict(stats.problems),
        },
    }


def child(argv: list[str]) -> None:
    """``child([db, n, mode, out])``: run one writer and write its figures to ``out``."""
    db, n, mode, out = argv[0], int(argv[1]), argv[2], argv[3]
    marks: dict[str, Any] = {}

    def ready() -> None:
        print("ready", flush=True)
        os.read(0, 1)  # "go": stdin is a pipe shared by every writer; one byte each
        marks["cpu0"], marks["vcs0"], marks["ivcs0"] = _usage(resource.RUSAGE_SELF)
        marks["cpu_main0"] = _usage(resource.RUSAGE_THREAD)[0]

    durable = mode == "durable"
    result = _bare(db, n, ready) if mode == "bare" else _recorder(db, n, durable, ready)
    result["t_closed"] = time.monotonic()
    cpu, vcs, ivcs = _usage(resource.RUSAGE_SELF)
    result["cpu"] = cpu - marks["cpu0"]  # the whole process: loop, writer thread, close
    result["cpu_main_loop"] = result.get("cpu_main_loop", cpu) - marks["cpu_main0"]
    result["voluntary_switches"] = vcs - marks["vcs0"]
    result["involuntary_switches"] = ivcs - marks["ivcs0"]
    result["pid"] = os.getpid()
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f)


if __name__ == "__main__":
    child(sys.argv[1:])
