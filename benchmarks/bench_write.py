"""Write-path benchmark: one tracked execution, concurrent writers, bulk loading, readers.

Prints figures, asserts nothing. Usage::

    .venv/bin/python benchmarks/bench_write.py [--rows 1000000] [--track 5000] [--dir DIR]
        [--writers 8] [--per-writer 10000] [--durable-per-writer 1000] [--only writers]

1. One process: ``track()`` around an empty body in the default mode (the attempt is queued;
   a background thread encodes and commits groups) and with ``durable=True`` (the running row
   and the outcome are encoded and committed on the task's thread), vs a bare committed
   single-row INSERT into the same schema (the floor), p50/p99/max µs.
2. Concurrent writers: N processes (``python -c``, not forked) each record M executions in a
   tight loop into one file, started together; executions/s in all by the wall time from "go"
   until the last process has exited (every record flushed), the task's path p50/p99/max, and
   a reader in this process querying the file meanwhile (p50/p99, errors, "locked" ones).
   The same with ``durable=True`` and with bare committed INSERTs (fewer per process: they are
   slow), and a table of all of it next to the targets. The writers are ``_writers.py``.
3. ``append_many`` of N demo records into an empty file (every index, FTS, error groups), with
   its default worker processes and with ``workers=1``, vs a plain ``executemany`` of the same
   prepared rows into the same schema without FTS and with default pragmas (the naive
   baseline), rows/s and the ratios.
4. The three reader queries (by task, by trace, last failed) at N rows, p50/p99 ms.

``--only track`` runs 1, ``--only writers`` 1 and 2 (about half a minute on 2 cores),
``--only bulk`` 3 and 4 (minutes at 1M rows); repeat ``--only`` to combine; without it,
everything runs. Section 2 counts the rows in the file after the last writer exited: records a
writer could not write in time wait in its spool (``$TASKEXEC_SPOOL_DIR``, set to the work
folder) and are reported as a mismatch, with the spool files left.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from taskexec import Recorder, Store
from taskexec.db.bulkload import default_workers
from taskexec.db.rows import COLUMNS, INSERT, encode_record
from taskexec.db.schema import FTS_TRIGGERS
from taskexec.db.spool import spool_dir
from taskexec.ingest.demo import generate

END = datetime(2026, 11, 24, tzinfo=UTC)

# The targets for the write path (benchmarks, not timed tests).
TARGET_RATE = 20_000  # tracked executions/s in all, 8 processes x 10,000, tight loop
BEFORE_RATE = 1_755  # the same before the background writer
TARGET_P50_US = 20.0  # task's path, one process
TARGET_P99_MS = 1.0  # task's path, concurrent
TARGET_MAX_MS = 20.0  # task's path, concurrent

#: How a writer process is started: a fresh interpreter running ``_writers.child``.
WRITER_CODE = (
    "import sys; sys.path.insert(0, sys.argv[1]); import _writers; _writers.child(sys.argv[2:])"
)
MODE_LABELS = {
    "default": "default (background writer)",
    "durable": "`durable=True` (synchronous)",
    "bare": "bare committed INSERT (floor)",
}


def pct(values: list[float], p: float) -> float:
    """The ``p`` quantile (1.0: the largest); NaN for no values (a writer that failed)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p * len(ordered)) - 1))]


@dataclass
class Figures:
    """One row of the summary table."""

    mode: str  # "default", "durable" or "bare"
    processes: int
    per_process: int
    seconds: float  # wall time, including the final flush
    lat_us: list[float]  # the task's path, one sample per execution
    reader_ms: list[float] | None = None
    reader_errors: Counter[str] = field(default_factory=Counter)
    rows: int | None = None  # "bench" rows in the file once every writer has closed

    @property
    def expected(self) -> int:
        return self.processes * self.per_process

    @property
    def rate(self) -> float:
        """Executions/s in all, by the wall time (the final flush included)."""
        return self.expected / self.seconds


def _remove_db(path: Path) -> None:
    """A fresh start for ``path``: no file, no WAL, no spool left by an earlier run."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    shutil.rmtree(spool_dir(path), ignore_errors=True)


def time_track(path: Path, n: int, durable: bool) -> Figures:
    """``track()`` around an empty body, ``n`` times in a tight loop; the wall time includes
    ``close()`` (the final flush)."""
    _remove_db(path)
    rec = Recorder(path, durable=durable)
    for i in range(200):  # warm up
        with rec.track("warmup", attributes={"i": i}):
            pass
    rec.flush()
    samples = []
    perf = time.perf_counter_ns
    start = time.perf_counter()
    for i in range(n):
        t0 = perf()
        with rec.track("bench", attributes={"i": i}):
            pass
        samples.append((perf() - t0) / 1000)
    rec.close()
    seconds = time.perf_counter() - start
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT count(*) FROM task_executions WHERE task_slug = 'bench'"
        ).fetchone()[0]
    conn.close()
    return Figures("durable" if durable else "default", 1, n, seconds, samples, rows=rows)


def time_bare(path: Path, n: int) -> Figures:
    """A bare committed single-row INSERT into the same schema, ``n`` times (after 200)."""
    _remove_db(path)
    Store(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    row = encode_record(
        next(iter(generate(runs=1, days=1, end=END))), "2026-01-01T00:00:00.000000Z"
    )
    bare = []
    seconds = 0.0
    for i in range(n + 200):
        values = (f"{i:016x}", *row[1:5], f"{i:064x}", *row[6:])
        t0 = time.perf_counter_ns()
        conn.execute("BEGIN")
        conn.execute(INSERT, values)
        conn.execute("COMMIT")
        if i >= 200:
            bare.append((time.perf_counter_ns() - t0) / 1000)
            seconds += bare[-1] / 1e6
    conn.close()
    return Figures("bare", 1, n, seconds, bare, rows=n)


def bench_track(folder: Path, n: int) -> list[Figures]:
    default = time_track(folder / "track.db", n, durable=False)
    durable = time_track(folder / "track-durable.db", n, durable=True)
    bare = time_bare(folder / "bare.db", n)
    print(f"\n## One tracked execution ({n:,} samples, one process)")
    print("| what | p50 µs | p99 µs | max µs |\n| --- | --- | --- | --- |")
    rows = [
        ("bare committed single-row INSERT (floor)", bare),
        ("`track()` around an empty body, default (queued; encoded by the writer)", default),
        ("`track()` around an empty body, `durable=True` (two commits)", durable),
    ]
    for label, f in rows:
        print(
            f"| {label} | {pct(f.lat_us, 0.5):.0f} | {pct(f.lat_us, 0.99):.0f} "
            f"| {max(f.lat_us):,.0f} |"
        )
    print(
        f"default: p50 {pct(default.lat_us, 0.5):.1f} µs (target <= {TARGET_P50_US:.0f} µs); "
        f"durable vs floor, ratio of p50s: {pct(durable.lat_us, 0.5) / pct(bare.lat_us, 0.5):.2f}x "
        f"(target <= 3x); durable p99 {pct(durable.lat_us, 0.99) / 1000:.2f} ms (target <= 2 ms)"
    )
    return [default, durable, bare]


# -- concurrent writers ------------------------------------------------------------------------


class Reader(threading.Thread):
    """What Datasette and MCP do meanwhile: read-only queries in a loop, each timed; every
    error counted by kind ("locked" for SQLite's locked/busy)."""

    def __init__(self, path: Path, pause: float) -> None:
        super().__init__(name="bench-reader", daemon=True)
        self.path, self.pause = path, pause
        self.lat_ms: list[float] = []
        self.errors: Counter[str] = Counter()
        self.first_error: dict[str, str] = {}
        self.stop = threading.Event()

    def _error(self, exc: BaseException) -> None:
        text = str(exc)
        lower = text.lower()
        kind = "locked" if ("locked" in lower or "busy" in lower) else type(exc).__name__
        self.errors[kind] += 1
        self.first_error.setdefault(kind, text)

    def run(self) -> None:
        try:
            ro = Store.open_readonly(self.path)
        except Exception as exc:  # noqa: BLE001 - counted and reported, not raised
            self._error(exc)
            return
        queries = (
            lambda: ro.list_executions(task_slug="bench", limit=50),
            lambda: ro.last_failed(limit=20),
            lambda: ro.count_executions(cap=1000),
        )
        try:
            while not self.stop.is_set():
                for query in queries:
                    t0 = time.perf_counter_ns()
                    try:
                        query()
                    except Exception as exc:  # noqa: BLE001
                        self._error(exc)
                    self.lat_ms.append((time.perf_counter_ns() - t0) / 1e6)
                if self.pause:
                    self.stop.wait(self.pause)
        finally:
            ro.close()


def run_writers(
    folder: Path, mode: str, processes: int, per: int, reader_pause: float
) -> tuple[Figures, list[str]]:
    """N writer processes of one mode into a new file, started together; returns the figures
    and the lines that say where the time went (and anything that went wrong)."""
    db = folder / f"writers-{mode}.db"
    _remove_db(db)
    # The schema is made once here, so the writers do not all migrate at start (they would
    # cope; it is not what is measured).
    Store(db).close()
    spool = spool_dir(db)  # under $TASKEXEC_SPOOL_DIR, which main() points into the work folder
    here = str(Path(__file__).resolve().parent)
    go_r, go_w = os.pipe()  # one write of N bytes wakes every writer at once
    procs, outs, errs = [], [], []
    for k in range(processes):
        out = folder / f"writer-{mode}-{k}.json"
        out.unlink(missing_ok=True)
        err = folder / f"writer-{mode}-{k}.stderr"
        outs.append(out)
        errs.append(err)
        with open(err, "w", encoding="utf-8") as err_file:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", WRITER_CODE, here, str(db), str(per), mode, str(out)],
                    stdin=go_r,
                    stdout=subprocess.PIPE,
                    stderr=err_file,
                    text=True,
                )
            )
    os.close(go_r)
    notes: list[str] = []
    for k, proc in enumerate(procs):
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if line != "ready":
            notes.append(f"WARNING: writer {k} did not get ready (said {line!r})")
    reader = Reader(db, reader_pause)
    t_go = time.monotonic()
    os.write(go_w, b"g" * processes)
    reader.start()
    codes = [proc.wait() for proc in procs]
    t_end = time.monotonic()
    reader.stop.set()
    reader.join()
    os.close(go_w)
    for proc in procs:
        assert proc.stdout is not None
        proc.stdout.close()
    wall = t_end - t_go

    results: list[dict[str, Any]] = []
    for k, (out, code) in enumerate(zip(outs, codes, strict=True)):
        if code != 0 or not out.exists():
            notes.append(f"WARNING: writer {k} exited with {code}; see {errs[k]}")
            continue
        results.append(json.loads(out.read_text(encoding="utf-8")))
    for k, err in enumerate(errs):
        text = err.read_text(encoding="utf-8").strip()
        if text:
            notes.append(f"writer {k} stderr: " + " | ".join(text.splitlines()[:3]))

    lat_us = [ns / 1000 for r in results for ns in r["lat_ns"]]
    expected = processes * per
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        found, running, unsuccessful = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'running'), "
            "count(*) FILTER (WHERE status NOT IN ('success', 'running')) "
            "FROM task_executions WHERE task_slug = 'bench'"
        ).fetchone()
        total = conn.execute("SELECT count(*) FROM task_executions").fetchone()[0]
    conn.close()
    spooled_files = [f for f in spool.glob("*.jsonl") if f.name != "rejected.jsonl"]
    check = (
        f"rows: {found:,} 'bench' rows in the file, expected {processes} x {per:,} = {expected:,}"
        f" ({running} still 'running', {unsuccessful} not 'success'; {total:,} rows in all"
        f" with the warm-ups)"
    )
    notes.insert(0, check if found == expected else f"WARNING: {check}: MISMATCH")
    figures = Figures(mode, processes, per, wall, lat_us, reader.lat_ms, reader.errors, found)
    if running and mode != "bare":
        notes.append(f"WARNING: {running:,} rows left 'running' (their outcome never arrived)")
    if spooled_files:
        lines = sum(len(f.read_text(encoding="utf-8").splitlines()) for f in spooled_files)
        notes.append(
            f"WARNING: {len(spooled_files)} spool files ({lines:,} lines) left in {spool}: not"
            " in the file when the writers exited (`taskexec replay` with the same"
            " TASKEXEC_SPOOL_DIR writes them)"
        )

    if results:
        starts = [r["t_loop"] - t_go for r in results]
        loop_ends = [r["t_loop_end"] - t_go for r in results]
        closes = [r["t_closed"] - r["t_loop_end"] for r in results]
        cpu = sum(r["cpu"] for r in results)
        cpu_main = sum(r["cpu_main_loop"] for r in results)
        cores = os.cpu_count() or 1
        notes.append(
            f"time: loops started {min(starts) * 1000:.0f}-{max(starts) * 1000:.0f} ms after go,"
            f" ended {min(loop_ends):.2f}-{max(loop_ends):.2f} s; close() (final flush) took"
            f" {min(closes) * 1000:.0f}-{max(closes) * 1000:.0f} ms; last exit {wall:.2f} s;"
            f" by the last loop's end alone: {expected / max(loop_ends):,.0f}/s"
        )
        notes.append(
            f"cpu: {cpu:.1f} s in the writers ({cpu / (wall * cores):.0%} of {cores} cores over"
            f" the wall time): task threads' loops {cpu_main:.1f} s"
            f" ({cpu_main / expected * 1e6:.0f} µs per execution), the rest (writer threads,"
            f" close, exit) {cpu - cpu_main:.1f} s; involuntary context switches per process"
            f" {statistics.median(r['involuntary_switches'] for r in results):,.0f} (median)"
        )
        stats = Counter[str]()
        problems: dict[str, str] = {}
        for r in results:
            for key, value in r["stats"].items():
                if key == "problems":
                    problems.update(value)
                else:
                    stats[key] += value
        if stats:
            notes.append(
                "writer stats (summed): " + ", ".join(f"{k} {v:,}" for k, v in stats.items())
            )
        for kind, text in problems.items():
            notes.append(f"WARNING: a writer met {kind!r}: {text}")
        slow = sum(1 for x in lat_us if x > TARGET_P99_MS * 1000)
        notes.append(
            f"task path over {TARGET_P99_MS:.0f} ms: {slow:,} of {len(lat_us):,}; over"
            f" {TARGET_MAX_MS:.0f} ms: {sum(1 for x in lat_us if x > TARGET_MAX_MS * 1000):,}"
        )
    if reader.lat_ms:
        notes.append(
            f"reader: {len(reader.lat_ms):,} queries (list_executions, last_failed,"
            f" count_executions; {reader_pause * 1000:.0f} ms pause per round), p50"
            f" {pct(reader.lat_ms, 0.5):.2f} ms, p99 {pct(reader.lat_ms, 0.99):.2f} ms,"
            f" max {max(reader.lat_ms):.1f} ms"
        )
    for kind, count in reader.errors.items():
        notes.append(f"WARNING: reader errors {kind!r} x {count}: {reader.first_error[kind]}")
    return figures, notes


def bench_writers(
    folder: Path,
    processes: int,
    per: int,
    durable_per: int,
    reader_pause: float,
    single: list[Figures],
) -> None:
    runs = [("default", per), ("durable", durable_per), ("bare", durable_per)]
    print(f"\n## Concurrent writers ({processes} processes into one file, tight loops)")
    if durable_per != per:
        print(
            f"`durable=True` and the bare INSERTs run {durable_per:,} executions per process,"
            f" not {per:,}: they commit on the task's thread and would take minutes."
        )
    figures = []
    for mode, n in runs:
        f, notes = run_writers(folder, mode, processes, n, reader_pause)
        figures.append(f)
        print(f"\n{MODE_LABELS[mode]}, {processes} x {n:,}:")
        for note in notes:
            print(f"- {note}")

    def ms(values: list[float], p: float) -> str:
        return f"{pct(values, p) / 1000:.2f}"

    print(
        "\n| mode | processes x executions | executions/s in all | task path p50 µs "
        "| p99 ms | max ms | reader p50 / p99 ms | reader errors (locked) "
        "| rows in the file at exit |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for f in figures + single:
        reader = (
            f"{pct(f.reader_ms, 0.5):.2f} / {pct(f.reader_ms, 0.99):.2f}" if f.reader_ms else "-"
        )
        errors = (
            f"{sum(f.reader_errors.values())} ({f.reader_errors['locked']})"
            if f.reader_ms is not None
            else "-"
        )
        rows = "-" if f.rows is None else f"{f.rows:,}"
        if f.rows is not None and f.rows != f.expected:
            rows = f"**{rows} of {f.expected:,}**"
        print(
            f"| {MODE_LABELS[f.mode]} | {f.processes} x {f.per_process:,} | {f.rate:,.0f} "
            f"| {pct(f.lat_us, 0.5):.1f} | {ms(f.lat_us, 0.99)} | {pct(f.lat_us, 1.0) / 1000:.2f} "
            f"| {reader} | {errors} | {rows} |"
        )
    print(
        f"| **target** | 8 x 10,000 | >= {TARGET_RATE:,} (before: {BEFORE_RATE:,}) "
        f"| <= {TARGET_P50_US:.0f} (one process) | <= {TARGET_P99_MS:.0f} "
        f"| <= {TARGET_MAX_MS:.0f} | - | 0 (0) | all |"
    )
    ours = figures[0]
    one = next((f for f in single if f.mode == "default"), None)
    checks = [
        (f"executions/s in all, {ours.processes} x {ours.per_process:,}", ours.rate >= TARGET_RATE,
         f"{ours.rate:,.0f} vs >= {TARGET_RATE:,}"),
        ("task path p99", pct(ours.lat_us, 0.99) <= TARGET_P99_MS * 1000,
         f"{pct(ours.lat_us, 0.99) / 1000:.2f} ms vs <= {TARGET_P99_MS:.0f} ms"),
        ("task path max", pct(ours.lat_us, 1.0) <= TARGET_MAX_MS * 1000,
         f"{pct(ours.lat_us, 1.0) / 1000:.2f} ms vs <= {TARGET_MAX_MS:.0f} ms"),
        ("reader errors", not ours.reader_errors, f"{sum(ours.reader_errors.values())} vs 0"),
        ("rows in the file at exit", ours.rows == ours.expected,
         f"{ours.rows or 0:,} of {ours.expected:,}"),
    ]  # fmt: skip
    if one is not None:
        checks.append(
            ("one process p50", pct(one.lat_us, 0.5) <= TARGET_P50_US,
             f"{pct(one.lat_us, 0.5):.1f} µs vs <= {TARGET_P50_US:.0f} µs")
        )  # fmt: skip
    print(
        "\nagainst the targets (default mode): "
        + "; ".join(f"{name} {text} {'met' if ok else 'MISSED'}" for name, ok, text in checks)
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
    rows = [encode_record(r, "2026-01-01T00:00:00.000000Z") for r in records]
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
    task_ids = ro.distinct_values("task_id")
    with sqlite3.connect(path) as conn:  # the benchmark's own pick of retried runs
        traces = [
            r[0]
            for r in conn.execute(
                "SELECT trace_id FROM task_executions WHERE attempt > 1 LIMIT 2000"
            )
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
    parser.add_argument("--writers", type=int, default=8, help="concurrent writer processes")
    parser.add_argument(
        "--per-writer", type=int, default=10_000, help="executions per writer, default mode"
    )
    parser.add_argument(
        "--durable-per-writer",
        type=int,
        default=1_000,
        help="executions per writer with durable=True and bare INSERTs",
    )
    parser.add_argument(
        "--reader-pause",
        type=float,
        default=0.01,
        help="seconds the concurrent reader pauses between rounds of its three queries",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=["track", "writers", "bulk"],
        help="run only this section (repeatable): track, writers (with track), bulk (+ readers)",
    )
    args = parser.parse_args()
    only = set(args.only or ["track", "writers", "bulk"])
    folder = Path(args.dir or tempfile.mkdtemp(prefix="taskexec-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    # Records a writer could not write go to a spool: keep it in the work folder, so a run
    # neither leaves files in the user's state folder nor replays an earlier run's.
    os.environ["TASKEXEC_SPOOL_DIR"] = str(folder / "spool")
    print(f"# taskexec write benchmark (SQLite {sqlite3.sqlite_version}, {os.cpu_count()} cores)")
    single = bench_track(folder, args.track)
    if "writers" in only:
        bench_writers(
            folder,
            args.writers,
            args.per_writer,
            args.durable_per_writer,
            args.reader_pause,
            single,
        )
    if "bulk" in only:
        path = bench_bulk(folder, args.rows)
        bench_readers(path)


if __name__ == "__main__":
    main()
