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
(messages, stack traces, attributes) comes from the row's encoding, scrubbed once.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping
from typing import Any

from . import spans
from .model import (
    FAILURE_STATUSES,
    Outcome,
    TaskExecution,
    check_span_id,
    check_trace_id,
    to_unix_nanos,
)

_TRACER: tuple[Any, Any] | None = None  # (provider, tracer) for the provider last seen


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
    from .version import __version__

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
            if self._token is not None:
                context.detach(self._token)

    def end(self, outcome: Outcome, values: Mapping[str, Any]) -> None:
        """Record the outcome on the span (status, exception event, metadata), end and detach.

        ``values`` are the row's columns as ``rows.encode_outcome`` made them: already scrubbed.
        """
        from opentelemetry import context
        from opentelemetry.trace import Status, StatusCode

        span = self.span
        try:
            attrs = spans.to_span(values, spans.END_FIELDS)
            if values.get("error_type"):
                attrs[spans.ERROR_TYPE] = values["error_type"]
            span.set_attributes(attrs)
            exception = {
                spans.EXCEPTION_TYPE: values.get("error_type"),
                spans.EXCEPTION_MESSAGE: values.get("error_message"),
                spans.EXCEPTION_STACKTRACE: values.get("stack_trace"),
            }
            end_ns = to_unix_nanos(outcome.ended_at)
            if any(exception.values()):
                event = {k: v for k, v in exception.items() if v}
                span.add_event("exception", event, timestamp=end_ns)
            if outcome.status in FAILURE_STATUSES:
                description = (
                    exception[spans.EXCEPTION_MESSAGE] or values.get("error_type") or outcome.status
                )
                span.set_status(Status(StatusCode.ERROR, description))
            span.end(end_time=end_ns)
        finally:
            if self._token is not None:
                context.detach(self._token)


def active() -> bool:
    """Whether live spans are being made (OpenTelemetry imported and a provider configured)."""
    return _tracer() is not None


def start(
    record: TaskExecution, values: Mapping[str, Any], trace_given: bool, *, attach: bool = True
) -> LiveSpan | None:
    """Start the attempt's span if a tracer provider is configured; None otherwise (cheap).

    ``values`` are the record's row values by column (``rows.encode_record``: scrubbed).
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
    attributes = spans.to_span(values, spans.START_FIELDS)
    span = tracer.start_span(
        values.get("task_slug") or record.task_slug,  # the scrubbed slug, as on the row
        context=ctx,
        attributes=attributes,
        links=links,
        start_time=to_unix_nanos(record.started_at),
        record_exception=False,  # the Recorder records it, scrubbed, in ``end``
        set_status_on_exception=False,
    )
    # Attached only around a ``with`` body: an event-driven start and finish may run on
    # different threads, and a context token must be detached where it was attached.
    token = context.attach(trace.set_span_in_context(span)) if attach else None
    return LiveSpan(span, token, parent)
