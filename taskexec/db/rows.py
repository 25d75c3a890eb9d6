"""Record <-> row: the one place a record is scrubbed, stack-hashed, JSON-encoded and its times
formatted. Insert, finish, bulk load and the live OpenTelemetry span all take their values from
here, so a record is scrubbed once and every copy of it says the same thing.

A row is a tuple in ``COLUMNS`` order (what ``executemany`` binds); code reads a field of it by
name through ``COL``, never by position.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from ..model import Outcome, TaskExecution, utc_text
from ..scrub import scrub_identifier, scrub_key, scrub_text, scrub_value


def stack_hash_from_text(
    error_type: str | None, stack_trace: str | None, message: str | None = None
) -> str | None:
    """``stackhash.stack_hash_from_text``, imported for the first row with an error (a row
    without one needs neither ``traceback`` nor ``sysconfig``, which it loads)."""
    from ..stackhash import stack_hash_from_text as hash_of

    return hash_of(error_type, stack_trace, message)


#: The columns an insert writes, in bind order (``id`` and ``first_seen_error`` are the table's).
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
#: Position of each column in a row tuple: ``row[COL["stack_hash"]]``.
COL: dict[str, int] = {name: i for i, name in enumerate(COLUMNS)}
#: Columns holding JSON text (decoded to lists, or a dict for attributes, when read).
JSON_COLUMNS = ("retrieval_sources", "files_written", "parents", "causes", "attributes")

INSERT = (
    f"INSERT INTO task_executions ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in COLUMNS)}) ON CONFLICT DO NOTHING"
)
#: The same with the row id given (bulk loads choose ids up front).
INSERT_WITH_ID = (
    f"INSERT INTO task_executions (id, {', '.join(COLUMNS)}) "
    f"VALUES (?, {', '.join('?' for _ in COLUMNS)})"
)

Row = tuple[Any, ...]

#: The columns ``finish`` may set: status and times always, the rest when the outcome has them.
FINISH_COLUMNS = (
    "status",
    "ended_at",
    "duration_ms",
    "error_type",
    "error_message",
    "stack_trace",
    "stack_hash",
    "memories_retrieved",
    "retrieval_sources",
    "files_written",
    "attributes",
    "content",
)
_ALWAYS = ("status", "ended_at", "duration_ms")

#: Group commit, part one: every row of a JSON array of row arrays (``COLUMNS`` order) in one
#: statement, so the whole group is one step of SQLite with Python's GIL released throughout.
INSERT_JSON = (
    f"INSERT INTO task_executions ({', '.join(COLUMNS)}) "
    f"SELECT {', '.join(f'value ->> {i}' for i in range(len(COLUMNS)))} "
    "FROM json_each(?) WHERE true ON CONFLICT DO NOTHING"
)


def _finish_set(name: str) -> str:
    new = f"f.value ->> '{name}'"
    if name == "duration_ms":  # unknown to a process that did not run the attempt: from start
        return (
            f"{name} = coalesce({new}, round((julianday(f.value ->> 'ended_at') - "
            "julianday(task_executions.started_at)) * 86400000.0, 3))"
        )
    if name in _ALWAYS:
        return f"{name} = {new}"
    if name == "error_message":  # a swept run that finishes after all loses the sweep's note
        return (
            f"{name} = CASE WHEN task_executions.status = 'abandoned' THEN {new} "
            f"ELSE coalesce({new}, task_executions.{name}) END"
        )
    return f"{name} = coalesce({new}, task_executions.{name})"


#: Group commit, part two: the finishes of a JSON array of objects (``span_id`` and
#: ``FINISH_COLUMNS``) applied to running (or swept) rows in one statement.
FINISH_JSON = (
    f"UPDATE task_executions SET {', '.join(_finish_set(n) for n in FINISH_COLUMNS)} "
    "FROM json_each(?) AS f WHERE task_executions.span_id = f.value ->> 'span_id' "
    # The unary + keeps the planner off the status index: each finish is one span_id lookup.
    "AND +task_executions.status IN ('running', 'abandoned')"
)
#: Span ids of a JSON array of finishes that have no row at all.
FINISH_MISSING = (
    "SELECT f.value ->> 'span_id' FROM json_each(?) AS f "
    "WHERE NOT EXISTS (SELECT 1 FROM task_executions t WHERE t.span_id = f.value ->> 'span_id')"
)
#: Error fields of the rows a JSON array of finishes gave a stack hash.
FINISH_ERRORS = (
    "SELECT stack_hash, started_at, span_id, error_type, error_message FROM task_executions "
    "WHERE span_id IN (SELECT value ->> 'span_id' FROM json_each(?) "
    "WHERE value ->> 'stack_hash' IS NOT NULL)"
)


def _json_encoder() -> Callable[[Any], str]:
    """Compact JSON text of a list or dict; the C encoder called directly when there is one
    (the ``json.dumps`` wrapper costs more than encoding the small values records hold)."""
    encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return encoder.encode
    try:
        # No circular-reference markers: values are plain data, and a shared markers dict would
        # not be safe across recording threads.
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


def plain(value: Any, depth: int = 0) -> Any:
    """Any value as something JSON can hold: strings for keys, unknown objects and anything
    nested past 32 levels by their ``str``; NaN and infinities as strings too."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return (
            value if value == value and value not in (float("inf"), float("-inf")) else str(value)
        )
    if depth >= 32:
        return _str(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v, depth + 1) for v in value]
    return _str(value)


def _str(value: Any) -> str:
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - a broken __str__ must not lose the record
        return f"<unprintable {type(value).__name__}>"


def preview(value: Any, limit: int = 2000) -> Any:
    """A value as JSON-able data, or, when its JSON text is longer than ``limit`` characters,
    that text cut to ``limit`` with the full length said: for captured arguments and results."""
    data = plain(value)
    text = dump(data) if isinstance(data, dict | list) else None
    if text is None:
        if isinstance(data, str) and len(data) > limit:
            return f"{data[:limit]}... ({len(data)} chars)"
        return data
    return data if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def dump(value: Any) -> str | None:
    """JSON text of a list or dict (None when empty); never raises for odd values."""
    if not value:
        return None
    data = list(value) if isinstance(value, tuple) else value
    try:
        return _ENCODE(data)
    except (TypeError, ValueError, RecursionError):
        return _ENCODE(plain(data))


def ts(value: datetime) -> str:
    """The canonical text of an aware datetime (UTC, fixed width, microseconds, ``Z``)."""
    return utc_text(value if value.tzinfo is UTC else value.astimezone(UTC))


def _scrubbed_json(value: Any, identifiers: bool = False) -> str | None:
    """JSON text of a scrubbed list or dict: attribute values as text, or (``identifiers``)
    paths, sources, parents and causes as identifiers, which keep their UUIDs and numbers."""
    return dump(scrub_value(value, identifiers=identifiers)) if value else None


def encode_record(record: TaskExecution, created_at: str | None = None) -> Row:
    """Scrub, hash and flatten a record into the INSERT's parameter tuple (pure).
    ``created_at`` defaults to the start time (a live row is created as it starts)."""
    message = scrub_text(record.error_message)
    stack = scrub_text(record.stack_trace)
    stack_hash = record.stack_hash
    if stack_hash is None and (record.error_type or stack):
        stack_hash = stack_hash_from_text(record.error_type, stack, message)
    scheduled, ended = record.scheduled_at, record.ended_at
    started = ts(record.started_at)
    return (
        record.span_id,
        record.trace_id,
        record.parent_span_id,
        record.attempt,
        record.retry_of,
        scrub_key(record.idempotency_key),
        scrub_identifier(record.task_id),
        scrub_identifier(record.task_slug),
        record.status,
        scrub_identifier(record.error_type),
        message,
        stack,
        scrub_key(stack_hash),
        ts(scheduled) if scheduled else None,
        started,
        ts(ended) if ended else None,
        record.duration_ms,
        record.memories_retrieved,
        _scrubbed_json(record.retrieval_sources, identifiers=True),
        _scrubbed_json(record.files_written, identifiers=True),
        _scrubbed_json(record.parents, identifiers=True),
        _scrubbed_json(record.causes, identifiers=True),
        record.provenance,
        scrub_text(record.host),
        record.pid,
        scrub_text(record.content),
        _scrubbed_json(record.attributes),
        created_at or started,
    )


def with_ids(row: Row, **ids: str | None) -> Row:
    """The row with some of its id columns replaced (e.g. the ids a live span chose)."""
    values = list(row)
    for name, value in ids.items():
        if name not in ("trace_id", "span_id", "parent_span_id"):
            raise KeyError(name)
        values[COL[name]] = value
    return tuple(values)


def as_mapping(row: Row) -> dict[str, Any]:
    """A row tuple as a dict by column name."""
    return dict(zip(COLUMNS, row, strict=True))


def encode_outcome(outcome: Outcome) -> dict[str, Any]:
    """The columns ``finish`` sets, scrubbed and hashed: status, times and every non-empty
    field of the outcome (an empty one keeps what the row had at start)."""
    message, stack = scrub_text(outcome.error_message), scrub_text(outcome.stack_trace)
    stack_hash = outcome.stack_hash
    if stack_hash is None and (outcome.error_type or stack):
        stack_hash = stack_hash_from_text(outcome.error_type, stack, message)
    sets: dict[str, Any] = {
        "status": outcome.status,
        "ended_at": ts(outcome.ended_at),
        "duration_ms": outcome.duration_ms,
    }
    optional = {
        "error_type": scrub_identifier(outcome.error_type),
        "error_message": message,
        "stack_trace": stack,
        "stack_hash": scrub_key(stack_hash),
        "memories_retrieved": outcome.memories_retrieved,
        "retrieval_sources": _scrubbed_json(outcome.retrieval_sources, identifiers=True),
        "files_written": _scrubbed_json(outcome.files_written, identifiers=True),
        "attributes": _scrubbed_json(outcome.attributes),
        "content": scrub_text(outcome.content),
    }
    sets.update({k: v for k, v in optional.items() if v is not None})
    return sets


def decode_row(row: sqlite3.Row | Mapping[str, Any]) -> dict[str, Any]:
    """A result row as a dict with the JSON columns decoded (empty lists, not NULL)."""
    out = dict(row)
    for name in JSON_COLUMNS:
        if name in out:
            raw = out[name]
            out[name] = json.loads(raw) if raw else ({} if name == "attributes" else [])
    return out
