"""The public ``Store``: one taskexec database, its writes (idempotent appends, start/finish,
sweep, prune) and the reads every face and importer uses. Connections come from
``connection``, row encoding from ``rows``, error groups from ``groups``, loads into an empty
table from ``bulkload``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from ..errors import DatabaseError, InvalidRecord
from ..model import (
    FAILURE_STATUSES,
    STATUSES,
    Outcome,
    TaskExecution,
    format_ts,
    utcnow,
    window_start,
)
from . import groups, rollups
from . import schema as migrations
from .connection import (
    BUSY_TIMEOUT_MS,
    Checkpointer,
    Handle,
    analyze,
    connect,
    file_size,
    retry,
)
from .rows import (
    COL,
    FINISH_ERRORS,
    FINISH_JSON,
    FINISH_MISSING,
    INSERT,
    INSERT_JSON,
    decode_row,
    dump,
    encode_outcome,
    encode_record,
)

if TYPE_CHECKING:
    from . import bulkload
    from .bulkload import BulkResult

MAX_LIMIT = 10_000
#: Columns ``distinct_values`` may list (each has an index to skip-scan).
DISTINCT_COLUMNS = ("task_slug", "task_id", "status", "error_type", "provenance")
_CHUNK = 400  # ids per IN (...) list: well under SQLite's variable limit
AppendOutcome = Literal["inserted", "duplicate"]

__all__ = [
    "BatchResult",
    "DataRange",
    "ExecutionCounts",
    "ProbeResult",
    "PruneResult",
    "Store",
    "execution_counts",
    "search_count",
]


@dataclass(frozen=True)
class DataRange:
    """Where the data is: first and last start time (ISO text, None when empty) and the count."""

    first_started_at: str | None
    last_started_at: str | None
    attempts: int


@dataclass(frozen=True)
class ExecutionCounts:
    """Executions matching a status and task filter: in all, by status and by task (each
    largest first, then by name; only values with a count)."""

    total: int
    by_status: dict[str, int]
    by_task: dict[str, int]


@dataclass(frozen=True)
class ProbeResult:
    """A probe's answer: column names and rows (tuples), with a dict view for callers."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def dicts(self) -> list[dict[str, Any]]:
        """The rows as dicts keyed by column name."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


@dataclass(frozen=True)
class BatchResult:
    """What a group commit did: rows inserted, rows already there, attempts finished, and the
    span ids whose finish found no running row."""

    inserted: int
    duplicates: int
    finished: int
    missing: list[str]


@dataclass(frozen=True)
class PruneResult:
    """What retention removed and how much space it gave back."""

    rows_deleted: int
    traces_deleted: int
    bytes_before: int
    bytes_after: int


class Store:
    """A taskexec database. ``Store(path)`` creates and migrates; ``Store.open_readonly`` reads."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        readonly: bool = False,
        create: bool = True,
        background_checkpoint: bool = False,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
        retry_for: float = 60.0,
    ) -> None:
        self.path = os.fspath(path)
        self.readonly = readonly
        self._retry_for = retry_for
        exists = os.path.exists(self.path)
        if not exists and (readonly or not create):
            raise DatabaseError(
                f"no database at {self.path}: check the path (or pass --db, or set "
                "$TASKEXEC_DB); recording your tasks creates it, and `taskexec demo "
                f"{self.path}` fills one with sample runs to try"
            )
        try:
            self.conn = connect(self.path, readonly=readonly, busy_timeout_ms=busy_timeout_ms)
            self._db = Handle(self.path, self.conn, readonly)
            self._lock = self._db.lock
            if readonly:
                self._check_schema()
            else:
                self._setup_writer(background_checkpoint)
        except sqlite3.DatabaseError as exc:
            raise DatabaseError(f"{self.path} is not a usable SQLite database: {exc}") from None
        self._checkpointer: Checkpointer | None = None
        if background_checkpoint and not readonly:
            self._checkpointer = Checkpointer(self.path)
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
        retry(migrations.migrate, conn)
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
            retry(self.conn.execute, "BEGIN IMMEDIATE", retry_for=self._retry_for)
            try:
                yield self.conn
                retry(self.conn.execute, "COMMIT", retry_for=self._retry_for)
            except BaseException:
                if self.conn.in_transaction:  # a failed COMMIT (disk full) may leave it open
                    with contextlib.suppress(sqlite3.Error):
                        self.conn.execute("ROLLBACK")
                raise

    # -- writes ------------------------------------------------------------------------------

    def append(self, record: TaskExecution) -> AppendOutcome:
        """Insert one record; an existing idempotency key (or span id) is a reported no-op."""
        return self.insert_row(encode_record(record, format_ts(utcnow())))

    def insert_row(self, row: tuple[Any, ...]) -> AppendOutcome:
        """Insert a row made by ``rows.encode_record`` (already scrubbed and hashed)."""
        with self.transaction() as conn:
            if conn.execute(INSERT, row).rowcount == 0:
                return "duplicate"
            if row[COL["stack_hash"]] is not None:
                groups.touch(conn, [_error_fields(row)])
        return "inserted"

    def start(self, record: TaskExecution) -> AppendOutcome:
        """Write a ``running`` row when an attempt begins, so a crash leaves evidence."""
        if record.status != "running":
            raise InvalidRecord("status", "start() takes a record with status 'running'")
        return self.append(record)

    def finish(
        self,
        span_id: str,
        outcome: Outcome | Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> bool:
        """Close a running (or swept) attempt with its outcome. False if the span is unknown.

        ``outcome`` is an ``Outcome`` (scrubbed here), or the column values that
        ``rows.encode_outcome`` made of one (when the caller already encoded it for its span);
        keyword fields build an ``Outcome``.
        """
        if outcome is None:
            outcome = Outcome(**fields)
        elif fields:
            raise TypeError("pass an outcome or its fields, not both")
        sets = encode_outcome(outcome) if isinstance(outcome, Outcome) else dict(outcome)
        if sets.get("status") not in STATUSES or sets["status"] == "running":
            raise InvalidRecord("status", f"cannot finish with status {sets.get('status')!r}")
        assignments = [f"{k} = ?" for k in sets]
        if "error_message" not in sets:  # a swept run that finishes loses the sweep's note
            assignments.append(
                "error_message = CASE WHEN status = 'abandoned' THEN NULL ELSE error_message END"
            )
        sql = (
            f"UPDATE task_executions SET {', '.join(assignments)} "
            "WHERE span_id = ? AND status IN ('running', 'abandoned')"
        )
        with self.transaction() as conn:
            if conn.execute(sql, (*sets.values(), span_id)).rowcount == 0:
                return False
            if sets.get("stack_hash") is not None:
                groups.touch(conn, [conn.execute(groups.ERROR_ROW_OF_SPAN, (span_id,)).fetchone()])
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
        from .bulkload import BulkResult, load_into_empty  # a bulk load's own imports

        if self.conn.execute("SELECT 1 FROM task_executions LIMIT 1").fetchone() is None:
            result = load_into_empty(self._db, records, workers)
            analyze(self.conn, full=migrations.LOW_CARDINALITY_INDEXES)
            return result
        total = BulkResult()
        for batch in _batches(records, batch_size):
            total += self._append_batch(batch)
        if total.inserted:
            self.conn.execute("PRAGMA optimize")
        return total

    def append_parts(self, parts: Sequence[bulkload.Part]) -> BulkResult:
        """Load records made in parts (each: its first id, a function yielding its rows; see
        ``ingest.demo.parts``): into an empty table, forked workers make and write all but the
        first part at once; otherwise they go in like ``append_many``."""
        from .bulkload import BulkResult, load_parts

        if self.conn.execute("SELECT 1 FROM task_executions LIMIT 1").fetchone() is None:
            inserted = load_parts(self._db, parts)
            analyze(self.conn, full=migrations.LOW_CARDINALITY_INDEXES)
            return BulkResult(inserted, 0)
        return self.append_many(itertools.chain.from_iterable(make() for _, make in parts))

    def _append_batch(self, records: list[TaskExecution]) -> BulkResult:
        from .bulkload import BulkResult

        created = format_ts(utcnow())
        rows = [encode_record(r, created) for r in records]
        key = COL["idempotency_key"]
        rows.sort(key=lambda r: r[key])  # by key: index inserts land in order
        bulk_fts = len(rows) >= 200
        with self.transaction() as conn:
            before = _max_id(conn)
            if bulk_fts:  # one INSERT ... SELECT into FTS beats a trigger per row (about 2x)
                conn.execute("DROP TRIGGER te_fts_ai")
            conn.executemany(INSERT, rows)
            if bulk_fts:
                conn.execute(migrations.FTS_FILL, (before,))
                conn.execute(migrations.FTS_TRIGGERS["te_fts_ai"])
            inserted = conn.execute(
                "SELECT count(*) FROM task_executions WHERE id > ?", (before,)
            ).fetchone()[0]
            groups.touch(conn, conn.execute(groups.ERROR_ROWS, (before,)).fetchall())
        return BulkResult(inserted, len(rows) - inserted)

    def sweep(self, older_than: float = 3600.0) -> int:
        """Mark ``running`` rows not heard from for ``older_than`` seconds as abandoned: their
        last heartbeat when the writer sent heartbeats, else their start."""
        cutoff = format_ts(utcnow() - timedelta(seconds=older_than))
        with self.transaction() as conn:
            return conn.execute(
                "UPDATE task_executions SET status = 'abandoned', error_message = ? "
                "WHERE status = 'running' AND coalesce(heartbeat_at, started_at) < ?",
                ("no end was recorded: the worker probably died (marked by sweep)", cutoff),
            ).rowcount

    def write_batch(
        self,
        rows: Sequence[Sequence[Any]],
        finishes: Sequence[tuple[str, Mapping[str, Any]]],
        *,
        errors: bool = True,
    ) -> BatchResult:
        """The group commit of the background writer and of the spool's replay: encoded rows
        (``rows.encode_record``, ``COLUMNS`` order) and finishes (span id and
        ``rows.encode_outcome`` values), each list written by one statement that reads the
        whole list as one JSON text, with the error groups kept exact in the same transaction.
        A finish whose attempt has no row is reported in ``missing``.

        ``errors=False`` says no row or finish carries a stack hash: new rows alone are then
        one statement in its own transaction (the writer's common case, and its cheapest)."""
        for span_id, values in finishes:  # a finish always ends the attempt
            if values.get("status") not in STATUSES or values["status"] == "running":
                raise InvalidRecord(
                    "status", f"{span_id}: cannot finish as {values.get('status')!r}"
                )
        rows_json = dump(list(rows)) if rows else None
        finishes_json = dump([{"span_id": s, **v} for s, v in finishes]) if finishes else None
        if not errors and finishes_json is None and rows_json is not None:
            with self._lock:
                cursor = retry(
                    self.conn.execute, INSERT_JSON, (rows_json,), retry_for=self._retry_for
                )
            return BatchResult(cursor.rowcount, len(rows) - cursor.rowcount, 0, [])
        with self.transaction() as conn:
            before = _max_id(conn) if errors else 0
            inserted = finished = 0
            missing: list[str] = []
            if rows_json is not None:
                inserted = conn.execute(INSERT_JSON, (rows_json,)).rowcount
                if inserted and errors:
                    groups.touch(conn, conn.execute(groups.ERROR_ROWS, (before,)).fetchall())
            if finishes_json is not None:
                batch = finishes_json
                finished = conn.execute(FINISH_JSON, (batch,)).rowcount
                if finished < len(finishes):
                    missing = [r[0] for r in conn.execute(FINISH_MISSING, (batch,))]
                failed = conn.execute(FINISH_ERRORS, (batch,)).fetchall() if errors else []
                if failed:
                    groups.touch(conn, failed)
        return BatchResult(inserted, len(rows) - inserted, finished, missing)

    def heartbeat(self, span_ids: Sequence[str], at: datetime) -> int:
        """Refresh ``heartbeat_at`` of these attempts while they are still running."""
        stamp, count = format_ts(at, "heartbeat_at"), 0
        with self.transaction() as conn:
            for i in range(0, len(span_ids), _CHUNK):
                chunk = list(span_ids[i : i + _CHUNK])
                count += conn.execute(
                    "UPDATE task_executions SET heartbeat_at = ? WHERE +status = 'running' "
                    f"AND span_id IN ({', '.join('?' * len(chunk))})",
                    (stamp, *chunk),
                ).rowcount
        return count

    def prune(self, cutoff: datetime) -> PruneResult:
        """Delete whole traces whose newest attempt started before ``cutoff``; reclaim space."""
        stamp = format_ts(cutoff, "cutoff")
        before = file_size(self.path)
        with self.transaction() as conn:
            traces = conn.execute(
                "SELECT count(DISTINCT trace_id) FROM task_executions WHERE started_at < :c "
                "AND trace_id NOT IN (SELECT trace_id FROM task_executions WHERE started_at >= :c)",
                {"c": stamp},
            ).fetchone()[0]
            # Row by row, the rollup triggers would re-read an hour's extremes again and again
            # as its rows go: off for this transaction, the pruned hours are recomputed once.
            for name in rollups.TRIGGERS:
                conn.execute(f"DROP TRIGGER {name}")
            deleted = conn.execute(
                "DELETE FROM task_executions WHERE started_at < :c "
                "AND trace_id NOT IN (SELECT trace_id FROM task_executions WHERE started_at >= :c)",
                {"c": stamp},
            ).rowcount
            if deleted:
                groups.rebuild(conn)
                rollups.refresh(conn, None, stamp[:13])
            for sql in rollups.TRIGGERS.values():
                conn.execute(sql)
        if deleted:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.conn.execute("VACUUM")
            analyze(self.conn)
        return PruneResult(deleted, traces, before, file_size(self.path))

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

    def _query(self, sql: str, params: dict[str, Any] | Sequence[Any] = ()) -> list[sqlite3.Row]:
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
        after: tuple[str, int] | None = None,
        columns: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Executions matching every given filter, newest first (``started_at``, then ``id``).

        ``after`` is the ``(started_at, id)`` of the last row of the previous page: the page
        continues after it (keyset paging: the same cost on every page, unlike ``offset``).
        ``columns`` limits what is read (``id`` always comes too); None reads every column.
        """
        where, params = _filters(task_id, task_slug, status, since, until)
        where = _after(where, params, after, "")
        params.update(limit=_check_limit(limit), offset=max(0, int(offset)))
        sql = (
            f"SELECT {_columns(columns)} FROM task_executions {where} "
            "ORDER BY started_at DESC, id DESC LIMIT :limit OFFSET :offset"
        )
        return [decode_row(r) for r in self._query(sql, params)]

    def count_executions(
        self,
        *,
        task_id: str | None = None,
        task_slug: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        cap: int | None = None,
    ) -> int:
        """How many executions match the filters (for "showing N of M"). With ``cap``, counting
        stops at ``cap + 1`` so "more than N" costs the same at any size."""
        where, params = _filters(task_id, task_slug, status, since, until)
        inner = f"SELECT 1 FROM task_executions {where}"
        if cap is not None:
            inner += f" LIMIT {_check_limit(cap) + 1}"
        return int(self._query(f"SELECT count(*) FROM ({inner})", params)[0][0])

    def trace(self, trace_id: str) -> list[dict[str, Any]]:
        """Every attempt of one logical run, in attempt order."""
        rows = self._query(
            "SELECT * FROM task_executions WHERE trace_id = ? ORDER BY attempt, started_at, id",
            (trace_id,),
        )
        return [decode_row(r) for r in rows]

    def finished(self, span_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The rows of these attempts that have ended, with their novelty: ``is_new_error``
        (the first occurrence of its error group) and ``group_occurrences`` (for on-finish
        hooks and alerts)."""
        out: list[dict[str, Any]] = []
        ids = list(dict.fromkeys(span_ids))
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i : i + _CHUNK]
            rows = self._query(
                "SELECT t.*, t.first_seen_error AS is_new_error, "
                "g.occurrences AS group_occurrences FROM task_executions t "
                "LEFT JOIN error_groups g ON g.stack_hash = t.stack_hash "
                f"WHERE t.span_id IN ({', '.join('?' * len(chunk))}) AND t.status != 'running'",
                chunk,
            )
            out.extend(decode_row(r) for r in rows)
        return out

    def last_failed(
        self,
        *,
        limit: int = 10,
        task_slug: str | None = None,
        since: datetime | None = None,
        after: tuple[str, int] | None = None,
        columns: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """The most recent failed/timed-out/abandoned attempts with their error group's numbers,
        newest first; ``after`` continues after a ``(started_at, id)`` and ``columns`` limits
        what is read of each attempt (see ``list_executions``)."""
        statuses = ", ".join(f"'{s}'" for s in FAILURE_STATUSES)
        clauses = [f"t.status IN ({statuses})"]
        params: dict[str, Any] = {"limit": _check_limit(limit)}
        if task_slug is not None:
            clauses.append("t.task_slug = :task_slug")
            params["task_slug"] = task_slug
        if since is not None:
            clauses.append("t.started_at >= :since")
            params["since"] = format_ts(since, "since")
        where = _after("WHERE " + " AND ".join(clauses), params, after, "t.")
        sql = (
            f"SELECT {_columns(columns, 't.')}, g.occurrences AS group_occurrences, "
            "g.first_seen AS group_first_seen, "
            "g.last_seen AS group_last_seen FROM task_executions t "
            "LEFT JOIN error_groups g ON g.stack_hash = t.stack_hash "
            f"{where} ORDER BY t.started_at DESC, t.id DESC LIMIT :limit"
        )
        return [decode_row(r) for r in self._query(sql, params)]

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
        return [dict(r) for r in self._query(sql, params)]

    def error_group(self, stack_hash: str) -> dict[str, Any] | None:
        """One error group by its stack hash."""
        rows = self._query("SELECT * FROM error_groups WHERE stack_hash = ?", (stack_hash,))
        return dict(rows[0]) if rows else None

    # -- batch reads for the faces and importers ---------------------------------------------

    def attempts_of(self, trace_ids: Sequence[str]) -> dict[str, list[tuple[int, str]]]:
        """(attempt, status) of every attempt of each run, in attempt order: one query on the
        trace_id index for many runs, reading no other column."""
        out: dict[str, list[tuple[int, str]]] = {}
        ids = list(dict.fromkeys(trace_ids))
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i : i + _CHUNK]
            rows = self._query(
                "SELECT trace_id, attempt, status FROM task_executions "
                f"WHERE trace_id IN ({', '.join('?' for _ in chunk)}) "
                "ORDER BY trace_id, attempt, started_at, id",
                chunk,
            )
            for trace_id, attempt, status in rows:
                out.setdefault(trace_id, []).append((attempt, status))
        return out

    def distinct_values(self, column: str, *, limit: int = 200) -> list[str]:
        """Distinct values of an indexed column (task_slug, task_id, status, error_type,
        provenance), sorted, by skip-scan: a few index seeks, never a full scan."""
        if column not in DISTINCT_COLUMNS:
            raise InvalidRecord(
                "column", f"must be one of {', '.join(DISTINCT_COLUMNS)}; got {column!r}"
            )
        rows = self._query(
            f"WITH RECURSIVE v(x) AS (SELECT min({column}) FROM task_executions UNION ALL "
            f"SELECT (SELECT min({column}) FROM task_executions WHERE {column} > v.x) FROM v "
            "WHERE v.x IS NOT NULL) SELECT x FROM v WHERE x IS NOT NULL LIMIT :limit",
            {"limit": _check_limit(limit)},
        )
        return [r[0] for r in rows]

    def rollup_verify(self) -> list[rollups.Difference]:
        """Every rollup row that differs from the raw rows (empty: the rollups are exact).
        Reads in one transaction, so writers that commit meanwhile cannot make it differ."""
        with self._lock:
            self.conn.execute("BEGIN")
            try:
                return rollups.verify(self.conn)
            finally:
                self.conn.execute("ROLLBACK")

    def rollup_rebuild(self) -> int:
        """Recompute every rollup from the raw rows; returns the task-hours they now hold."""
        with self.transaction() as conn:
            rollups.refresh(conn)
            return int(conn.execute(f"SELECT count(*) FROM {rollups.HOURLY}").fetchone()[0])

    def rollup_totals(self) -> dict[str, tuple[int, int]]:
        """Attempts by status as the rollups count them and as the table holds them, each
        ``(rolled, rows)``: a quick check (``rollup_verify`` compares every figure)."""
        sums = ", ".join(f"coalesce(sum({s}), 0)" for s in STATUSES)
        with self._lock:
            self.conn.execute("BEGIN")
            try:
                rolled = self.conn.execute(f"SELECT {sums} FROM {rollups.HOURLY}").fetchone()
                raw = dict(
                    self.conn.execute(
                        "SELECT status, count(*) FROM task_executions GROUP BY status"
                    ).fetchall()
                )
            finally:
                self.conn.execute("ROLLBACK")
        return {s: (int(rolled[i]), int(raw.get(s, 0))) for i, s in enumerate(STATUSES)}

    def execution_counts(
        self, *, statuses: Iterable[str] | None = None, tasks: Iterable[str] | None = None
    ) -> ExecutionCounts:
        """How many executions have one of ``statuses`` and one of ``tasks`` (None: any), by
        status and by task, from the rollups (``execution_counts``): milliseconds at any size."""
        with self._lock:
            return execution_counts(self.conn, statuses=statuses, tasks=tasks)

    def rollup_count(
        self, *, statuses: Iterable[str] | None = None, tasks: Iterable[str] | None = None
    ) -> int:
        """How many executions have one of ``statuses`` and one of ``tasks`` (None: any): one
        sum over the rollups (``execution_counts`` without the breakdowns, a tenth the cost)."""
        wanted = list(STATUSES) if statuses is None else [s for s in STATUSES if s in statuses]
        if not wanted:
            return 0
        sql = f"SELECT coalesce(sum({' + '.join(wanted)}), 0) FROM {rollups.HOURLY}"
        params: list[str] = []
        if tasks is not None:
            params = sorted(set(tasks))
            sql += f" WHERE task_slug IN ({', '.join('?' * len(params)) or 'NULL'})"
        return int(self._query(sql, params)[0][0])

    def file_identity(self) -> tuple[int, int] | None:
        """The device and inode of the file at ``path`` now (None when there is none): a reader
        kept open compares it with the one it opened, to notice a file put in its place."""
        try:
            found = os.stat(self.path)
        except OSError:
            return None
        return (found.st_dev, found.st_ino)

    def schema_version(self) -> int:
        """SQLite's schema version of this connection's file: it changes with every migration
        (a reader kept open reopens then, to check the schema again)."""
        with self._lock:
            return int(self.conn.execute("PRAGMA schema_version").fetchone()[0])

    def data_range(self) -> DataRange:
        """The first and last ``started_at`` (None when empty) and how many attempts there are."""
        row = self.run_probe("data_range").dicts()[0]
        return DataRange(row["first_started_at"], row["last_started_at"], int(row["attempts"]))

    def iter_executions(
        self, *, since: datetime | None = None, page: int = 5_000
    ) -> Iterator[dict[str, Any]]:
        """Every execution in id order (JSON columns decoded), read a page at a time so a
        large file never sits in memory."""
        after = 0
        where = "id > :after" + (" AND started_at >= :since" if since is not None else "")
        params: dict[str, Any] = {"limit": _check_limit(page)}
        if since is not None:
            params["since"] = format_ts(since, "since")
        while True:
            params["after"] = after
            rows = self._query(
                f"SELECT * FROM task_executions WHERE {where} ORDER BY id LIMIT :limit", params
            )
            if not rows:
                return
            for row in rows:
                yield decode_row(row)
            after = rows[-1]["id"]

    def existing(self, keys: Sequence[str], span_ids: Sequence[str]) -> tuple[set[str], set[str]]:
        """Which of these idempotency keys and span ids the database already holds."""
        found_keys: set[str] = set()
        found_spans: set[str] = set()
        for i in range(0, max(len(keys), len(span_ids)), _CHUNK):
            k, s = list(keys[i : i + _CHUNK]), list(span_ids[i : i + _CHUNK])
            rows = self._query(
                "SELECT idempotency_key, span_id FROM task_executions "
                f"WHERE idempotency_key IN ({', '.join('?' * len(k)) or 'NULL'}) "
                f"OR span_id IN ({', '.join('?' * len(s)) or 'NULL'})",
                k + s,
            )
            found_keys.update(r[0] for r in rows if r[0] in k)
            found_spans.update(r[1] for r in rows if r[1] in s)
        return found_keys, found_spans

    def run_probe(self, name: str, params: Mapping[str, Any] | None = None) -> ProbeResult:
        """Run the named probe (``taskexec/probes/NAME.sql``) with its parameters bound."""
        from .. import probes  # importlib.resources and the probes' files: only for a probe

        probe = probes.get(name)
        bound = probe.bind(dict(params or {}))
        for param in probe.params:  # say what is wrong with a window before SQLite hides it
            if param.name in probes.WINDOW_PARAMS:
                window_start(bound[param.name], param.default or "7d", name=param.name)
        with self._lock:
            cursor = self.conn.execute(probe.sql, bound)
            columns = tuple(d[0] for d in cursor.description)
            return ProbeResult(columns, [tuple(r) for r in cursor.fetchall()])


def execution_counts(
    conn: sqlite3.Connection,
    *,
    statuses: Iterable[str] | None = None,
    tasks: Iterable[str] | None = None,
) -> ExecutionCounts:
    """Counts of ``task_executions`` rows whose status is one of ``statuses`` and whose task is
    one of ``tasks`` (None: no filter), read from ``rollup_hourly`` (exact at all times: its
    triggers count every write), so it costs a sum over task-hours, not a scan of the rows.

    A module function over a connection, so Datasette's table page can run it on its own
    connection (``Database.execute_fn``); ``Store.execution_counts`` is the same on the store's.
    """
    wanted = None if statuses is None else set(statuses)
    sums = ", ".join(f"coalesce(sum({s}), 0)" for s in STATUSES)
    sql = f"SELECT task_slug, {sums} FROM {rollups.HOURLY}"
    params: list[str] = []
    if tasks is not None:
        params = sorted(set(tasks))
        sql += f" WHERE task_slug IN ({', '.join('?' * len(params)) or 'NULL'})"
    by_status = dict.fromkeys(STATUSES, 0)
    by_task: dict[str, int] = {}
    for task, *counts in conn.execute(sql + " GROUP BY task_slug", params):
        n = 0
        for status, count in zip(STATUSES, counts, strict=True):
            if wanted is None or status in wanted:
                by_status[status] += count
                n += count
        if n:
            by_task[task] = n
    return ExecutionCounts(
        total=sum(by_status.values()),
        by_status=_largest_first(by_status),
        by_task=_largest_first(by_task),
    )


def search_count(conn: sqlite3.Connection, match: str) -> int:
    """How many executions the full-text query ``match`` (FTS5 syntax) finds in their content
    or error message: read from the search index alone (it holds one entry per row, kept by
    triggers), so no row of ``task_executions`` is visited."""
    row = conn.execute(
        "SELECT count(*) FROM task_executions_fts WHERE task_executions_fts MATCH ?", (match,)
    ).fetchone()
    return int(row[0])


def _largest_first(counts: Mapping[str, int]) -> dict[str, int]:
    return dict(sorted(((k, v) for k, v in counts.items() if v), key=lambda kv: (-kv[1], kv[0])))


def _batches(records: Iterable[TaskExecution], size: int) -> Iterator[list[TaskExecution]]:
    batch: list[TaskExecution] = []
    for record in records:
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _max_id(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(max(id), 0) FROM task_executions").fetchone()[0])


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


def _after(where: str, params: dict[str, Any], after: tuple[str, int] | None, alias: str) -> str:
    """``where`` continued by the keyset ``after`` (rows ordered by started_at, id, both
    descending): written so the started_at index still bounds the scan."""
    if after is None:
        return where
    params["after_started"], params["after_id"] = str(after[0]), int(after[1])
    clause = (
        f"{alias}started_at <= :after_started AND "
        f"({alias}started_at < :after_started OR {alias}id < :after_id)"
    )
    return f"{where} AND {clause}" if where else f"WHERE {clause}"


def _columns(columns: Sequence[str] | None, alias: str = "") -> str:
    """A select list of known columns (``id`` first); every column for None."""
    if columns is None:
        return f"{alias}*"
    unknown = [c for c in columns if c not in COL and c != "id"]
    if unknown:
        raise InvalidRecord("columns", f"unknown column(s) {unknown}")
    return ", ".join(alias + c for c in dict.fromkeys(["id", *columns]))


def _error_fields(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """What ``groups.touch`` reads of a row tuple, by column name."""
    return tuple(
        row[COL[name]]
        for name in ("stack_hash", "started_at", "span_id", "error_type", "error_message")
    )
