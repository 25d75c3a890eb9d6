"""OpenTelemetry OTLP/JSON <-> ``TaskExecution``: import spans, export rows as spans.

The JSON follows the OTLP specification's "JSON Protobuf Encoding": lowerCamelCase keys,
``traceId``/``spanId`` as hex (either case), 64-bit integers as decimal strings or numbers, enums
as integers, ``resourceSpans -> scopeSpans -> spans``. A file holds one document, or one document
per line as the Collector's ``file`` exporter writes it.

Mapping (the full table is in ``docs/scale.md``): a span is a task execution when it carries
``taskexec.task_slug`` or ``taskexec.task_id`` (written by taskexec itself) or the semantic
conventions' ``cicd.pipeline.task.name``; anything else is counted as "not a task" and skipped.
Fields OpenTelemetry has no name for travel as ``taskexec.<column>`` attributes, so an export
carries everything needed to rebuild the rows exactly, and re-importing is idempotent (same
idempotency key, same span id).
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from .. import spans
from ..errors import BadInput, InvalidRecord
from ..model import (
    FAILURE_STATUSES,
    STATUSES,
    TaskExecution,
    from_unix_nanos,
    parse_ts,
    to_unix_nanos,
)
from .backfill import brief, open_error, too_deep

PREFIX = spans.PREFIX
SCOPE_NAME = "taskexec"
#: Span attributes that name the task (checked in this order); at least one makes a task span.
SLUG_KEYS = ("taskexec.task_slug", "cicd.pipeline.task.name")
ID_KEYS = ("taskexec.task_id",)
#: OTLP status codes (opentelemetry.proto.trace.v1.Status.StatusCode).
STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2
SPAN_KIND_INTERNAL = 1
#: Spans per exported document (one document per line, like the Collector's file exporter).
EXPORT_BATCH = 500

#: Standard attributes read into columns rather than kept in ``attributes``.
_CONSUMED = frozenset((*SLUG_KEYS, spans.HOST_NAME, spans.PROCESS_PID, spans.ERROR_TYPE))
#: Record fields an exported span carries as ``taskexec.*`` attributes (host and pid go on the
#: resource, as the semantic conventions put them).
_EXPORTED = tuple(f for f in spans.SPAN_ATTRIBUTES if f not in ("host", "pid"))
#: Enum names are not valid OTLP/JSON, but some producers write them; accept them anyway.
_STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
_HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
#: How deeply an attribute value may nest arrays and kvlists (as ``backfill.MAX_DEPTH``).
MAX_DEPTH = 32
#: The first nanosecond past 9999-12-31T23:59:59.999999Z: later times cannot be stored.
MAX_UNIX_NANOS = 253_402_300_800 * 10**9
#: A ``\\uD800``-``\\uDFFF`` escape in the raw JSON (a lone one is text SQLite cannot store).
_SURROGATE_ESCAPE_RE = re.compile(rb"\\u[dD][89a-fA-F]")
#: What one span (or one resource) may raise on input nobody anticipated.
_SPAN_ERRORS = (AttributeError, KeyError, TypeError, ValueError, OverflowError, RecursionError)


@dataclass
class ImportSummary:
    """What an import saw: spans, task spans, non-task spans (skipped, not errors), problems."""

    files: int = 0
    spans: int = 0
    tasks: int = 0
    not_tasks: int = 0
    inserted: int = 0
    duplicates: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every file and every task span could be read."""
        return not self.problems


# -- AnyValue / KeyValue ---------------------------------------------------------------------


def decode_value(value: Any, depth: int = 0) -> Any:
    """An OTLP ``AnyValue`` as a Python value (``{}`` is null; bytes stay base64 text).

    Arrays and kvlists nested more than ``MAX_DEPTH`` deep are an InvalidRecord."""
    if not isinstance(value, Mapping) or not value:
        return None
    if "stringValue" in value:
        return value["stringValue"]
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if ("arrayValue" in value or "kvlistValue" in value) and depth >= MAX_DEPTH:
        raise InvalidRecord("attributes", f"a value nested deeper than {MAX_DEPTH} levels")
    if "arrayValue" in value:
        return [decode_value(v, depth + 1) for v in (value["arrayValue"] or {}).get("values", ())]
    if "kvlistValue" in value:
        return decode_attributes((value["kvlistValue"] or {}).get("values", ()), depth + 1)
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def decode_attributes(items: Any, depth: int = 0) -> dict[str, Any]:
    """A list of OTLP ``KeyValue`` as a dict (later keys win, as in a map)."""
    if not items:
        return {}
    if not isinstance(items, list):
        raise ValueError("attributes must be a list of {key, value}")
    return {kv["key"]: decode_value(kv.get("value"), depth) for kv in items}


def encode_value(value: Any) -> dict[str, Any]:
    """A JSON-able Python value as an OTLP ``AnyValue`` (ints as strings, per the spec)."""
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value if math.isfinite(value) else str(value)}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, Mapping):
        return {"kvlistValue": {"values": encode_attributes(value)}}
    if isinstance(value, list | tuple):
        return {"arrayValue": {"values": [encode_value(v) for v in value]}}
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode()}
    return {"stringValue": str(value)}


def encode_attributes(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A dict as a list of OTLP ``KeyValue``."""
    return [{"key": k, "value": encode_value(v)} for k, v in values.items()]


# -- import ----------------------------------------------------------------------------------


def _hex_id(value: Any, size: int, name: str) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or len(value) != size:
        raise InvalidRecord(name, f"expected {size} hex characters, got {brief(value)}")
    lowered = value.lower()
    if lowered.strip("0123456789abcdef") or lowered == "0" * size:
        raise InvalidRecord(
            name, f"expected {size} hex characters, not all zero; got {brief(value)}"
        )
    return lowered


def _nanos(value: Any, name: str) -> int:
    """A fixed64 unix-nanoseconds field: a decimal string or a number."""
    try:
        nanos = int(value)
    except (TypeError, ValueError):
        raise InvalidRecord(name, f"expected unix nanoseconds, got {brief(value)}") from None
    if nanos < 0:
        raise InvalidRecord(name, f"negative time {nanos}")
    if nanos >= MAX_UNIX_NANOS:
        raise InvalidRecord(name, f"out of range: {str(nanos)[:30]} is past the year 9999")
    return nanos


def _is_task(attrs: Mapping[str, Any]) -> bool:
    return any(isinstance(attrs.get(k), str) and attrs[k] for k in (*SLUG_KEYS, *ID_KEYS))


def span_to_record(
    span: Mapping[str, Any], resource: Mapping[str, Any] | None = None
) -> TaskExecution | None:
    """One OTLP span as a record, or None when it is not a task execution.

    ``resource`` is the decoded resource attributes (``host.name``, ``process.pid`` are used).
    Raises InvalidRecord (naming the field) for a task span that cannot be read.
    """
    attrs = decode_attributes(span.get("attributes"))
    if not _is_task(attrs):
        return None
    resource = resource or {}
    slug = next((attrs[k] for k in SLUG_KEYS if isinstance(attrs.get(k), str) and attrs[k]), None)
    task_id = attrs.get(PREFIX + "task_id")
    slug = slug or span.get("name") or task_id
    trace_id = _hex_id(span.get("traceId"), 32, "traceId")
    span_id = _hex_id(span.get("spanId"), 16, "spanId")
    if trace_id is None or span_id is None:
        raise InvalidRecord("traceId" if trace_id is None else "spanId", "missing")
    start = _nanos(span.get("startTimeUnixNano"), "startTimeUnixNano")
    if not start:
        raise InvalidRecord("startTimeUnixNano", "missing or zero")
    end = _nanos(span.get("endTimeUnixNano") or 0, "endTimeUnixNano")
    status = span.get("status") or {}
    raw_code = status.get("code") or 0
    code = int(_STATUS_NAMES.get(raw_code, raw_code) if isinstance(raw_code, str) else raw_code)
    etype, message, stack = _exception(span.get("events"))
    foreign = PREFIX + "status" not in attrs  # taskexec's own spans say exactly what they had
    if foreign and code == STATUS_ERROR and not (etype or message or stack):
        message = status.get("message") or None
    fields: dict[str, Any] = {
        "task_slug": slug,
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": _hex_id(span.get("parentSpanId"), 16, "parentSpanId"),
        "started_at": from_unix_nanos(start),
        "ended_at": from_unix_nanos(end) if end else None,
        "error_type": etype,
        "error_message": message,
        "stack_trace": stack,
        "provenance": "otlp",
        "host": _typed(str, attrs.get("host.name", resource.get("host.name"))),
        "pid": _typed(int, attrs.get("process.pid", resource.get("process.pid"))),
    }
    extra: dict[str, Any] = {}
    for key, value in attrs.items():
        name = spans.FIELD_OF.get(key)
        if name is None:
            if key not in _CONSUMED:
                extra[key] = value
            continue
        kind = spans.KIND_OF[key]
        if kind == "json":
            try:
                fields[name] = json.loads(value) if isinstance(value, str) else value
            except json.JSONDecodeError:
                raise InvalidRecord(key, "not valid JSON") from None
        elif kind == "ts":
            fields[name] = parse_ts(value, key) if value else None
        elif kind == "float":
            fields[name] = float(value) if value is not None else None
        elif value is not None:
            fields[name] = value
    if fields["error_type"] is None and isinstance(attrs.get(spans.ERROR_TYPE), str):
        fields["error_type"] = attrs[spans.ERROR_TYPE]  # semantic conventions' error class
    if fields.get("status") not in STATUSES:
        fields["status"] = "failed" if code == STATUS_ERROR else "success"
    if not _HEX64_RE.match(fields.get("idempotency_key") or ""):
        fields.pop("idempotency_key", None)
    if extra:
        fields["attributes"] = {**extra, **(fields.get("attributes") or {})}
    return TaskExecution(**fields)


def _typed(kind: type, value: Any) -> Any:
    """The value when it has the type the semantic conventions give it, else None (lenient)."""
    return value if type(value) is kind else None


def _exception(events: Any) -> tuple[str | None, str | None, str | None]:
    """(type, message, stacktrace) of the last ``exception`` event, per the semantic conventions."""
    found: tuple[str | None, str | None, str | None] = (None, None, None)
    for event in events or ():
        if isinstance(event, Mapping) and event.get("name") == "exception":
            a = decode_attributes(event.get("attributes"))
            found = (
                a.get("exception.type") or None,
                a.get("exception.message") or None,
                a.get("exception.stacktrace") or None,
            )
    return found


def records_from_document(
    doc: Any, where: str, summary: ImportSummary, *, check_text: bool = False
) -> Iterator[TaskExecution]:
    """Task records of one OTLP/JSON ``TracesData`` document; bad spans go to ``summary``.

    ``check_text``: the document's JSON held a surrogate escape, so each task span's text is
    checked for a lone surrogate (text no UTF-8 file, and so no SQLite column, can hold)."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("resourceSpans", []), list):
        summary.problems.append(
            f"{where}: not an OTLP/JSON traces document (no resourceSpans list)"
        )
        return
    for r_index, resource_spans in enumerate(doc.get("resourceSpans") or ()):
        try:
            resource = decode_attributes((resource_spans.get("resource") or {}).get("attributes"))
            scopes = resource_spans.get("scopeSpans") or ()
        except InvalidRecord as exc:
            summary.problems.append(f"{where}: resourceSpans[{r_index}].resource: {exc}")
            continue
        except _SPAN_ERRORS as exc:
            summary.problems.append(
                f"{where}: resourceSpans[{r_index}]: unreadable ({_error_text(exc)})"
            )
            continue
        for s_index, scope in enumerate(scopes):
            spans = scope.get("spans") if isinstance(scope, Mapping) else None
            for index, span in enumerate(spans or ()):
                summary.spans += 1
                label = f"resourceSpans[{r_index}].scopeSpans[{s_index}].spans[{index}]"
                try:
                    record = span_to_record(span, resource)
                    if record is not None:
                        _check_storable(record, span if check_text else None)
                except InvalidRecord as exc:
                    summary.tasks += 1
                    summary.problems.append(f"{where}: {label}: {exc}")
                    continue
                except _SPAN_ERRORS as exc:
                    summary.problems.append(
                        f"{where}: {label}: unreadable span ({_error_text(exc)})"
                    )
                    continue
                if record is None:
                    summary.not_tasks += 1
                else:
                    summary.tasks += 1
                    yield record


def _error_text(exc: BaseException) -> str:
    """An unexpected error in a few words (no multi-line or megabyte messages)."""
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def _check_storable(record: TaskExecution, span: Any = None) -> None:
    """InvalidRecord when a record could be built but not stored: JSON fields nested past
    ``MAX_DEPTH`` (from ``taskexec.attributes`` / ``parents`` JSON text), or, when ``span`` is
    given, text holding a lone surrogate."""
    for name in ("attributes", "parents", "causes"):
        value = getattr(record, name)
        if value and too_deep(dict(value) if name == "attributes" else list(value), MAX_DEPTH + 1):
            raise InvalidRecord(name, f"nested deeper than {MAX_DEPTH} levels")
    if span is not None:
        try:
            json.dumps(span, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise InvalidRecord(
                "span", "text holds a lone surrogate (a \\ud800-\\udfff escape): not Unicode"
            ) from None
        except (TypeError, ValueError):  # pragma: no cover - parsed JSON always dumps
            pass


def _parse(data: bytes) -> tuple[Any, str | None]:
    """(document, None), or (None, why it is not JSON) for one file or one line."""
    try:
        return json.loads(data), None
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    except RecursionError:
        return None, "invalid JSON: nested too deeply to parse"
    except ValueError as exc:  # a number of over 4,300 digits
        return None, f"invalid JSON: {str(exc).split(';')[0][:200]}"


def _open_regular(path: str) -> int:
    """A descriptor of the regular file ``path`` (never blocking on a FIFO); BadInput else."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise BadInput(path, open_error(path, exc)) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = {stat.S_IFIFO: "a FIFO", stat.S_IFDIR: "a directory", stat.S_IFSOCK: "a socket"}
        raise BadInput(path, f"not a regular file ({kind.get(stat.S_IFMT(mode), 'special')})")
    return fd


def records_from_file(path: str, summary: ImportSummary) -> Iterator[TaskExecution]:
    """Records of one file: a single document, or one document per line (file exporter).

    Never raises for bad input: what cannot be read goes to ``summary.problems``."""
    summary.files += 1
    try:
        fd = _open_regular(path)
    except BadInput as exc:
        summary.problems.append(str(exc))
        return
    try:
        with os.fdopen(fd, "rb") as handle:
            first = handle.readline()
            doc, error = _parse(first) if first.strip() else (None, None)
            if error is not None:  # not one document per line: a pretty-printed document
                text = first + handle.read()
                doc, error = _parse(text)
                if error is not None:
                    summary.problems.append(f"{path}: {error}")
                    return
                yield from records_from_document(
                    doc, path, summary, check_text=_has_surrogate(text)
                )
                return
            if doc is not None:
                yield from records_from_document(
                    doc, f"{path}:1", summary, check_text=_has_surrogate(first)
                )
            for number, line in enumerate(handle, 2):
                if not line.strip():
                    continue
                doc, error = _parse(line)
                if error is not None:
                    summary.problems.append(f"{path}:{number}: {error}")
                    continue
                yield from records_from_document(
                    doc, f"{path}:{number}", summary, check_text=_has_surrogate(line)
                )
    except OSError as exc:
        summary.problems.append(f"{path}: cannot read: {exc.strerror or exc}")


def _has_surrogate(data: bytes) -> bool:
    return b"\\u" in data and _SURROGATE_ESCAPE_RE.search(data) is not None


def import_files(paths: Iterable[str], db: str) -> ImportSummary:
    """Import OTLP/JSON files into ``db``: one idempotent bulk append for all their task spans."""
    from ..db import Store

    summary = ImportSummary()

    def records() -> Iterator[TaskExecution]:
        for path in paths:
            yield from records_from_file(path, summary)

    with Store(db) as store:
        result = store.append_many(records())
    summary.inserted, summary.duplicates = result.inserted, result.duplicates
    return summary


# -- export ----------------------------------------------------------------------------------


def record_to_span(record: TaskExecution) -> dict[str, Any]:
    """One record as an OTLP span (resource fields host/pid are grouped by the caller)."""
    attrs = spans.to_span({f: getattr(record, f) for f in _EXPORTED})

    span: dict[str, Any] = {
        "traceId": record.trace_id,
        "spanId": record.span_id,
        "name": record.task_slug,
        "kind": SPAN_KIND_INTERNAL,
        "startTimeUnixNano": str(to_unix_nanos(record.started_at)),
        "attributes": encode_attributes(attrs),
    }
    if record.parent_span_id:
        span["parentSpanId"] = record.parent_span_id
    if record.ended_at is not None:
        span["endTimeUnixNano"] = str(to_unix_nanos(record.ended_at))
    exception = {
        spans.EXCEPTION_TYPE: record.error_type,
        spans.EXCEPTION_MESSAGE: record.error_message,
        spans.EXCEPTION_STACKTRACE: record.stack_trace,
    }
    if any(exception.values()):
        when = record.ended_at or record.started_at
        span["events"] = [
            {
                "timeUnixNano": str(to_unix_nanos(when)),
                "name": "exception",
                "attributes": encode_attributes({k: v for k, v in exception.items() if v}),
            }
        ]
    if record.status in FAILURE_STATUSES:
        span["status"] = {
            "code": STATUS_ERROR,
            "message": record.error_message or record.error_type or record.status,
        }
    return span


def _present(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def records_to_documents(
    records: Iterable[TaskExecution], *, batch: int = EXPORT_BATCH, version: str = ""
) -> Iterator[dict[str, Any]]:
    """OTLP/JSON ``TracesData`` documents of up to ``batch`` spans, grouped by (host, pid)."""
    chunk: list[TaskExecution] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= batch:
            yield _document(chunk, version)
            chunk = []
    if chunk:
        yield _document(chunk, version)


def _document(records: list[TaskExecution], version: str) -> dict[str, Any]:
    groups: dict[tuple[str | None, int | None], list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault((record.host, record.pid), []).append(record_to_span(record))
    resource_spans = []
    for (host, pid), members in groups.items():
        resource = {"service.name": "taskexec", spans.HOST_NAME: host, spans.PROCESS_PID: pid}
        resource_spans.append(
            {
                "resource": {"attributes": encode_attributes(_present(resource))},
                "scopeSpans": [
                    {"scope": {"name": SCOPE_NAME, "version": version}, "spans": members}
                ],
            }
        )
    return {"resourceSpans": resource_spans}


def export(
    records: Iterable[TaskExecution],
    out: IO[str],
    *,
    version: str = "",
    on_record: Callable[[], None] | None = None,
) -> int:
    """Write records as OTLP/JSON, one document per line (the file exporter's format)."""
    count = 0

    def counted() -> Iterator[TaskExecution]:
        nonlocal count
        for record in records:
            count += 1
            if on_record is not None:
                on_record()
            yield record

    for doc in records_to_documents(counted(), version=version):
        out.write(json.dumps(doc, ensure_ascii=False, separators=(",", ":")))
        out.write("\n")
    return count
