"""The schema: numbered, append-only migrations recorded in ``_taskexec_migrations`` (llm
style), plus the index and full-text definitions bulk loads drop and rebuild.

Never edit a migration that has shipped: add ``m00N_...`` below it instead.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

from ..model import STATUSES, idempotency_key
from . import rollups

MIGRATIONS_TABLE = "_taskexec_migrations"
Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    """Register a migration; order of definition is order of application."""
    MIGRATIONS.append(fn)
    return fn


_STATUS_LIST = ", ".join(f"'{s}'" for s in STATUSES)

#: Secondary indexes by name. Kept as data so bulk loads can drop and recreate them.
INDEXES: dict[str, str] = {
    "ux_te_span_id": "CREATE UNIQUE INDEX ux_te_span_id ON task_executions (span_id)",
    "ux_te_idempotency_key": (
        "CREATE UNIQUE INDEX ux_te_idempotency_key ON task_executions (idempotency_key)"
    ),
    # status rides along so "task X with status Y, newest first" never touches the table.
    "ix_te_task_id_started": (
        "CREATE INDEX ix_te_task_id_started ON task_executions (task_id, started_at DESC, status)"
    ),
    "ix_te_task_slug_started": (
        "CREATE INDEX ix_te_task_slug_started ON task_executions "
        "(task_slug, started_at DESC, status)"
    ),
    "ix_te_trace_id": "CREATE INDEX ix_te_trace_id ON task_executions (trace_id)",
    "ix_te_status_started": (
        "CREATE INDEX ix_te_status_started ON task_executions (status, started_at DESC)"
    ),
    # "latest failures" reads this partial index in order and stops after LIMIT rows.
    "ix_te_failures_started": (
        "CREATE INDEX ix_te_failures_started ON task_executions (started_at DESC) "
        "WHERE status IN ('failed', 'timeout', 'abandoned')"
    ),
    # Datasette's facet counts on these columns read an index instead of the whole table.
    # started_at rides along: the table page filtered by error type lists newest first
    # without sorting every match (m006 rebuilds the older one-column index)
    "ix_te_error_type": (
        "CREATE INDEX ix_te_error_type ON task_executions (error_type, started_at DESC) "
        "WHERE error_type IS NOT NULL"
    ),
    "ix_te_provenance": "CREATE INDEX ix_te_provenance ON task_executions (provenance)",
    # Slots a task ran more than once: first attempts by slot, newest first, index-only.
    "ix_te_slots": (
        "CREATE INDEX ix_te_slots ON task_executions (scheduled_at, task_id) "
        "WHERE attempt = 1 AND scheduled_at IS NOT NULL"
    ),
    # Covering index for windowed aggregates (rates, durations by day and task).
    "ix_te_started_cover": (
        "CREATE INDEX ix_te_started_cover ON task_executions "
        "(started_at, task_slug, status, duration_ms)"
    ),
    # Late starts (alert_late_starts): only first attempts that started over a minute after
    # their slot, a handful, so the probe never reads the window's rows.
    "ix_te_late_starts": (
        "CREATE INDEX ix_te_late_starts ON task_executions (started_at) "
        "WHERE attempt = 1 AND scheduled_at IS NOT NULL "
        "AND (julianday(started_at) - julianday(scheduled_at)) * 86400 > 60"
    ),
    # Long runs (alert_long_runs): a task's attempts by duration, so those over its limit are
    # read without the window's other rows. Partial, so only a query repeating its WHERE uses it.
    "ix_te_long_runs": (
        "CREATE INDEX ix_te_long_runs ON task_executions (task_slug, duration_ms, started_at) "
        "WHERE status NOT IN ('cancelled', 'abandoned')"
    ),
    # An error group's occurrences in time order (alert_regressions): its first one in a window
    # and the one before it are each one seek, not a read of every occurrence.
    "ix_te_stack_hash_started": (
        "CREATE INDEX ix_te_stack_hash_started ON task_executions (stack_hash, started_at) "
        "WHERE stack_hash IS NOT NULL"
    ),
}

#: Indexes whose leading column has few distinct values: after a bulk load their planner
#: statistics are computed in full, the others sampled (``connection.analyze``).
LOW_CARDINALITY_INDEXES = (
    "ix_te_status_started",
    "ix_te_task_slug_started",
    "ix_te_task_id_started",
    "ix_te_provenance",
    "ix_te_error_type",
    "ix_te_stack_hash_started",
)

#: Rows with neither a summary nor an error message (e.g. a task that is still running) are
#: left out of the full-text index: it costs the hot recording path nothing to skip them.
FTS_HAS_TEXT = "{0}.content IS NOT NULL OR {0}.error_message IS NOT NULL"
FTS_TRIGGERS: dict[str, str] = {
    "te_fts_ai": f"""CREATE TRIGGER te_fts_ai AFTER INSERT ON task_executions
        WHEN {FTS_HAS_TEXT.format("new")}
    BEGIN
        INSERT INTO task_executions_fts (rowid, content, error_message)
        VALUES (new.id, new.content, new.error_message);
    END""",
    "te_fts_ad": f"""CREATE TRIGGER te_fts_ad AFTER DELETE ON task_executions
        WHEN {FTS_HAS_TEXT.format("old")}
    BEGIN
        INSERT INTO task_executions_fts (task_executions_fts, rowid, content, error_message)
        VALUES ('delete', old.id, old.content, old.error_message);
    END""",
    "te_fts_au": f"""CREATE TRIGGER te_fts_au AFTER UPDATE OF content, error_message
        ON task_executions
        WHEN old.content IS NOT new.content OR old.error_message IS NOT new.error_message
    BEGIN
        INSERT INTO task_executions_fts (task_executions_fts, rowid, content, error_message)
        SELECT 'delete', old.id, old.content, old.error_message
        WHERE {FTS_HAS_TEXT.format("old")};
        INSERT INTO task_executions_fts (rowid, content, error_message)
        SELECT new.id, new.content, new.error_message
        WHERE {FTS_HAS_TEXT.format("new")};
    END""",
}

#: Fill the full-text index from the table (after a bulk load), skipping rows with no text.
FTS_FILL = (
    "INSERT INTO task_executions_fts (rowid, content, error_message) "
    "SELECT id, content, error_message FROM task_executions "
    f"WHERE id > ? AND ({FTS_HAS_TEXT.format('task_executions')})"
)

#: What the full-text index holds: the rows with text. Its external content is this view rather
#: than the table itself, so FTS5's own integrity-check (rank 1), which compares the index with
#: its content row by row, agrees with an index that leaves text-less rows out (``m004``).
FTS_CONTENT_VIEW = (
    "CREATE VIEW task_executions_text AS SELECT id, content, error_message "
    f"FROM task_executions WHERE {FTS_HAS_TEXT.format('task_executions')}"
)
FTS_TABLE = """CREATE VIRTUAL TABLE task_executions_fts USING fts5(
    content, error_message,
    content="task_executions_text", content_rowid="id", tokenize="porter unicode61"
)"""


@migration
def m001_initial(db: sqlite3.Connection) -> None:
    """The execution table, its indexes, full-text search and the error groups."""
    db.execute(
        f"""CREATE TABLE task_executions (
            id INTEGER PRIMARY KEY,
            span_id TEXT NOT NULL CHECK (length(span_id) = 16),
            trace_id TEXT NOT NULL CHECK (length(trace_id) = 32),
            parent_span_id TEXT,
            attempt INTEGER NOT NULL CHECK (attempt >= 1),
            retry_of TEXT,
            idempotency_key TEXT NOT NULL,
            task_id TEXT NOT NULL,
            task_slug TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ({_STATUS_LIST})),
            error_type TEXT,
            error_message TEXT,
            stack_trace TEXT,
            stack_hash TEXT,
            first_seen_error INTEGER NOT NULL DEFAULT 0 CHECK (first_seen_error IN (0, 1)),
            scheduled_at TEXT,
            started_at TEXT NOT NULL,
            ended_at TEXT,
            duration_ms REAL,
            memories_retrieved INTEGER,
            retrieval_sources TEXT,
            files_written TEXT,
            parents TEXT,
            causes TEXT,
            provenance TEXT NOT NULL CHECK (provenance IN ('live', 'backfill', 'otlp')),
            host TEXT,
            pid INTEGER,
            content TEXT,
            attributes TEXT,
            created_at TEXT NOT NULL
        )"""
    )
    for sql in INDEXES.values():
        db.execute(sql)
    db.execute(
        """CREATE VIRTUAL TABLE task_executions_fts USING fts5(
            content, error_message,
            content="task_executions", content_rowid="id", tokenize="porter unicode61"
        )"""
    )
    for sql in FTS_TRIGGERS.values():
        db.execute(sql)
    db.execute(
        """CREATE TABLE error_groups (
            stack_hash TEXT PRIMARY KEY,
            error_type TEXT,
            sample_message TEXT,
            sample_span_id TEXT,
            first_span_id TEXT,
            first_seen TEXT NOT NULL,
            last_seen TEXT NOT NULL,
            occurrences INTEGER NOT NULL
        )"""
    )
    db.execute("CREATE INDEX ix_error_groups_last_seen ON error_groups (last_seen DESC)")
    db.execute("CREATE TABLE taskexec_meta (key TEXT PRIMARY KEY, value TEXT)")


@migration
def m002_heartbeat(db: sqlite3.Connection) -> None:
    """``heartbeat_at``: refreshed by the background writer while an attempt runs, so a stuck or
    crashed run is told apart from a long one."""
    db.execute("ALTER TABLE task_executions ADD COLUMN heartbeat_at TEXT")


def legacy_key(task_id: str, when: str, attempt: int) -> str:
    """The default idempotency key before ``m003``: SHA-256 of (task_id, scheduled-or-start
    time as stored, attempt). Distinct runs of one slot shared it."""
    return hashlib.sha256(f"{task_id}\x1f{when}\x1f{attempt}".encode()).hexdigest()


def span_key(span_id: str) -> str:
    """The key ``m003`` gives a row whose recomputed key is taken: unique, as its span id is."""
    return hashlib.sha256(f"span\x1f{span_id}".encode()).hexdigest()


def _rekey(
    key: str,
    task_id: str,
    started_at: str,
    attempt: int,
    host: str | None,
    pid: int | None,
    scheduled_at: str | None,
) -> str | None:
    """The row's new key when it has the old default one, else None (its key stays)."""
    if key != legacy_key(task_id, scheduled_at or started_at, attempt):
        return None
    return idempotency_key(
        task_id, started_at, attempt, host=host, pid=pid, scheduled_at=scheduled_at
    )


@migration
def m003_execution_keys(db: sqlite3.Connection) -> None:
    """Rows keyed the old default way (task, slot or start, attempt) get the key of
    ``model.idempotency_key``, recomputed from their own columns: the same key a re-import of
    the same execution computes. No row is removed; a row whose new key another row already
    holds gets ``span_key`` instead. Every other key (live ``live_key`` rows, keys carried in
    by an import) is kept as it is; span ids, trace ids and links are never touched.

    The unique key index is dropped while keys change and rebuilt after (a sort, several times
    faster than moving every entry of a large index)."""
    db.create_function("_te_rekey", 7, _rekey, deterministic=True)  # stays registered
    db.execute("DROP TABLE IF EXISTS temp._te_rekeyed")
    db.execute("CREATE TEMP TABLE _te_rekeyed (id INTEGER PRIMARY KEY, key TEXT NOT NULL)")
    db.execute(
        "INSERT INTO temp._te_rekeyed SELECT id, key FROM (SELECT id, _te_rekey("
        "idempotency_key, task_id, started_at, attempt, host, pid, scheduled_at) AS key "
        "FROM task_executions) WHERE key IS NOT NULL"
    )
    if db.execute("SELECT 1 FROM temp._te_rekeyed LIMIT 1").fetchone() is not None:
        db.execute("DROP INDEX ux_te_idempotency_key")
        db.execute(
            "UPDATE task_executions SET idempotency_key = r.key FROM temp._te_rekeyed AS r "
            "WHERE r.id = task_executions.id"
        )
        taken = db.execute(
            "SELECT idempotency_key FROM task_executions GROUP BY idempotency_key "
            "HAVING count(*) > 1"
        ).fetchall()
        for (key,) in taken:  # in practice never: the new key hashes more than the old one
            holders = db.execute(
                "SELECT id, span_id, id IN (SELECT id FROM temp._te_rekeyed) AS moved "
                "FROM task_executions WHERE idempotency_key = ? ORDER BY moved, id",
                (key,),
            ).fetchall()
            for row_id, span_id, _ in holders[1:]:  # the first keeps it: unmoved, else oldest
                db.execute(
                    "UPDATE task_executions SET idempotency_key = ? WHERE id = ?",
                    (span_key(span_id), row_id),
                )
        db.execute(INDEXES["ux_te_idempotency_key"])
    db.execute("DROP TABLE temp._te_rekeyed")


@migration
def m004_fts_content_view(db: sqlite3.Connection) -> None:
    """The full-text index reads its content from ``task_executions_text`` (the rows with text,
    the same rows the triggers index), so FTS5's integrity-check (rank 1) passes; the index
    is rebuilt from the view. Triggers, queries and Datasette's search are unchanged."""
    db.execute(FTS_CONTENT_VIEW)
    db.execute("DROP TABLE task_executions_fts")
    db.execute(FTS_TABLE)
    db.execute("INSERT INTO task_executions_fts (task_executions_fts) VALUES ('rebuild')")


#: When each task should run (``db/awareness.py`` reads and writes it).
SCHEDULES_TABLE = """CREATE TABLE schedules (
    task_slug TEXT PRIMARY KEY,
    cron TEXT,
    every_seconds REAL,
    timezone TEXT NOT NULL DEFAULT 'UTC',
    grace_seconds REAL NOT NULL DEFAULT 300,
    tolerance_seconds REAL NOT NULL DEFAULT 60,
    max_duration_seconds REAL,
    thresholds TEXT,
    source TEXT NOT NULL DEFAULT 'cli',
    expected_at TEXT,
    last_started_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    CHECK ((cron IS NULL) != (every_seconds IS NULL))
)"""

ALERTS_TABLE = """CREATE TABLE alerts (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    task_slug TEXT NOT NULL,
    alert_key TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('open', 'resolved')),
    since TEXT,
    opened_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    resolved_at TEXT,
    title TEXT NOT NULL,
    detail TEXT,
    trace_id TEXT,
    span_id TEXT,
    stack_hash TEXT,
    times_opened INTEGER NOT NULL DEFAULT 1,
    notice TEXT,
    notice_at TEXT,
    resolve_notice TEXT,
    UNIQUE (kind, task_slug, alert_key)
)"""
ALERTS_INDEX = "CREATE INDEX ix_alerts_state_opened ON alerts (state, opened_at DESC)"


@migration
def m005_schedules_and_alerts(db: sqlite3.Connection) -> None:
    """``schedules`` (when tasks should run) and ``alerts`` (what ``taskexec check`` found,
    open or resolved, and whether it was told): see ``db/awareness.py``."""
    db.execute(SCHEDULES_TABLE)
    db.execute(ALERTS_TABLE)
    db.execute(ALERTS_INDEX)


@migration
def m006_rollups(db: sqlite3.Connection) -> None:
    """Rollups per task and hour (``db/rollups.py``): their tables, filled from the rows there,
    and the triggers that keep them exact; and ``ix_te_slots`` (slots run more than once),
    ``ix_te_late_starts``, ``ix_te_long_runs`` and ``ix_te_stack_hash_started`` (the alerts),
    and ``ix_te_error_type`` rebuilt with ``started_at`` (the table page by error type).
    Their DDL ships with this migration: a later change to ``rollups.DDL`` or
    ``rollups.TRIGGERS`` needs a migration of its own."""
    rollups.create(db)
    names = (
        "ix_te_slots",
        "ix_te_late_starts",
        "ix_te_long_runs",
        "ix_te_stack_hash_started",
        "ix_te_error_type",
    )
    _sync(db, "index", {name: INDEXES[name] for name in names})


@migration
def m007_one_stack_hash_index(db: sqlite3.Connection) -> None:
    """Drop ``ix_te_stack_hash``: ``ix_te_stack_hash_started`` (m006) starts with the same
    column under the same condition, so it answers the same lookups, and every write and bulk
    load kept one index too many."""
    db.execute("DROP INDEX IF EXISTS ix_te_stack_hash")


@migration
def m008_rollup_triggers_current(db: sqlite3.Connection) -> None:
    """Bring the rollup triggers to this version's definitions. Files made before the update
    trigger learned to skip an extreme the row still holds (a running row's finish re-read its
    whole task-hour: 0.4 ms at 100 rows, 1.9 ms at 1,500) kept the old one: m006 had already
    run there."""
    _sync(db, "trigger", rollups.TRIGGERS)


@migration
def m009_daily_error_rollup(db: sqlite3.Connection) -> None:
    """``rollup_errors_daily``: failures by error group per day, filled from the hourly rollup,
    and the error triggers that keep it exact. Wide windows of the error probes and charts read
    days: at 10M rows ``error_trend`` over every row grouped 46,000 hourly rows (~65 ms)."""
    exists = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (rollups.ERRORS_DAILY,)
    ).fetchone()
    if not exists:  # a file whose m006 ran before this table was part of the rollups
        db.execute(next(sql for sql in rollups.DDL if rollups.ERRORS_DAILY in sql))
        daily = rollups.ERRORS_DAILY
        db.execute(f"INSERT INTO {daily} {rollups.by_day(daily, rollups.ERRORS)}")
    _sync(db, "trigger", rollups.TRIGGERS)


def _sync(db: sqlite3.Connection, kind: str, definitions: dict[str, str]) -> None:
    """Create each index or trigger of ``definitions`` that is missing, and recreate each one
    whose stored SQL differs (an older definition)."""
    for name, sql in definitions.items():
        row = db.execute(
            "SELECT sql FROM sqlite_master WHERE type = ? AND name = ?", (kind, name)
        ).fetchone()
        if row is not None and row[0] == sql:
            continue
        db.execute(f"DROP {kind.upper()} IF EXISTS {name}")
        db.execute(sql)


def applied(db: sqlite3.Connection) -> set[str]:
    """Names of the migrations already applied to this database."""
    exists = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (MIGRATIONS_TABLE,)
    ).fetchone()
    if not exists:
        return set()
    return {row[0] for row in db.execute(f"SELECT name FROM {MIGRATIONS_TABLE}")}


def migrate(db: sqlite3.Connection) -> list[str]:
    """Apply every pending migration in one transaction (all or none, under the write lock, so
    two processes opening a new file never both migrate). Returns the names applied."""
    done = applied(db)
    pending = [m for m in MIGRATIONS if m.__name__ not in done]
    if not pending:
        return []
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(
            f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} "
            "(name TEXT PRIMARY KEY, applied_at TEXT)"
        )
        done = applied(db)  # re-read under the write lock: another process may have migrated
        names = []
        for fn in MIGRATIONS:
            if fn.__name__ in done:
                continue
            fn(db)
            db.execute(
                f"INSERT INTO {MIGRATIONS_TABLE} (name, applied_at) VALUES (?, ?)",
                (fn.__name__, datetime.now(UTC).isoformat()),
            )
            names.append(fn.__name__)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return names


def known_names() -> set[str]:
    """Names of every migration this version of taskexec knows."""
    return {m.__name__ for m in MIGRATIONS}
