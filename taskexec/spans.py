"""The OpenTelemetry attribute names of a task execution: one table, read by the live spans
(``tracing``) and by the OTLP importer and exporter (``ingest.otlp``), so a span written by one
is read back by the other. Pure: no OpenTelemetry import.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from .model import format_ts

PREFIX = "taskexec."

Kind = Literal["str", "int", "float", "str_list", "json", "ts"]

#: Record field -> (span attribute, how its value is encoded on the span).
SPAN_ATTRIBUTES: dict[str, tuple[str, Kind]] = {
    "task_slug": ("taskexec.task_slug", "str"),
    "task_id": ("taskexec.task_id", "str"),
    "attempt": ("taskexec.attempt", "int"),
    "status": ("taskexec.status", "str"),
    "provenance": ("taskexec.provenance", "str"),
    "idempotency_key": ("taskexec.idempotency_key", "str"),
    "retry_of": ("taskexec.retry_of", "str"),
    "scheduled_at": ("taskexec.scheduled_at", "ts"),
    "duration_ms": ("taskexec.duration_ms", "float"),
    "memories_retrieved": ("taskexec.memories_retrieved", "int"),
    "stack_hash": ("taskexec.stack_hash", "str"),
    "content": ("taskexec.content", "str"),
    "host": ("taskexec.host", "str"),
    "pid": ("taskexec.pid", "int"),
    "retrieval_sources": ("taskexec.retrieval_sources", "str_list"),
    "files_written": ("taskexec.files_written", "str_list"),
    "parents": ("taskexec.parents", "json"),
    "causes": ("taskexec.causes", "json"),
    "attributes": ("taskexec.attributes", "json"),
}
#: Span attribute -> record field (the reverse of ``SPAN_ATTRIBUTES``).
FIELD_OF: dict[str, str] = {name: field for field, (name, _) in SPAN_ATTRIBUTES.items()}
KIND_OF: dict[str, Kind] = {name: kind for name, kind in SPAN_ATTRIBUTES.values()}

#: Fields a live span carries from its start; the rest are set when the attempt ends.
START_FIELDS = (
    "task_slug",
    "task_id",
    "attempt",
    "idempotency_key",
    "retry_of",
    "scheduled_at",
    "host",
    "pid",
    "parents",
    "causes",
    "attributes",
    "content",
)
#: Fields a live span gets when the attempt ends (attributes and content again when changed).
END_FIELDS = (
    "status",
    "duration_ms",
    "memories_retrieved",
    "retrieval_sources",
    "files_written",
    "attributes",
    "content",
    "stack_hash",
)

# Semantic-convention names taskexec reads or writes beside its own.
ERROR_TYPE = "error.type"
HOST_NAME = "host.name"
PROCESS_PID = "process.pid"
EXCEPTION_TYPE = "exception.type"
EXCEPTION_MESSAGE = "exception.message"
EXCEPTION_STACKTRACE = "exception.stacktrace"


def to_span(values: Mapping[str, Any], fields: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Span attributes for a row's values by column name (JSON columns as stored: JSON text,
    or lists/dicts); empty values are left out."""
    out: dict[str, Any] = {}
    for field in fields if fields is not None else tuple(SPAN_ATTRIBUTES):
        value = values.get(field)
        if value is None or value == "" or value == () or value == []:
            continue
        name, kind = SPAN_ATTRIBUTES[field]
        if kind == "str_list":
            value = json.loads(value) if isinstance(value, str) else list(value)
        elif kind == "json" and not isinstance(value, str):
            if not value:
                continue
            data = list(value) if isinstance(value, tuple) else value
            value = json.dumps(data, ensure_ascii=False, default=str)
        elif kind == "float":
            value = float(value)
        elif kind == "ts" and not isinstance(value, str):
            value = format_ts(value, field)
        out[name] = value
    return out
