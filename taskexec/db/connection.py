"""Opening SQLite: the connection, its pragmas, the busy retry and the background checkpointer.

Writers use WAL with ``synchronous=NORMAL`` and explicit ``BEGIN IMMEDIATE`` transactions, so a
killed process leaves only whole transactions; a busy timeout plus a retry policy means several
processes can write one file without the caller ever seeing "database is locked".
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from . import functions

T = TypeVar("T")

#: How long one statement waits for another process's lock before SQLite says "busy".
BUSY_TIMEOUT_MS = 10_000


def connect(
    path: str, *, readonly: bool = False, busy_timeout_ms: int = BUSY_TIMEOUT_MS
) -> sqlite3.Connection:
    """An autocommit connection (we BEGIN ourselves) usable from any thread, rows by name."""
    if readonly:
        uri = Path(path).resolve().as_uri() + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    else:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    functions.register(conn)
    return conn


@dataclass
class Handle:
    """One open database: its path, connection and the lock that serialises its users.

    The store and the bulk loader share it, so neither needs the other's private names.
    """

    path: str
    conn: sqlite3.Connection
    readonly: bool = False
    lock: threading.RLock = field(default_factory=threading.RLock)

    def journal_mode(self, mode: str) -> bool:
        """Switch ``main``'s journal mode; False when SQLite refuses (another connection)."""
        try:
            row = self.conn.execute(f"PRAGMA main.journal_mode = {mode}").fetchone()
        except sqlite3.OperationalError:
            return False
        return bool(row[0] == mode)


def is_busy(exc: BaseException) -> bool:
    """Whether an error is SQLite's "database is locked/busy" (worth retrying)."""
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc)
    )


def retry(fn: Callable[..., T], *args: Any, retry_for: float = 60.0) -> T:
    """Call fn; past SQLite's busy timeout, retry "database is locked" with jittered backoff
    for up to ``retry_for`` seconds (0: no retry, the busy timeout is all the wait).

    The first try is a plain call so the uncontended path costs nothing extra.
    """
    try:
        return fn(*args)
    except sqlite3.OperationalError as exc:
        if not is_busy(exc) or retry_for <= 0:
            raise
    # tenacity only on this (rare) path: importing it costs a short-lived process ~50 ms.
    from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential_jitter

    retrying = Retrying(
        retry=retry_if_exception(is_busy),
        wait=wait_exponential_jitter(initial=0.01, max=1.0),
        stop=stop_after_delay(retry_for),
        reraise=True,
    )
    return retrying(fn, *args)


def analyze(conn: sqlite3.Connection, full: tuple[str, ...] | None = None) -> None:
    """Refresh planner statistics. With ``full=None``, over every row of every index.

    Otherwise sampled (``analysis_limit``: the first entries of each index, a second at 1M
    rows instead of ~5), then complete for the indexes named in ``full``: sampling reads only
    the first values of an index, so one whose leading column has few values (status, task)
    looks near-unique, and the planner then picks it wrongly ("recent failures" ran 80x
    slower). Unique and time-ordered indexes sample well."""
    if full is None:
        conn.execute("ANALYZE")
        return
    conn.execute("PRAGMA analysis_limit = 1000")
    try:
        conn.execute("ANALYZE")
    finally:
        conn.execute("PRAGMA analysis_limit = 0")
    for name in full:
        conn.execute(f"ANALYZE {name}")


def file_size(path: str) -> int:
    """Bytes of the database plus its WAL."""
    return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))


class Checkpointer(threading.Thread):
    """Runs PASSIVE WAL checkpoints on its own connection, off the recording path."""

    def __init__(self, path: str, interval: float = 0.02) -> None:
        super().__init__(name="taskexec-checkpoint", daemon=True)
        self._path, self._interval = path, interval
        self._stop_event = threading.Event()

    def run(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 100")
        try:
            while not self._stop_event.wait(self._interval):
                with contextlib.suppress(sqlite3.Error):  # busy now: the next tick will do
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()

    def stop(self) -> None:
        """Ask the thread to finish and wait for it (briefly)."""
        self._stop_event.set()
        self.join(timeout=5)
