"""Loading records into an empty table: rows first, then every index, full-text and groups once.

Everything happens in one transaction on the database, with its indexes and full-text triggers
dropped and rebuilt before the commit, so a killed load leaves the file as it was.

The slow part of a load is Python turning records into rows (scrub, hash, format, bind: about
20 µs a record). For a list of records, ``load_parallel`` splits that work: the parent inserts
the first part itself while forked workers each write one later part, with the ids it will keep,
into a scratch SQLite file; the parent then copies each file in with SQLite's row-transfer path
(``INSERT INTO ... SELECT *`` between identical tables, about 1 µs a row). A worker that fails
has its part redone by the parent. Forking is used only where it is safe: on Linux, with more
than one CPU, and when the process runs no other thread (a fork copies locks a thread may hold).
A stream of records (a generator) is loaded by ``load_direct``, in this process.

Loads skip SQLite's CHECK constraints (``PRAGMA ignore_check_constraints``): records are
validated when they are built, and the checks cost about 4.5 µs a row.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import operator
import os
import signal
import sqlite3
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..model import TaskExecution, format_ts, utcnow
from . import groups, rollups
from . import schema as migrations
from .connection import Handle, retry
from .rows import INSERT, INSERT_WITH_ID, encode_record

#: Below this many records a fork costs more than it saves (when ``workers`` is left to us).
PARALLEL_MIN = 50_000
MAX_WORKERS = 4
_BATCH = 10_000


@dataclass(frozen=True)
class BulkResult:
    """What a bulk append did: rows written and records that were already there."""

    inserted: int = 0
    duplicates: int = 0

    def __add__(self, other: BulkResult) -> BulkResult:
        return BulkResult(self.inserted + other.inserted, self.duplicates + other.duplicates)


def forkable() -> bool:
    """Whether forking workers is safe here: Linux, and no other thread in this process."""
    return sys.platform.startswith("linux") and threading.active_count() == 1


def default_workers() -> int:
    """Processes a bulk load uses by default: one per CPU (at most 4) when forking is safe."""
    return max(1, min(MAX_WORKERS, len(os.sched_getaffinity(0)))) if forkable() else 1


class Dedupe:
    """Records in batches, without any whose idempotency key or span id came earlier."""

    def __init__(self, records: Iterable[TaskExecution], size: int = _BATCH) -> None:
        self.records, self.size = records, size
        self.duplicates = 0

    def __iter__(self) -> Iterator[list[TaskExecution]]:
        keys: set[str] = set()
        spans: set[str] = set()
        batch: list[TaskExecution] = []
        for record in self.records:
            if record.idempotency_key in keys or record.span_id in spans:
                self.duplicates += 1
                continue
            keys.add(record.idempotency_key)
            spans.add(record.span_id)
            batch.append(record)
            if len(batch) >= self.size:
                yield batch
                batch = []
        if batch:
            yield batch


def _begin_write(conn: sqlite3.Connection) -> None:
    """BEGIN and take the write lock on ``main`` only, not on attached scratch files.

    (``BEGIN IMMEDIATE`` would lock every attached file, and workers are still writing them.)
    """
    conn.execute("BEGIN")
    try:
        conn.execute("DELETE FROM main.taskexec_meta WHERE 0")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


@dataclass
class _Load:
    """What the load transaction's body learns and tells: is the table empty, and which rows
    (``id > fts_after``) still need full-text indexing at the end."""

    empty: bool
    fts_after: int = 0
    tally: rollups.Tally = field(default_factory=rollups.Tally)


@contextlib.contextmanager
def _load_transaction(db: Handle, attach: Sequence[str] = ()) -> Iterator[_Load]:
    """One write transaction; tells whether the table is empty, and if so loads it index-free.

    Into an empty table, indexes and triggers are dropped and rebuilt once before the commit.
    If another writer got rows in since the caller looked, they stay and the caller inserts by
    value with conflicts ignored. ``attach`` files are attached as ``part1``, ``part2``... first
    (SQLite cannot attach inside a transaction).

    A rollback journal writes each page once (WAL would write it again at checkpoint) and, the
    table being empty, journals almost nothing; it is only possible when no other connection
    has the file open, otherwise the load stays in WAL mode. Index builds sort with helper
    threads, which SQLite only uses when a sort spills: so the page cache stays small (it sets
    the sort's memory) while ``cache_spill`` keeps freshly written pages in memory.
    """
    conn = db.conn
    switched = db.journal_mode("delete")
    attached = 0
    try:
        for attached, path in enumerate(attach, 1):  # noqa: B007 - counted for the finally
            conn.execute(f"ATTACH ? AS part{attached}", (path,))
        with db.lock:
            retry(_begin_write, conn)
            try:
                empty = conn.execute("SELECT 1 FROM task_executions LIMIT 1").fetchone() is None
                # Every record was validated when it was built (status, provenance, ids,
                # attempt), and SQLite evaluates the table's CHECK constraints, IN lists and
                # all, afresh for each row: about 4.5 µs of the ~11 µs an insert costs.
                conn.execute("PRAGMA ignore_check_constraints = ON")
                conn.execute(f"PRAGMA threads = {min(MAX_WORKERS, os.cpu_count() or 1)}")
                conn.execute("PRAGMA main.cache_size = -4096")
                conn.execute("PRAGMA main.cache_spill = 262144")  # pages: 1 GiB before spilling
                if empty:
                    for name in migrations.INDEXES:
                        conn.execute(f"DROP INDEX {name}")
                    for name in [*migrations.FTS_TRIGGERS, *rollups.TRIGGERS]:
                        conn.execute(f"DROP TRIGGER {name}")
                    for table in rollups.TABLES:  # empty with the table (a stray row: gone)
                        conn.execute(f"DELETE FROM {table}")
                load = _Load(empty)
                yield load
                if empty:
                    for sql in migrations.INDEXES.values():
                        conn.execute(sql)
                    conn.execute(migrations.FTS_FILL, (load.fts_after,))
                    load.tally.write(conn)
                    for sql in [*migrations.FTS_TRIGGERS.values(), *rollups.TRIGGERS.values()]:
                        conn.execute(sql)
                groups.rebuild(conn, fresh=empty)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            retry(conn.execute, "COMMIT")
    finally:
        conn.execute("PRAGMA ignore_check_constraints = OFF")
        conn.execute("PRAGMA threads = 0")
        conn.execute("PRAGMA main.cache_size = -2000")
        conn.execute("PRAGMA main.cache_spill = 1")
        for i in range(1, attached + 1):
            conn.execute(f"DETACH part{i}")
        if switched:
            db.journal_mode("wal")


def _insert_by_value(conn: sqlite3.Connection, records: Iterable[TaskExecution]) -> int:
    """Insert with conflicts ignored and triggers firing (a table that is not empty)."""
    created = format_ts(utcnow())
    return conn.executemany(INSERT, (encode_record(r, created) for r in records)).rowcount


def load_direct(db: Handle, records: Iterable[TaskExecution]) -> BulkResult:
    """Load records in this process, streaming: nothing is held beyond one batch."""
    created = format_ts(utcnow())
    dedupe = Dedupe(records)
    offered = inserted = 0
    with _load_transaction(db) as load:
        for batch in dedupe:
            offered += len(batch)
            if load.empty:
                _write_rows(db.conn, batch, offered - len(batch) + 1, created, load.tally)
                inserted += len(batch)
            else:
                inserted += _insert_by_value(db.conn, batch)
    return BulkResult(inserted, dedupe.duplicates + offered - inserted)


# -- the parallel way ------------------------------------------------------------------------


def _write_rows(
    conn: sqlite3.Connection,
    records: Iterable[TaskExecution],
    first_id: int,
    created: str,
    tally: rollups.Tally,
) -> int:
    """Prepare and insert records with ids from ``first_id`` (the ids they will keep), and
    count them into ``tally`` (the rollups, whose triggers are off during the load)."""
    add = tally.add
    written = 0

    def prepared() -> Iterator[tuple[Any, ...]]:
        nonlocal written
        for written, r in enumerate(records, 1):  # noqa: B007 - counted for the caller
            row = encode_record(r, created)
            add(row)
            yield (first_id + written - 1, *row)

    conn.executemany(INSERT_WITH_ID, prepared())
    return written


#: One part of a parallel load: the first id its rows take, and what yields its rows.
Part = tuple[int, Callable[[], Iterable[TaskExecution]]]


@dataclass
class _Job:
    """One part of the records being written to a scratch file by a forked worker."""

    pid: int
    errors: int  # read end of a pipe: the worker's error, or end-of-file when it exits
    records: Callable[[], Iterable[TaskExecution]]
    first_id: int
    count_fd: int  # read end of a pipe: how many rows the worker wrote
    done: bool = False


def _fork(
    path: str, records: Callable[[], Iterable[TaskExecution]], first_id: int, created: str
) -> _Job:
    counted, count_w = os.pipe()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: fill the part's file, report, and leave without any cleanup
        code = 1
        try:
            os.close(read)
            os.close(counted)
            conn = sqlite3.connect(path, isolation_level=None)
            conn.execute("PRAGMA busy_timeout = 10000")
            conn.execute("PRAGMA journal_mode = OFF")  # a scratch file: no journal, no fsync
            conn.execute("PRAGMA synchronous = OFF")
            conn.execute("PRAGMA ignore_check_constraints = ON")  # as in _load_transaction
            conn.execute("BEGIN")
            tally = rollups.Tally()
            written = _write_rows(conn, records(), first_id, created, tally)
            for sql in rollups.DDL:
                conn.execute(sql)
            tally.write(conn)
            conn.execute("COMMIT")
            conn.close()
            os.write(count_w, str(written).encode())
            code = 0
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which redoes it
            with contextlib.suppress(OSError):
                os.write(write, f"{type(exc).__name__}: {exc}".encode()[:2000])
        finally:
            os._exit(code)
    os.close(write)
    os.close(count_w)
    return _Job(pid, read, records, first_id, counted)


def _wait(job: _Job) -> tuple[str | None, int]:
    """Wait for a worker: (None, rows written) when it succeeded, else (what went wrong, 0)."""
    with os.fdopen(job.errors, "rb") as pipe:
        error = pipe.read().decode(errors="replace")
    with os.fdopen(job.count_fd, "rb") as pipe:
        written = pipe.read().decode() or "0"
    _, status = os.waitpid(job.pid, 0)
    job.done = True
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        return None, int(written)
    return (error or f"worker exited with {code}"), 0


def _scratch(path: str, table_sql: str) -> None:
    """Create a scratch file holding only the table, with no index."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(table_sql)
    conn.close()


def load_parallel(db: Handle, records: Sequence[TaskExecution], workers: int) -> BulkResult:
    """Prepare rows in ``workers`` processes (this one included) and load them in one go."""
    # Set comprehensions check for repeats at C speed; only a list that has some is filtered.
    n = len(records)
    if len({r.idempotency_key for r in records}) == n and len({r.span_id for r in records}) == n:
        accepted, duplicates = list(records), 0
    else:
        dedupe = Dedupe(records, size=n)
        accepted, duplicates = next(iter(dedupe), []), dedupe.duplicates
    # Equal parts: this process skips the fork but also indexes its part's text while it waits.
    size = max(1, -(-len(accepted) // workers))
    bounds = [*range(0, len(accepted), size), len(accepted)]
    parts: list[Part] = [
        (a + 1, functools.partial(operator.getitem, accepted, slice(a, b)))
        for a, b in itertools.pairwise(bounds)
        if b > a
    ]
    inserted = load_parts(db, parts)
    return BulkResult(inserted, duplicates + len(accepted) - inserted)


def load_parts(db: Handle, parts: Sequence[Part]) -> int:
    """Load parts made apart (this process makes the first, forked workers the others) into
    an empty table, each part's rows with ids from its first id on; returns the rows inserted.

    The parts must not repeat a key (a list is checked by ``load_parallel``; a generator such
    as the demo's promises it). If another writer got rows in first, they go in by value
    with conflicts ignored. Each worker writes a scratch file that is then copied in."""
    table_sql = db.conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'task_executions'"
    ).fetchone()[0]
    created = format_ts(utcnow())
    folder = os.path.dirname(os.path.abspath(db.path))
    prefix = f".{os.path.basename(db.path)}.load-"
    with tempfile.TemporaryDirectory(dir=folder, prefix=prefix) as tmp:
        paths = [os.path.join(tmp, f"part{i}.db") for i in range(1, len(parts))]
        for path in paths:
            _scratch(path, table_sql)
        with _load_transaction(db, paths) as load:
            if not load.empty:  # another writer got in first: insert by value, its rows win
                every = itertools.chain.from_iterable(make() for _, make in parts)
                return _insert_by_value(db.conn, every)
            jobs = [
                _fork(p, make, first, created)
                for p, (first, make) in zip(paths, parts[1:], strict=True)
            ]
            try:
                first, make = parts[0]
                inserted = _write_rows(db.conn, make(), first, created, load.tally)
                # Workers take a little longer (fork, copied pages): index this part's text
                # meanwhile, so the wait does some of the final work.
                db.conn.execute(migrations.FTS_FILL, (0,))
                load.fts_after = first + inserted - 1
                for i, job in enumerate(jobs, 1):
                    error, written = _wait(job)
                    if error is None:
                        # Identical table, no index or trigger on the target: SQLite copies
                        # the stored rows as they are, in id order.
                        db.conn.execute(
                            "INSERT INTO main.task_executions "
                            f"SELECT * FROM part{i}.task_executions"
                        )
                        rollups.merge_from(db.conn, f"part{i}")
                        inserted += written
                    else:  # redo it here: a data problem then raises where it belongs
                        warnings.warn(
                            f"a bulk-load worker failed, so its part is redone here: {error}",
                            RuntimeWarning,
                            stacklevel=4,
                        )
                        inserted += _write_rows(
                            db.conn, job.records(), job.first_id, created, load.tally
                        )
            finally:  # on an error or interrupt, stop the workers still running
                for job in (j for j in jobs if not j.done):
                    with contextlib.suppress(OSError):
                        os.kill(job.pid, signal.SIGKILL)
                        os.waitpid(job.pid, 0)
                        os.close(job.errors)
                        os.close(job.count_fd)
    return inserted


def load_into_empty(
    db: Handle, records: Iterable[TaskExecution], workers: int | None = None
) -> BulkResult:
    """Load ``records`` into the store's empty table, in parallel when that pays and is safe.

    Only a list (any ``Sequence``) is split across processes; a stream is loaded here.
    """
    if not isinstance(records, Sequence):
        return load_direct(db, records)
    if workers is None:
        workers = default_workers() if len(records) >= PARALLEL_MIN else 1
    elif not forkable():
        workers = 1
    if min(workers, MAX_WORKERS) > 1 and len(records) > 1:
        return load_parallel(db, records, min(workers, MAX_WORKERS))
    return load_direct(db, records)
