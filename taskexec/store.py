"""The only module that opens SQLite: pragmas, migrations, idempotent appends, reads.

Writers use WAL with ``synchronous=NORMAL`` and explicit ``BEGIN IMMEDIATE`` transactions, so a
killed process leaves only whole transactions; a busy timeout plus a retry policy means several
processes can write one file without the caller ever seeing "database is locked".
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential_jitter,
)

from . import migrations
from .errors import DatabaseError, InvalidRecord
from .model import FAILURE_STATUSES, STATUSES, TaskExecution, format_ts, utcnow
from .scrub import scrub_text, scrub_value
from .stackhash import stack_hash_from_text

COLUMNS = (
    "span_id",
    "trace_id",
    "parent_span_id",
    "attempt",
    "retry_of",
    "idempotency_key",
    "task_id",
    "task_slug",
    "status",
    "error_type",
    "error_message",
    "stack_trace",
    "stack_hash",
    "scheduled_at",
    "started_at",
    "ended_at",
    "duration_ms",
    "memories_retrieved",
    "retrieval_sources",
    "files_written",
    "parents",
    "causes",
    "provenance",
    "host",
    "pid",
    "content",
    "attributes",
    "created_at",
)
JSON_COLUMNS = ("retrieval_sources", "files_written", "parents", "causes", "attributes")
_INSERT = (
    f"INSERT INTO task_executions ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in COLUMNS)}) ON CONFLICT DO NOTHING"
)
_ERROR_ROWS = (
    "SELECT stack_hash, started_at, span_id, error_type, error_message "
    "FROM task_executions WHERE id > ? AND stack_hash IS NOT NULL"
)
MAX_LIMIT = 10_000
AppendOutcome = Literal["inserted", "duplicate"]
T = TypeVar("T")


@dataclass(frozen=True)
class BulkResult:
    """What a bulk append did: rows written and records that were already there."""

    inserted: int = 0
    duplicates: int = 0

    def __add__(self, other: BulkResult) -> BulkResult:
        return BulkResult(self.inserted + other.inserted, self.duplicates + other.duplicates)


@dataclass(frozen=True)
class PruneResult:
    """What retention removed and how much space it gave back."""

    rows_deleted: int
    traces_deleted: int
    bytes_before: int
    bytes_after: int


def _is_busy(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc)
    )


def _retry(fn: Callable[..., T], *args: Any) -> T:
    """Call fn; past SQLite's busy timeout, retry "database is locked" with jittered backoff.

    The first try is a plain call so the uncontended path costs nothing extra.
    """
    try:
        return fn(*args)
    except sqlite3.OperationalError as exc:
        if not _is_busy(exc):
            raise
    retrying = Retrying(
        retry=retry_if_exception(_is_busy),
        wait=wait_exponential_jitter(initial=0.01, max=1.0),
        stop=stop_after_delay(60),
        reraise=True,
    )
    return retrying(fn, *args)


def _json_encoder() -> Callable[[Any], str]:
    """Compact JSON text of a list or dict; the C encoder called directly when there is one
    (the ``json.dumps`` wrapper costs more than encoding the small values records hold)."""
    encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return encoder.encode
    try:
        # No circular-reference markers: records are checked to be JSON at construction, and a
        # shared markers dict would not be safe across recording threads.
        one_shot = make(
            None,
            encoder.default,
            json.encoder.encode_basestring,
            None,
            ":",
            ",",
            False,
            False,
            True,
        )
        if "".join(one_shot({"a": [1.5, None]}, 0)) != '{"a":[1.5,null]}':
            return encoder.encode
    except TypeError:  # another Python's signature
        return encoder.encode
    return lambda value: "".join(one_shot(value, 0))


_ENCODE = _json_encoder()


def _dump(value: Any) -> str | None:
    if not value:
        return None
    return _ENCODE(value if not isinstance(value, tuple) else list(value))


def _ts(value: datetime) -> str:
    """format_ts for a record's already-validated aware datetimes (the bulk path's hot spot)."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(timespec="microseconds")[:26] + "Z"


def record_row(record: TaskExecution, created_at: str) -> tuple[Any, ...]:
    """Scrub, hash and flatten a record into the INSERT's parameter tuple (pure)."""
    message = scrub_text(record.error_message)
    stack = scrub_text(record.stack_trace)
    stack_hash = record.stack_hash
    if stack_hash is None and (record.error_type or stack):
        stack_hash = stack_hash_from_text(record.error_type, stack, message)
    scheduled, ended, attributes = record.scheduled_at, record.ended_at, record.attributes
    return (
        record.span_id,
        record.trace_id,
        record.parent_span_id,
        record.attempt,
        record.retry_of,
        record.idempotency_key,
        record.task_id,
        record.task_slug,
        record.status,
        record.error_type,
        message,
        stack,
        stack_hash,
        _ts(scheduled) if scheduled else None,
        _ts(record.started_at),
        _ts(ended) if ended else None,
        record.duration_ms,
        record.memories_retrieved,
        _dump(scrub_value(record.retrieval_sources)) if record.retrieval_sources else None,
        _dump(scrub_value(record.files_written)) if record.files_written else None,
        _dump(scrub_value(record.parents)) if record.parents else None,
        _dump(scrub_value(record.causes)) if record.causes else None,
        record.provenance,
        scrub_text(record.host),
        record.pid,
        scrub_text(record.content),
        _dump(scrub_value(attributes)) if attributes else None,
        created_at,
    )


def decode_row(row: sqlite3.Row) -> dict[str, Any]:
    """A result row as a dict with the JSON columns decoded (empty lists, not NULL)."""
    out = dict(row)
    for name in JSON_COLUMNS:
        if name in out:
            raw = out[name]
            out[name] = json.loads(raw) if raw else ({} if name == "attributes" else [])
    return out


def _connect(path: str, readonly: bool) -> sqlite3.Connection:
    if readonly:
        uri = Path(path).resolve().as_uri() + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    else:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


class Store:
    """A taskexec database. ``Store(path)`` creates and migrates; ``Store.open_readonly`` reads."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        readonly: bool = False,
        create: bool = True,
        background_checkpoint: bool = False,
    ) -> None:
        self.path = os.fspath(path)
        self.readonly = readonly
        self._lock = threading.RLock()
        exists = os.path.exists(self.path)
        if not exists and (readonly or not create):
            raise DatabaseError(
                f"no database at {self.path}; create one with `taskexec init {self.path}` "
                f"or `taskexec demo {self.path}`"
            )
        try:
            self.conn = _connect(self.path, readonly)
            if readonly:
                self._check_schema()
            else:
                self._setup_writer(background_checkpoint)
        except sqlite3.DatabaseError as exc:
            raise DatabaseError(f"{self.path} is not a usable SQLite database: {exc}") from None
        self._checkpointer: _Checkpointer | None = None
        if background_checkpoint and not readonly:
            self._checkpointer = _Checkpointer(self.path)
            self._checkpointer.start()

    @classmethod
    def open_readonly(cls, path: str | os.PathLike[str]) -> Store:
        """Open an existing taskexec database for reading only; no query can write."""
        return cls(path, readonly=True)

    def _setup_writer(self, background_checkpoint: bool) -> None:
        conn = self.conn
        if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "wal":
            raise DatabaseError(f"{self.path}: could not switch to WAL mode")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA journal_size_limit = 67108864")
        # With a background checkpointer, no commit on the task's path pays for a checkpoint.
        conn.execute(f"PRAGMA wal_autocheckpoint = {0 if background_checkpoint else 1000}")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and migrations.MIGRATIONS_TABLE not in tables:
            raise DatabaseError(
                f"{self.path} is an SQLite database but not a taskexec one "
                f"(it has tables {', '.join(sorted(tables)[:5])}); use a new file"
            )
        _retry(migrations.migrate, conn)
        self._check_schema()

    def _check_schema(self) -> None:
        try:
            done = migrations.applied(self.conn)
        except sqlite3.DatabaseError as exc:
            raise DatabaseError(f"{self.path} is not a usable SQLite database: {exc}") from None
        if not done:
            raise DatabaseError(
                f"{self.path} is not a taskexec database (no {migrations.MIGRATIONS_TABLE} table);"
                f" create one with `taskexec init`"
            )
        unknown = done - migrations.known_names()
        if unknown:
            raise DatabaseError(
                f"{self.path} was written by a newer taskexec (migrations {sorted(unknown)}); "
                "upgrade taskexec"
            )

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the checkpointer, let SQLite refresh its statistics, close the connection."""
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        if not self.readonly:
            try:
                self.conn.execute("PRAGMA optimize")
                self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error:
                pass
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taken with BEGIN IMMEDIATE; rolled back on any exception."""
        if self.readonly:
            raise DatabaseError(f"{self.path} is open read-only")
        with self._lock:
            _retry(self.conn.execute, "BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            else:
                _retry(self.conn.execute, "COMMIT")

    # -- writes ------------------------------------------------------------------------------

    def append(self, record: TaskExecution) -> AppendOutcome:
        """Insert one record; an existing idempotency key (or span id) is a reported no-op."""
        row = record_row(record, format_ts(utcnow()))
        with self.transaction() as conn:
            if conn.execute(_INSERT, row).rowcount == 0:
                return "duplicate"
            if row[12] is not None:  # stack_hash, started_at, span_id, error_type, error_message
                _touch_groups(conn, [(row[12], row[14], row[0], row[9], row[10])])
        return "inserted"

    def start(self, record: TaskExecution) -> AppendOutcome:
        """Write a ``running`` row when an attempt begins, so a crash leaves evidence."""
        if record.status != "running":
            raise InvalidRecord("status", "start() takes a record with status 'running'")
        return self.append(record)

    def finish(
        self,
        span_id: str,
        *,
        status: str,
        ended_at: datetime,
        duration_ms: float,
        error_type: str | None = None,
        error_message: str | None = None,
        stack_trace: str | None = None,
        stack_hash: str | None = None,
        memories_retrieved: int | None = None,
        retrieval_sources: Sequence[str] = (),
        files_written: Sequence[str] = (),
        attributes: dict[str, Any] | None = None,
        content: str | None = None,
    ) -> bool:
        """Close a running (or swept) attempt with its outcome. False if the span is unknown."""
        if status not in STATUSES or status == "running":
            raise InvalidRecord("status", f"cannot finish with status {status!r}")
        message, stack = scrub_text(error_message), scrub_text(stack_trace)
        if stack_hash is None and (error_type or stack):
            stack_hash = stack_hash_from_text(error_type, stack, message)
        sets = {
            "status": status,
            "ended_at": format_ts(ended_at, "ended_at"),
            "duration_ms": duration_ms,
        }
        optional = {
            "error_type": error_type,
            "error_message": message,
            "stack_trace": stack,
            "stack_hash": stack_hash,
            "memories_retrieved": memories_retrieved,
            "retrieval_sources": _dump(scrub_value(tuple(retrieval_sources))),
            "files_written": _dump(scrub_value(tuple(files_written))),
            "attributes": _dump(scrub_value(attributes)) if attributes else None,
            "content": scrub_text(content),
        }
        sets.update({k: v for k, v in optional.items() if v is not None})
        sql = (
            f"UPDATE task_executions SET {', '.join(f'{k} = ?' for k in sets)} "
            "WHERE span_id = ? AND status IN ('running', 'abandoned')"
        )
        with self.transaction() as conn:
            if conn.execute(sql, (*sets.values(), span_id)).rowcount == 0:
                return False
            if stack_hash is not None:
                row = conn.execute(
                    "SELECT stack_hash, started_at, span_id, error_type, error_message "
                    "FROM task_executions WHERE span_id = ?",
                    (span_id,),
                ).fetchone()
                _touch_groups(conn, [row])
        return True

    def append_many(
        self,
        records: Iterable[TaskExecution],
        *,
        batch_size: int = 10_000,
        workers: int | None = None,
    ) -> BulkResult:
        """Bulk-insert records idempotently; returns the counts of inserted and duplicate rows.

        Into an empty table the indexes and full-text triggers are dropped for the load and
        rebuilt once at the end, all in one transaction, and rows are prepared by up to
        ``workers`` processes (default: the CPUs, when forking is safe; see ``bulkload``).
        Otherwise records go in batched transactions of ``batch_size``.
        """
        if self.conn.execute("SELECT 1 FROM task_executions LIMIT 1").fetchone() is None:
            from .bulkload import load_into_empty

            result = load_into_empty(self, records, workers)
            _analyze(self.conn)
            return result
        total = BulkResult()
        for batch in _batches(records, batch_size):
            total += self._append_batch(batch)
        if total.inserted:
            self.conn.execute("PRAGMA optimize")
        return total

    def _append_batch(self, records: list[TaskExecution]) -> BulkResult:
        created = format_ts(utcnow())
        rows = [record_row(r, created) for r in records]
        rows.sort(key=lambda r: r[5])  # by key: index inserts land in order
        bulk_fts = len(rows) >= 200
        with self.transaction() as conn:
            before = _max_id(conn)
            if bulk_fts:  # one INSERT ... SELECT into FTS beats a trigger per row (about 2x)
                conn.execute("DROP TRIGGER te_fts_ai")
            conn.executemany(_INSERT, rows)
            if bulk_fts:
                conn.execute(migrations.FTS_FILL, (before,))
                conn.execute(migrations.FTS_TRIGGERS["te_fts_ai"])
            inserted = conn.execute(
                "SELECT count(*) FROM task_executions WHERE id > ?", (before,)
            ).fetchone()[0]
            _touch_groups(conn, conn.execute(_ERROR_ROWS, (before,)).fetchall())
        return BulkResult(inserted, len(rows) - inserted)

    def _try_journal_mode(self, mode: str) -> bool:
        try:
            return bool(
                self.conn.execute(f"PRAGMA main.journal_mode = {mode}").fetchone()[0] == mode
            )
        except sqlite3.OperationalError:
            return False

    def sweep(self, older_than: float = 3600.0) -> int:
        """Mark ``running`` rows that started more than ``older_than`` seconds ago as abandoned."""
        cutoff = format_ts(utcnow() - timedelta(seconds=older_than))
        with self.transaction() as conn:
            return conn.execute(
                "UPDATE task_executions SET status = 'abandoned', error_message = ? "
                "WHERE status = 'running' AND started_at < ?",
                ("no end was recorded: the worker probably died (marked by sweep)", cutoff),
            ).rowcount

    def prune(self, cutoff: datetime) -> PruneResult:
        """Delete whole traces whose newest attempt started before ``cutoff``; reclaim space."""
        stamp = format_ts(cutoff, "cutoff")
        before = _file_size(self.path)
        with self.transaction() as conn:
            traces = conn.execute(
                "SELECT count(DISTINCT trace_id) FROM task_executions WHERE started_at < :c "
                "AND trace_id NOT IN (SELECT trace_id FROM task_executions WHERE started_at >= :c)",
                {"c": stamp},
            ).fetchone()[0]
            deleted = conn.execute(
                "DELETE FROM task_executions WHERE started_at < :c "
                "AND trace_id NOT IN (SELECT trace_id FROM task_executions WHERE started_at >= :c)",
                {"c": stamp},
            ).rowcount
            if deleted:
                rebuild_error_groups(conn)
        if deleted:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.conn.execute("VACUUM")
            _analyze(self.conn)
        return PruneResult(deleted, traces, before, _file_size(self.path))

    def set_meta(self, key: str, value: str) -> None:
        """Store a small setting in ``taskexec_meta`` (e.g. the demo's time anchor)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO taskexec_meta (key, value) VALUES (?, ?)", (key, value)
            )

    def get_meta(self, key: str) -> str | None:
        """Read a value written by set_meta."""
        row = self.conn.execute("SELECT value FROM taskexec_meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    # -- reads -------------------------------------------------------------------------------

    def query(self, sql: str, params: dict[str, Any] | Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Run one read statement (a probe) and return its rows."""
        with self._lock:
            return self.conn.execute(sql, params).fetchall()

    def list_executions(
        self,
        *,
        task_id: str | None = None,
        task_slug: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Executions matching every given filter, newest first."""
        where, params = _filters(task_id, task_slug, status, since, until)
        params.update(limit=_check_limit(limit), offset=max(0, int(offset)))
        sql = (
            f"SELECT * FROM task_executions {where} "
            "ORDER BY started_at DESC, id DESC LIMIT :limit OFFSET :offset"
        )
        return [decode_row(r) for r in self.query(sql, params)]

    def count_executions(
        self,
        *,
        task_id: str | None = None,
        task_slug: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        """How many executions match the filters (for "showing N of M")."""
        where, params = _filters(task_id, task_slug, status, since, until)
        return int(self.query(f"SELECT count(*) FROM task_executions {where}", params)[0][0])

    def trace(self, trace_id: str) -> list[dict[str, Any]]:
        """Every attempt of one logical run, in attempt order."""
        rows = self.query(
            "SELECT * FROM task_executions WHERE trace_id = ? ORDER BY attempt, started_at, id",
            (trace_id,),
        )
        return [decode_row(r) for r in rows]

    def last_failed(
        self, *, limit: int = 10, task_slug: str | None = None, since: datetime | None = None
    ) -> list[dict[str, Any]]:
        """The most recent failed/timed-out/abandoned attempts with their error group's numbers."""
        statuses = ", ".join(f"'{s}'" for s in FAILURE_STATUSES)
        clauses = [f"t.status IN ({statuses})"]
        params: dict[str, Any] = {"limit": _check_limit(limit)}
        if task_slug is not None:
            clauses.append("t.task_slug = :task_slug")
            params["task_slug"] = task_slug
        if since is not None:
            clauses.append("t.started_at >= :since")
            params["since"] = format_ts(since, "since")
        sql = (
            "SELECT t.*, g.occurrences AS group_occurrences, g.first_seen AS group_first_seen, "
            "g.last_seen AS group_last_seen FROM task_executions t "
            "LEFT JOIN error_groups g ON g.stack_hash = t.stack_hash "
            f"WHERE {' AND '.join(clauses)} ORDER BY t.started_at DESC, t.id DESC LIMIT :limit"
        )
        return [decode_row(r) for r in self.query(sql, params)]

    def error_groups(
        self, *, limit: int = 50, since: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Error groups, most recently seen first (optionally only those seen since a time)."""
        params: dict[str, Any] = {"limit": _check_limit(limit)}
        where = ""
        if since is not None:
            where = "WHERE last_seen >= :since"
            params["since"] = format_ts(since, "since")
        sql = f"SELECT * FROM error_groups {where} ORDER BY last_seen DESC LIMIT :limit"
        return [dict(r) for r in self.query(sql, params)]

    def error_group(self, stack_hash: str) -> dict[str, Any] | None:
        """One error group by its stack hash."""
        rows = self.query("SELECT * FROM error_groups WHERE stack_hash = ?", (stack_hash,))
        return dict(rows[0]) if rows else None


class _Checkpointer(threading.Thread):
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
        self._stop_event.set()
        self.join(timeout=5)


def _batches(records: Iterable[TaskExecution], size: int) -> Iterator[list[TaskExecution]]:
    batch: list[TaskExecution] = []
    for record in records:
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _analyze(conn: sqlite3.Connection) -> None:
    """Refresh planner statistics over every row. A sampled ANALYZE (analysis_limit) saves two
    seconds at 1M rows but misjudged the status index and made "recent failures" 80x slower."""
    conn.execute("ANALYZE")


def _max_id(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(max(id), 0) FROM task_executions").fetchone()[0])


def _file_size(path: str) -> int:
    return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))


def _check_limit(limit: int) -> int:
    if type(limit) is not int or not 1 <= limit <= MAX_LIMIT:
        raise InvalidRecord("limit", f"must be an integer from 1 to {MAX_LIMIT}, got {limit!r}")
    return limit


def _filters(
    task_id: str | None,
    task_slug: str | None,
    status: str | None,
    since: datetime | None,
    until: datetime | None,
) -> tuple[str, dict[str, Any]]:
    clauses, params = [], {}
    if task_id is not None:
        clauses.append("task_id = :task_id")
        params["task_id"] = task_id
    if task_slug is not None:
        clauses.append("task_slug = :task_slug")
        params["task_slug"] = task_slug
    if status is not None:
        if status not in STATUSES:
            raise InvalidRecord("status", f"must be one of {', '.join(STATUSES)}; got {status!r}")
        clauses.append("status = :status")
        params["status"] = status
    if since is not None:
        clauses.append("started_at >= :since")
        params["since"] = format_ts(since, "since")
    if until is not None:
        clauses.append("started_at < :until")
        params["until"] = format_ts(until, "until")
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def _touch_groups(conn: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> None:
    """Fold newly written error rows into error_groups and keep first_seen_error exact."""
    agg: dict[str, list[Any]] = {}
    for stack_hash, started, span, etype, message in rows:
        group = agg.get(stack_hash)
        if group is None:
            agg[stack_hash] = [1, started, span, started, span, etype, message]
            continue
        group[0] += 1
        if started < group[1]:
            group[1], group[2] = started, span
        if started >= group[3]:
            group[3], group[4], group[5], group[6] = started, span, etype, message
    for stack_hash, (n, first, first_span, last, last_span, etype, message) in agg.items():
        current = conn.execute(
            "SELECT first_seen, first_span_id, last_seen FROM error_groups WHERE stack_hash = ?",
            (stack_hash,),
        ).fetchone()
        if current is None:
            conn.execute(
                "INSERT INTO error_groups (stack_hash, error_type, sample_message, sample_span_id,"
                " first_span_id, first_seen, last_seen, occurrences) VALUES (?,?,?,?,?,?,?,?)",
                (stack_hash, etype, message, last_span, first_span, first, last, n),
            )
            conn.execute(
                "UPDATE task_executions SET first_seen_error = 1 WHERE span_id = ?", (first_span,)
            )
            continue
        old_first, old_first_span, old_last = current
        conn.execute(
            "UPDATE error_groups SET occurrences = occurrences + ? WHERE stack_hash = ?",
            (n, stack_hash),
        )
        if last >= old_last:
            conn.execute(
                "UPDATE error_groups SET last_seen = ?, sample_span_id = ?, error_type = ?, "
                "sample_message = ? WHERE stack_hash = ?",
                (last, last_span, etype, message, stack_hash),
            )
        if first < old_first:
            conn.execute(
                "UPDATE error_groups SET first_seen = ?, first_span_id = ? WHERE stack_hash = ?",
                (first, first_span, stack_hash),
            )
            conn.execute(
                "UPDATE task_executions SET first_seen_error = (span_id = ?) "
                "WHERE span_id IN (?, ?)",
                (first_span, first_span, old_first_span),
            )


def rebuild_error_groups(conn: sqlite3.Connection, *, fresh: bool = False) -> None:
    """Recompute error_groups and first_seen_error from the execution rows (after bulk work).

    ``fresh``: every row was just loaded with first_seen_error 0, so skip clearing the flags
    (a scan of the whole table)."""
    conn.execute("DELETE FROM error_groups")
    conn.execute(
        # Counts and bounds per hash in one pass over the stack_hash index, then the first and
        # last row of each group looked up (ties go to the lower id first, the higher id last).
        # Three times faster than numbering every failure with window functions.
        """INSERT INTO error_groups (stack_hash, error_type, sample_message, sample_span_id,
               first_span_id, first_seen, last_seen, occurrences)
           WITH g AS (
               SELECT stack_hash, min(started_at) AS first_seen, max(started_at) AS last_seen,
                   count(*) AS n
               FROM task_executions WHERE stack_hash IS NOT NULL GROUP BY stack_hash
           )
           SELECT g.stack_hash, last.error_type, last.error_message, last.span_id,
               first.span_id, g.first_seen, g.last_seen, g.n
           FROM g
           JOIN task_executions AS last ON last.id = (
               SELECT id FROM task_executions
               WHERE stack_hash = g.stack_hash AND started_at = g.last_seen
               ORDER BY id DESC LIMIT 1)
           JOIN task_executions AS first ON first.id = (
               SELECT id FROM task_executions
               WHERE stack_hash = g.stack_hash AND started_at = g.first_seen
               ORDER BY id LIMIT 1)"""
    )
    if not fresh:
        conn.execute("UPDATE task_executions SET first_seen_error = 0 WHERE first_seen_error = 1")
    conn.execute(
        "UPDATE task_executions SET first_seen_error = 1 "
        "WHERE span_id IN (SELECT first_span_id FROM error_groups)"
    )
