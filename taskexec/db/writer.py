"""The background writer: records reach SQLite off the task's thread, in group commits, and
whatever cannot be written goes to the durable spool and is replayed later.

One writer per database per process. A task's thread hands it operations with one
``deque.append`` (atomic: no lock) and wakes the writer thread when a group begins. An
operation is either already encoded (``rows.py``: scrub, stack hash, timestamps; the
recorder's general path, durable mode, ``finish_span``) or *deferred*: an attempt of the
recorder's quick path (``recorder.Run``), which the writer thread encodes when it takes the
group, after the attempt had its chance to end, so an attempt shorter than the flush interval
is encoded once, as its finished row. Nothing unencoded leaves this module: the spool and the
database only ever see scrubbed rows. A finish whose running row is in the same group folds
into it (one insert instead of an insert and an update). The thread waits ``interval`` seconds
for more, turns the group into JSON text in one call of the C encoder and commits it with as
few statements as it can: new rows without errors are one ``INSERT ... FROM json_each`` (its
own transaction); finishes of earlier rows add one ``UPDATE ... FROM json_each``; rows with
errors also fold into ``error_groups``, all in one transaction. Each statement runs in C with
Python's GIL released. A task thread that never waits (a tight loop) keeps the GIL for 5 ms each
time the writer asks for it (Python's switch interval), so the writer asks rarely, and encodes
and writes a backlog ``GROUP_LIMIT`` operations at a time, letting the task run while SQLite
works. A loop that records faster than SQLite can write (near-empty tasks) would queue without
bound: past ``BACKLOG`` queued operations a new quick attempt waits for the writer to take its
next group (``make_room``: ``ROOM_WAIT`` at most, never on a writer stuck on the file).

When the database cannot be opened or written (a missing or read-only folder, a full disk, a
corrupt or foreign file, a lock held for longer than ``busy_timeout_ms``), the group goes to the
spool (``spool.py``) with one warning per kind of problem. The thread keeps retrying with
backoff (tenacity's jittered exponential wait); once the database works, the spool is replayed
first, so operations stay in order.

After ``os.fork`` the child starts with an empty queue and its own thread and connection; the
parent's queue is the parent's to write. ``close()`` and interpreter exit flush what is queued
(so do multiprocessing's and billiard's exit hooks in their forked children). ``kill -9`` loses
at most what was queued since the last flush: ``interval`` plus one commit.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import errno
import os
import sqlite3
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import DatabaseError
from ..model import utcnow
from . import spool
from .rows import COL as _COL
from .rows import COLUMNS, FINISH_COLUMNS, Row, dump
from .store import Store

if TYPE_CHECKING:
    import logging


def _log() -> logging.Logger:
    """The ``taskexec`` logger (logging is imported the first time there is something to say:
    a command that records one attempt starts faster)."""
    import logging

    return logging.getLogger("taskexec")


#: Seconds the writer gathers a group before committing it (the kill -9 loss bound).
DEFAULT_INTERVAL = 0.02
#: Operations written per transaction at most (a backlog is written in several).
GROUP_LIMIT = 1000
#: Operations queued past which a new attempt of the recorder's quick path waits for the writer
#: to take its next group (``Writer.make_room``): a loop of near-empty tasks records faster
#: than SQLite writes, and must not run ahead of it without bound.
BACKLOG = 2 * GROUP_LIMIT
#: Seconds ``make_room`` waits at most (and not again until the writer has taken a group).
ROOM_WAIT = 0.1
#: Operations kept in memory when neither the database nor the spool can take them.
MEMORY_LIMIT = 1_000_000
_MAX_IDLE = 1.0  # the thread looks at its queue at least this often
_SPAN = _COL["span_id"]
#: Kinds of queued operation: a running row, a finished row, a finish of an earlier row.
INSERT, DONE, FINISH = "i", "r", "f"
#: Deferred kinds (never written or spooled as such): an attempt started, an attempt ended,
#: encoded by the writer thread into one of the kinds above (see ``Deferred``).
LATER_START, LATER_END = "s", "e"

#: One queued operation: [kind, span id, the encoded row (a list) or the finish's values (a
#: dict) or a ``Deferred``, has an error]. The writer turns a whole group into JSON text with
#: one call.
Op = list[Any]


class Deferred(Protocol):
    """An attempt queued unencoded (``recorder.Run`` on the quick path). The writer thread calls
    these when it takes the operation; they never raise (a record that cannot be encoded is
    recorded as well as it can be) and return scrubbed values only."""

    def _start_op(self) -> Op:
        """The attempt's row: ``[INSERT, span, row, error]``, or ``[DONE, ...]`` when it has
        ended meanwhile (its finish is then already in that row)."""
        ...

    def _end_op(self) -> Op | None:
        """``[FINISH, span, values, error]``, or None when ``_start_op`` wrote the end."""
        ...


@dataclass
class WriterStats:
    """Counts since the writer started: what reached the file, went to the spool, came back."""

    submitted: int = 0
    written: int = 0
    spooled: int = 0
    replayed: int = 0
    rejected: int = 0
    lost: int = 0
    problems: dict[str, str] = field(default_factory=dict)


def classify(exc: BaseException) -> str:
    """A short name for why a write failed: one warning is logged per name."""
    text = str(exc).lower()
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return "locked"
    if "readonly" in text or "read-only" in text or getattr(exc, "errno", None) == errno.EROFS:
        return "read-only"
    if "disk is full" in text or "database or disk is full" in text:
        return "disk-full"
    if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return "disk-full"
    if "not a database" in text or "malformed" in text or "not a taskexec" in text:
        return "corrupt"
    if "unable to open" in text or isinstance(exc, FileNotFoundError):
        return "cannot-open"
    if "newer taskexec" in text:
        return "newer-schema"
    return "error"


_HINTS = {
    "locked": "another process holds the write lock",
    "read-only": "the file or its folder is read-only",
    "disk-full": "the disk is full",
    "corrupt": "the file is not a usable taskexec database",
    "cannot-open": "the file or its folder cannot be opened (missing?)",
    "newer-schema": "the file was written by a newer taskexec",
}


class Writer:
    """The per-process background writer of one database (see the module docstring)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        interval: float = DEFAULT_INTERVAL,
        heartbeat: float | None = None,
        busy_timeout_ms: int = 10_000,
        strict: bool = False,
        on_written: Callable[[Store, list[Op]], None] | None = None,
        open_wait: float = 0.1,
    ) -> None:
        self.path = os.fspath(path)
        self.interval = float(interval)
        self.heartbeat = heartbeat
        self.busy_timeout_ms = busy_timeout_ms
        self.strict = strict
        self.on_written = on_written
        self.stats = WriterStats()
        self._spool = spool.SpoolWriter(self.path)
        self._reset()
        _WRITERS.add(self)
        # Open the file now, on the writer's thread: opening takes a few dozen SQLite calls,
        # each of which waits for the GIL while a task runs, so it is best done before one.
        # A healthy file opens in about a millisecond; a locked or broken one is not waited on.
        self._opened = threading.Event()
        self._start_thread()
        self._opened.wait(open_wait)

    def _reset(self) -> None:
        """Fresh per-process state (construction, and in a forked child)."""
        # Appended to by task threads, taken from (popleft) by whoever holds _io_lock: both
        # atomic, so no lock on the task's path.
        self._queue: collections.deque[Op] = collections.deque()
        self._wake = threading.Event()
        self._signalled = False
        self._urgent = False  # a flush is waiting: skip the gathering pause
        self._hurry = threading.Event()  # set by flush and close: stop gathering now
        self._start_lock = threading.Lock()
        self._io_lock = threading.RLock()
        self._took = threading.Condition(threading.Lock())  # notified when a group is taken
        self._groups_taken = 0
        self._stuck_at = -1  # groups taken when make_room last waited in vain
        self._idle = threading.Condition(threading.Lock())
        self._generation = 0  # groups handled; flush waits for the one covering its ops
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._store: Store | None = None
        self._held: list[Op] = []  # ops neither the file nor the spool could take (memory)
        self._inflight: dict[str, Any] = {}  # start rows of attempts not finished yet
        self._next_retry = 0.0
        self._next_scan = 0.0  # when to look for spool files left by other processes
        self._failures = 0
        self._warned: set[str] = set()
        self._encode_warned = False
        self._last_heartbeat = time.monotonic()
        self._pid = os.getpid()

    # -- the task's side -------------------------------------------------------------------

    def submit(self, kind: str, span_id: str, payload: Any, error: bool = False) -> None:
        """Queue one encoded operation: never blocks, never raises, never touches the file."""
        self.push(kind, span_id, payload, error, os.getpid())

    def push(self, kind: str, span_id: str, payload: Any, error: bool, pid: int) -> None:
        """Queue one operation (encoded, or ``LATER_START`` / ``LATER_END`` with a
        ``Deferred``), ``pid`` being ``os.getpid()`` (the caller's, which it has anyway): one
        append, and a wake-up when a group begins."""
        if pid != self._pid:  # forked without the at-fork hook (rare): start afresh
            self._after_fork()
        self._queue.append([kind, span_id, payload, error])
        if self._thread is None:
            self._start_thread()
        if not self._signalled:
            self._signalled = True
            self._wake.set()

    def backlog(self) -> int:
        """Operations queued and not yet taken by the writer."""
        return len(self._queue)

    def make_room(self) -> None:
        """Wait for the writer thread to take its next group (``ROOM_WAIT`` seconds at most):
        the quick path calls this when more than ``BACKLOG`` operations are queued, which only
        a loop recording faster than SQLite can write reaches. It bounds the queue, and with it
        what a kill -9 loses, to about ``BACKLOG`` operations. A writer that does not take
        (a database locked by another process, waiting out its busy timeout) is waited for
        once, not again until it has taken a group: the task does not wait on the file."""
        taken = self._groups_taken
        thread = self._thread
        if taken == self._stuck_at or thread is None or thread is threading.current_thread():
            return
        with self._took:
            if not self._took.wait_for(lambda: self._groups_taken != taken, ROOM_WAIT):
                self._stuck_at = taken

    def start(self, row: Row, error: bool = False, now: bool = False) -> None:
        """Queue the running row of an attempt (``now``, durable mode: write it first)."""
        (self.submit_now if now else self.submit)(INSERT, row[_SPAN], list(row), error)

    def finish(
        self, span_id: str, values: dict[str, Any], error: bool = False, now: bool = False
    ) -> None:
        """Queue how an attempt ended. When its running row is still queued, that row becomes
        the finished row (when the writer takes them): one insert instead of an insert and an
        update. ``now`` (durable mode) writes before returning."""
        (self.submit_now if now else self.submit)(FINISH, span_id, values, error)

    def submit_now(self, kind: str, span_id: str, payload: Any, error: bool = False) -> None:
        """Durable mode: queue and write on the calling thread before returning."""
        if os.getpid() != self._pid:
            self._after_fork()
        self._queue.append([kind, span_id, payload, error])
        self.write_pending()

    def _start_thread(self) -> None:
        with self._start_lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="taskexec-writer", daemon=True)
                thread.start()
                self._thread = thread

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Write everything queued so far (to the file, or the spool); True when done in time."""
        thread = self._thread
        if thread is None or not thread.is_alive() or thread is threading.current_thread():
            self.write_pending()
            return not self._queue
        with self._idle:
            target = self._generation + 2  # the group in progress may predate our ops
            deadline = None if timeout is None else time.monotonic() + timeout
            while self._generation < target:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._urgent = self._signalled = True
                self._hurry.set()
                self._wake.set()
                self._idle.wait(0.5 if remaining is None else min(remaining, 0.5))
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Flush, stop the thread and close the connection."""
        self.flush(timeout)
        self._stopping = True
        self._hurry.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        with self._io_lock:
            if self._queue or self._held:
                self._write_queue()
            if self._spool.pending and self._store is not None:
                # One last try, waiting for a lock as long as the caller allows: what this
                # process spooled lands now rather than at the next recorder's start.
                with contextlib.suppress(sqlite3.Error, DatabaseError, OSError):
                    self._store.conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
                    self._replay_backlog(self._store)
            self._spool.close()
            if self._store is not None:
                with contextlib.suppress(Exception):
                    self._store.close()
                self._store = None
        _WRITERS.discard(self)

    def store(self) -> Store:
        """The writer's open database (opened if need be); DatabaseError when it cannot be."""
        with self._io_lock:
            return self._open()

    # -- the writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            with self._io_lock, contextlib.suppress(sqlite3.Error, DatabaseError, OSError):
                self._open()  # a failure here is handled (and warned about) at the first write
        finally:
            self._opened.set()
        while True:
            if not self._queue or self._held or self._spool.pending:
                # Idle (or backing off): sleep until a group begins, then gather it for one
                # interval (a flush cuts that short). Operations that queued up while the last
                # group was being written are written at once instead: the writer is behind.
                self._wake.wait(self._idle_timeout())
                self._wake.clear()
                if self._queue and not self._stopping and not self._urgent:
                    self._hurry.wait(self.interval)
            self._urgent = False
            self._hurry.clear()
            try:
                self.write_pending()
            except Exception:  # noqa: BLE001 - the thread must survive anything
                _log().exception("taskexec: the background writer hit an unexpected error")
            with self._idle:
                self._generation += 1
                self._idle.notify_all()
            if self._stopping and not self._queue:
                return

    def _idle_timeout(self) -> float:
        timeout = _MAX_IDLE
        if self._held or self._spool.pending:
            timeout = max(0.05, min(timeout, self._next_retry - time.monotonic()))
        if self.heartbeat and self._inflight:
            due = self._last_heartbeat + self.heartbeat - time.monotonic()
            timeout = max(0.0, min(timeout, due))
        return timeout

    def write_pending(self) -> None:
        """Write the queue now (on the calling thread), then heartbeats when due."""
        with self._io_lock:
            self._write_queue()
            if self.heartbeat and self._inflight:
                now = time.monotonic()
                if now - self._last_heartbeat >= self.heartbeat:
                    self._last_heartbeat = now
                    self._send_heartbeats()

    def _write_queue(self) -> None:
        """Take what is queued now (not what arrives meanwhile: a flush ends) and write it,
        ``GROUP_LIMIT`` operations at a time: encoding one chunk holds the GIL, writing it
        does not, so a task that never waits runs in between."""
        self._signalled = False
        todo = len(self._queue)
        while True:
            count = min(todo, GROUP_LIMIT)
            todo -= count
            ops = self._take(count)
            if count:
                with self._took:
                    self._groups_taken += 1
                    self._took.notify_all()
            if ops or self._held or (self._spool.pending and time.monotonic() >= self._next_retry):
                self._write_group(ops)
            if todo <= 0:
                return

    def _take(self, count: int) -> list[Op]:
        """The next ``count`` queued operations, encoded: deferred attempts are encoded here,
        and a finish whose running row is among them folds into that row."""
        popleft = self._queue.popleft
        ops: list[Op] = []
        starts: dict[str, int] = {}  # span id -> index in ops of its running row
        for _ in range(count):
            try:
                op = popleft()
            except IndexError:  # pragma: no cover - only the holder of _io_lock takes
                break
            kind = op[0]
            if kind in (LATER_START, LATER_END):
                try:
                    op = op[2]._start_op() if kind == LATER_START else op[2]._end_op()
                except Exception as exc:  # noqa: BLE001 - they do not raise; never lose the thread
                    self._lost_one(exc)
                    continue
                if op is None:  # the end went with the start
                    continue
                kind = op[0]
            if kind == INSERT:
                starts[op[1]] = len(ops)
            elif kind == FINISH:
                index = starts.pop(op[1], None)
                if index is not None:
                    start = ops[index]
                    row = start[2]
                    for name, value in op[2].items():
                        row[_COL[name]] = value
                    start[0], start[3] = DONE, start[3] or op[3]
                    continue
            ops.append(op)
        self.stats.submitted += len(ops)
        return ops

    def _lost_one(self, exc: BaseException) -> None:
        self.stats.lost += 1
        if not self._encode_warned:
            self._encode_warned = True
            _log().warning("taskexec: a record could not be encoded and is lost (%r)", exc)

    def _open(self) -> Store:
        if self._store is None:
            # No long retry on a lock: past the busy timeout the group goes to the spool.
            self._store = Store(
                self.path,
                busy_timeout_ms=self.busy_timeout_ms,
                retry_for=60.0 if self.strict else 0.0,
            )
        return self._store

    def _write_group(self, ops: list[Op]) -> None:
        """Write the backlog (memory, then spool) and then this group, or keep them all."""
        if time.monotonic() < self._next_retry and (self._held or self._spool.pending):
            self._keep(ops)  # still backing off: keep the order, write later
            return
        done = 0
        try:
            store = self._open()
            self._replay_backlog(store)
            # At most GROUP_LIMIT operations per transaction: a writer that fell behind does
            # not hold the write lock (nor the GIL, turning the group into JSON) for long.
            for done in range(0, len(ops), GROUP_LIMIT):
                self._write_chunk(store, ops[done : done + GROUP_LIMIT])
            done = len(ops)
        except (sqlite3.Error, DatabaseError, OSError) as exc:
            self._failed(exc)
            if self.strict:
                raise
            self._keep(ops[done:])
            return
        if self._warned:
            _log().warning(
                "taskexec: %s is usable again; held and spooled records are in", self.path
            )
            self._warned.clear()
            self.stats.problems.clear()
        self._failures = 0
        self._next_retry = 0.0

    def _write_chunk(self, store: Store, ops: list[Op]) -> None:
        rows, finishes, errors = [], [], False
        inflight = self._inflight
        for kind, span_id, payload, error in ops:
            errors = errors or error
            if kind == FINISH:
                finishes.append((span_id, payload))
                inflight.pop(span_id, None)
            else:
                rows.append(payload)
                if kind == INSERT:
                    inflight[span_id] = payload
        result = store.write_batch(rows, finishes, errors=errors)
        if result.missing:
            _log().debug("taskexec: finishes without a row: %s", result.missing[:10])
        self.stats.written += len(ops)
        if self.on_written is not None:
            try:
                self.on_written(store, ops)
            except Exception:  # noqa: BLE001 - a hook must not undo a write
                _log().exception("taskexec: an on-written hook failed")

    def _keep(self, ops: list[Op]) -> None:
        """Hold ops: in the spool when it can take them, else in memory (bounded)."""
        pending = self._held + ops
        self._held = []
        if not pending:
            return
        try:
            self._spool.write([_spool_line(op) for op in pending])
            self.stats.spooled += len(pending)
        except OSError as exc:
            self._warn_once("spool", f"cannot write the spool either ({exc}); holding in memory")
            self._held = pending
            if len(self._held) > MEMORY_LIMIT:
                dropped = len(self._held) - MEMORY_LIMIT
                self._held = self._held[dropped:]
                self.stats.lost += dropped
                self._warn_once("lost", f"over {MEMORY_LIMIT} records held: dropping the oldest")

    def _replay_backlog(self, store: Store) -> None:
        """Held ops, then every spool file (this process's first), before new ops."""
        if self._held:
            held, self._held = self._held, []
            try:
                store.write_batch(
                    [p for k, _, p, _ in held if k != FINISH],
                    [(s, p) for k, s, p, _ in held if k == FINISH],
                )
            except BaseException:
                self._held = held + self._held
                raise
        if self._spool.pending or time.monotonic() >= self._next_scan:
            self._spool.close()  # releases its lock, so the replay can take it
            result = replay(store, self.path)
            self.stats.replayed += result.applied
            self.stats.rejected += result.rejected
            self._spool.pending = 0
            self._next_scan = time.monotonic() + 30.0

    def _failed(self, exc: BaseException) -> None:
        kind = classify(exc)
        self.stats.problems[kind] = str(exc)
        self._failures += 1
        from tenacity import RetryCallState, wait_exponential_jitter  # only once things fail

        backoff = wait_exponential_jitter(initial=0.5, max=30.0, jitter=0.5)
        state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]
        state.attempt_number = self._failures
        self._next_retry = time.monotonic() + backoff(state)
        if kind != "locked" and self._store is not None:
            with contextlib.suppress(Exception):
                self._store.close()
            self._store = None  # reopen next time: the file may have been replaced or fixed
        self._warn_once(
            kind,
            f"cannot write {self.path} ({_HINTS.get(kind, 'see the error')}: {exc}); records "
            "go to the spool and are written when it works again (`taskexec doctor` shows them)",
        )

    def _warn_once(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            _log().warning("taskexec: %s", message)

    def _send_heartbeats(self) -> None:
        try:
            self._open().heartbeat(list(self._inflight), utcnow())
        except (sqlite3.Error, DatabaseError, OSError) as exc:
            _log().debug("taskexec: heartbeat not written: %s", exc)

    # -- fork --------------------------------------------------------------------------------

    def _after_fork(self) -> None:
        if self._store is not None:
            _ORPHANS.append(self._store)  # the parent's connection: never use or close it
        self._spool.forget()
        self._reset()


def _spool_line(op: Op) -> str:
    """One operation as a spool line: ``["i"|"r", row]`` or ``["f", {"span_id": ..., ...}]``."""
    kind, span_id, payload, _ = op
    return dump([kind, {"span_id": span_id, **payload} if kind == FINISH else payload]) or ""


def _decode_line(op: Any) -> tuple[str, Any]:
    """A spooled line back into (kind, row or (span id, values)); ValueError when it can
    never apply."""
    if not (isinstance(op, list) and len(op) == 2 and op[0] in (INSERT, DONE, FINISH)):
        raise ValueError("not a spooled operation")
    kind, value = op
    if kind != FINISH:
        if not isinstance(value, list) or len(value) != len(COLUMNS):
            raise ValueError(f"a row needs {len(COLUMNS)} values")
        return kind, value
    if not isinstance(value, dict) or not isinstance(value.get("span_id"), str):
        raise ValueError("a finish needs a span_id")
    unknown = set(value) - {"span_id", *FINISH_COLUMNS}
    if unknown or value.get("status") in (None, "running"):
        raise ValueError(f"a finish with unknown columns or no final status: {sorted(unknown)}")
    span_id = value.pop("span_id")
    return kind, (span_id, value)


@dataclass
class ReplayResult:
    """What a replay of the spool did."""

    files: int = 0
    rows: int = 0  # attempts' rows offered (a row already there is kept as it is)
    finishes: int = 0  # outcomes offered
    rejected: int = 0

    @property
    def applied(self) -> int:
        """Operations replayed: rows plus outcomes."""
        return self.rows + self.finishes


def replay(store: Store, db_path: str) -> ReplayResult:
    """Apply every spool file of ``db_path`` that no live writer holds to ``store``, oldest
    first, each in one transaction; lines that can never apply are set aside with why."""
    result = ReplayResult()
    for path in spool.pending_files(db_path):
        with spool.taken(path) as mine:
            if not mine:
                continue
            rows: list[Any] = []
            finishes: list[Any] = []
            for number, op, line in spool.read_ops(path):
                try:
                    kind, value = _decode_line(op)
                except (ValueError, TypeError) as exc:
                    spool.reject(path.parent, path.name, number, line, str(exc))
                    result.rejected += 1
                    continue
                (finishes if kind == FINISH else rows).append(value)
            # A finish that finds no running row was applied before (or its start was lost):
            # replaying twice is harmless. A database error leaves the file for next time.
            store.write_batch(rows, finishes)
            with contextlib.suppress(OSError):
                os.remove(path)
        result.files += 1
        result.rows += len(rows)
        result.finishes += len(finishes)
    return result


_WRITERS: weakref.WeakSet[Writer] = weakref.WeakSet()
_ORPHANS: list[Store] = []


class _Sentinel:
    """Something multiprocessing's after-fork registry can hold a weak reference to."""


_SENTINEL = _Sentinel()


_HELD_FOR_FORK: list[Writer] = []


def _before_fork() -> None:
    """Hold every writer's I/O lock across a fork, so no writer thread is inside SQLite when
    the process is copied: a child that inherits one of SQLite's internal mutexes locked by a
    thread that does not exist there would hang at its first open."""
    for writer in list(_WRITERS):
        if writer._pid == os.getpid() and writer._io_lock.acquire(timeout=2.0):
            _HELD_FOR_FORK.append(writer)


def _after_fork_in_parent() -> None:
    while _HELD_FOR_FORK:
        _HELD_FOR_FORK.pop()._io_lock.release()


def _after_fork_in_child() -> None:
    _HELD_FOR_FORK.clear()  # the child gets fresh locks below
    for writer in list(_WRITERS):
        writer._after_fork()
    # multiprocessing (and billiard, Celery's fork of it) end a forked child with os._exit(),
    # which skips atexit. Their exit finalizers still run, but the child clears them right
    # after the fork; so register ours from their own after-fork hook, which runs later.
    for name in ("multiprocessing.util", "billiard.util"):
        util = sys.modules.get(name)
        if util is not None and hasattr(util, "register_after_fork"):
            with contextlib.suppress(Exception):
                util.register_after_fork(_SENTINEL, _finalize_at_exit(util))


def _finalize_at_exit(util: Any) -> Callable[[Any], None]:
    def register(_: Any) -> None:
        util.Finalize(None, _close_all, exitpriority=100)

    return register


def _close_all() -> None:
    for writer in list(_WRITERS):
        with contextlib.suppress(Exception):
            writer.close(timeout=5.0)


os.register_at_fork(
    before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
)
atexit.register(_close_all)

__all__ = ["DEFAULT_INTERVAL", "Deferred", "ReplayResult", "Writer", "WriterStats", "replay"]
