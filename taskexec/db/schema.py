"""The schema: numbered, append-only migrations recorded in ``_taskexec_migrations`` (llm
style), plus the index and full-text definitions bulk loads drop and rebuild.

Never edit a migration that has shipped: add ``m00N_...`` below it instead.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

from ..model import STATUSES

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
    "ix_te_stack_hash": (
        "CREATE INDEX ix_te_stack_hash ON task_executions (stack_hash) WHERE stack_hash IS NOT NULL"
    ),
    # "latest failures" reads this partial index in order and stops after LIMIT rows.
    "ix_te_failures_started": (
        "CREATE INDEX ix_te_failures_started ON task_executions (started_at DESC) "
        "WHERE status IN ('failed', 'timeout', 'abandoned')"
    ),
    # Datasette's facet counts on these columns read an index instead of the whole table.
    "ix_te_error_type": (
        "CREATE INDEX ix_te_error_type ON task_executions (error_type) WHERE error_type IS NOT NULL"
    ),
    "ix_te_provenance": "CREATE INDEX ix_te_provenance ON task_executions (provenance)",
    # Covering index for windowed aggregates (rates, durations by day and task).
    "ix_te_started_cover": (
        "CREATE INDEX ix_te_started_cover ON task_executions "
        "(started_at, task_slug, status, duration_ms)"
    ),
}

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
