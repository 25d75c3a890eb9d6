"""Live OpenTelemetry spans for recorded attempts, so task executions join distributed traces.

When ``opentelemetry`` is imported and a real tracer provider is configured (anything but the
API's default proxy / no-op provider), each attempt the Recorder tracks becomes a span and the
row takes that span's ``trace_id``, ``span_id`` and parent. Otherwise nothing here runs:
``start`` returns None after one ``sys.modules`` lookup, and opentelemetry is never imported by
taskexec (it is the optional ``otel`` extra).

Parenting (which trace the attempt joins):

- no ``trace_id`` given: a child of the current span (or a new root when there is none); an
  explicit ``parent_span_id`` is kept as the parent, in the current trace or a new one;
- ``trace_id`` given and equal to the current span's trace: a child of the current span;
- ``trace_id`` given and different (or no current span), e.g. a retry of a run begun elsewhere:
  a child of a remote parent in that trace: ``parent_span_id`` if given, else ``retry_of`` (the
  previous attempt), else a fixed per-trace placeholder id. The row's ``parent_span_id`` is
  always the span's real parent, so rows and exported spans agree.

The span carries the ``taskexec.*`` attributes that ``taskexec import-otlp`` reads back (see
``docs/scale.md``), so a Collector's output reproduces the rows. Free text put on the span
(messages, stack traces, attributes) is scrubbed first: spans leave the process.
"""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .model import FAILURE_STATUSES, TaskExecution, check_span_id, check_trace_id, format_ts
from .scrub import scrub_text, scrub_value

if TYPE_CHECKING:
    from .recorder import Run

_TRACER: tuple[Any, Any] | None = None  # (provider, tracer) for the provider last seen
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _nanos(value: datetime) -> int:
    """Unix nanoseconds of an aware datetime, exactly (so span times equal the row's)."""
    return (value - _EPOCH) // timedelta(microseconds=1) * 1000


def _tracer() -> Any | None:
    """The taskexec tracer of the configured provider, or None when tracing is not set up."""
    global _TRACER
    if "opentelemetry.trace" not in sys.modules:  # nobody configured OpenTelemetry
        return None
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    cached = _TRACER
    if cached is not None and cached[0] is provider:
        return cached[1]
    from . import __version__

    tracer = provider.get_tracer("taskexec", __version__)
    _TRACER = (provider, tracer)
    return tracer


def placeholder_parent(trace_id: str) -> str:
    """A stable span id standing for "the start of this trace" when no real parent is known."""
    digest = hashlib.sha256(f"taskexec-root\x1f{trace_id}".encode()).hexdigest()
    return digest[:16] if digest[:16] != "0" * 16 else digest[16:32]


class LiveSpan:
    """The OpenTelemetry span of one attempt; made current for the body, ended by ``end``."""

    def __init__(self, span: Any, token: Any, parent_span_id: str | None) -> None:
        self.span, self._token = span, token
        context = span.get_span_context()
        self.trace_id = format(context.trace_id, "032x")
        self.span_id = format(context.span_id, "016x")
        self.parent_span_id = parent_span_id

    def discard(self) -> None:
        """End the span and restore the context when the attempt could not even start."""
        from opentelemetry import context

        try:
            self.span.end()
        finally:
            context.detach(self._token)

    def end(self, run: Run, duration_ms: float, error: dict[str, Any]) -> None:
        """Record the outcome on the span (status, exception event, metadata), end and detach."""
        from opentelemetry import context
        from opentelemetry.trace import Status, StatusCode

        span, record = self.span, run.record
        try:
            ended_at = record.started_at + timedelta(milliseconds=duration_ms)
            attrs: dict[str, Any] = {
                "taskexec.status": run.status,
                "taskexec.duration_ms": float(duration_ms),
            }
            if run.memories_retrieved is not None:
                attrs["taskexec.memories_retrieved"] = run.memories_retrieved
            if run.retrieval_sources:
                attrs["taskexec.retrieval_sources"] = scrub_value(list(run.retrieval_sources))
            if run.files_written:
                attrs["taskexec.files_written"] = scrub_value(list(run.files_written))
            if run.attributes:
                attrs["taskexec.attributes"] = _json(run.attributes)
            if run.content:
                attrs["taskexec.content"] = scrub_text(run.content)
            if error.get("stack_hash"):
                attrs["taskexec.stack_hash"] = error["stack_hash"]
            if error.get("error_type"):
                attrs["error.type"] = error["error_type"]
            span.set_attributes(attrs)
            exception = {
                "exception.type": error.get("error_type"),
                "exception.message": scrub_text(error.get("error_message")),
                "exception.stacktrace": scrub_text(error.get("stack_trace")),
            }
            end_ns = _nanos(ended_at)
            if any(exception.values()):
                event = {k: v for k, v in exception.items() if v}
                span.add_event("exception", event, timestamp=end_ns)
            if run.status in FAILURE_STATUSES:
                description = (
                    exception["exception.message"] or error.get("error_type") or run.status
                )
                span.set_status(Status(StatusCode.ERROR, description))
            span.end(end_time=end_ns)
        finally:
            context.detach(self._token)


def start(record: TaskExecution, trace_given: bool) -> LiveSpan | None:
    """Start the attempt's span if a tracer provider is configured; None otherwise (cheap).

    ``trace_given`` says whether the caller chose ``record.trace_id`` (else it is a placeholder
    the span's own trace id replaces).
    """
    tracer = _tracer()
    if tracer is None:
        return None
    from opentelemetry import context, trace
    from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, TraceFlags

    current = trace.get_current_span().get_span_context()
    trace_id = record.trace_id if trace_given else None
    if trace_id is None and current.is_valid:
        trace_id = format(current.trace_id, "032x")
    parent = record.parent_span_id
    if parent is not None and trace_id is None:  # a parent but no trace to join: keep the parent
        trace_id = record.trace_id
    if parent is None and trace_id is not None:
        same = current.is_valid and format(current.trace_id, "032x") == trace_id
        parent = None if same else (record.retry_of or placeholder_parent(trace_id))
    if trace_id is not None and parent is not None:
        check_trace_id(trace_id)
        check_span_id(parent, "parent_span_id")
        remote = SpanContext(
            int(trace_id, 16),
            int(parent, 16),
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        ctx = trace.set_span_in_context(NonRecordingSpan(remote))
    else:
        ctx = None  # the current context: a child of the current span, or a new root
        parent = format(current.span_id, "016x") if current.is_valid else None
    links = []
    if record.retry_of is not None and record.retry_of != parent and trace_id is not None:
        previous = SpanContext(int(trace_id, 16), int(record.retry_of, 16), is_remote=True)
        links.append(Link(previous, {"taskexec.link": "retry_of"}))
    attributes: dict[str, Any] = {
        "taskexec.task_slug": record.task_slug,
        "taskexec.task_id": record.task_id,
        "taskexec.attempt": record.attempt,
        "taskexec.idempotency_key": record.idempotency_key,
    }
    optional = {
        "taskexec.retry_of": record.retry_of,
        "taskexec.scheduled_at": format_ts(record.scheduled_at) if record.scheduled_at else None,
        "taskexec.host": scrub_text(record.host),
        "taskexec.pid": record.pid,
        "taskexec.parents": _json(record.parents),
        "taskexec.causes": _json(record.causes),
    }
    attributes.update((k, v) for k, v in optional.items() if v)
    span = tracer.start_span(
        record.task_slug,
        context=ctx,
        attributes=attributes,
        links=links,
        start_time=_nanos(record.started_at),
        record_exception=False,  # the Recorder records it, scrubbed, in ``end``
        set_status_on_exception=False,
    )
    token = context.attach(trace.set_span_in_context(span))
    return LiveSpan(span, token, parent)


def _json(value: Any) -> str | None:
    """JSON text of a (scrubbed) list or mapping, for attributes OpenTelemetry cannot nest."""
    if not value:
        return None
    data = list(value) if isinstance(value, tuple) else dict(value)
    return json.dumps(scrub_value(data), ensure_ascii=False, default=str)
