"""Live OpenTelemetry: with an SDK tracer provider the Recorder's rows carry the real span ids,
join the surrounding trace, record status and exceptions; without one nothing changes."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from opentelemetry.util._once import Once

from taskexec.ingest.otlp import encode_attributes
from taskexec.recorder import Recorder
from taskexec.tracing import placeholder_parent


@pytest.fixture
def exporter(monkeypatch):
    """A global SDK tracer provider exporting to memory, removed again after the test."""
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", Once())
    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    trace.set_tracer_provider(provider)
    yield memory
    provider.shutdown()


@pytest.fixture
def rec(tmp_path):
    with Recorder(tmp_path / "t.db") as recorder:
        yield recorder


def rows(rec: Recorder) -> list[dict]:
    conn = sqlite3.connect(rec.store.path)
    conn.row_factory = sqlite3.Row
    return [dict(r) for r in conn.execute("SELECT * FROM task_executions ORDER BY id")]


def hex_ids(span) -> tuple[str, str, str | None]:
    ctx = span.get_span_context()
    parent = format(span.parent.span_id, "016x") if span.parent else None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x"), parent


def test_span_ids_are_the_recorded_ids_inside_a_surrounding_trace(exporter, rec):
    tracer = trace.get_tracer("app")
    with (
        tracer.start_as_current_span("scheduler tick") as outer,
        rec.track("daily_reflection", attributes={"k": "v"}) as run,
    ):
        run.retrieved(3, ["notes"])
        with tracer.start_as_current_span("llm call"):  # the body's spans nest under ours
            pass
    spans = {s.name: s for s in exporter.get_finished_spans()}
    task, inner = spans["daily_reflection"], spans["llm call"]
    (row,) = rows(rec)
    trace_id, span_id, parent = hex_ids(task)
    assert (row["trace_id"], row["span_id"], row["parent_span_id"]) == (trace_id, span_id, parent)
    assert trace_id == format(outer.get_span_context().trace_id, "032x")
    assert parent == format(outer.get_span_context().span_id, "016x")
    assert inner.parent.span_id == task.get_span_context().span_id
    assert task.status.status_code == StatusCode.UNSET
    assert task.attributes["taskexec.task_slug"] == "daily_reflection"
    assert task.attributes["taskexec.idempotency_key"] == row["idempotency_key"]
    assert task.attributes["taskexec.memories_retrieved"] == 3
    assert json.loads(task.attributes["taskexec.attributes"]) == {"k": "v"}
    assert (
        task.start_time
        == int(
            (
                datetime.fromisoformat(row["started_at"]) - datetime(1970, 1, 1, tzinfo=UTC)
            ).total_seconds()
            * 1e6
        )
        * 1000
    )
    assert trace.get_current_span() is trace.INVALID_SPAN  # the context was restored


def test_failure_sets_error_status_and_a_scrubbed_exception_event(exporter, rec):
    with pytest.raises(ValueError), rec.track("import"):
        raise ValueError("bad row for jane@example.com")
    (span,) = exporter.get_finished_spans()
    (row,) = rows(rec)
    assert row["status"] == "failed" and row["span_id"] == hex_ids(span)[1]
    assert span.status.status_code == StatusCode.ERROR
    assert span.status.description == "bad row for <email>"
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "ValueError"
    assert event.attributes["exception.message"] == "bad row for <email>"
    assert "jane@" not in event.attributes["exception.stacktrace"]
    assert span.attributes["taskexec.stack_hash"] == row["stack_hash"]
    assert span.attributes["error.type"] == "ValueError"


def test_retries_stay_in_one_trace(exporter, rec):
    calls = []

    @rec.task("flaky", retries=2, backoff=0)
    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise TimeoutError("slow")
        return "ok"

    assert flaky() == "ok"
    spans = sorted(exporter.get_finished_spans(), key=lambda s: s.start_time)
    attempts = rows(rec)
    assert [r["attempt"] for r in attempts] == [1, 2, 3]
    assert [r["status"] for r in attempts] == ["timeout", "timeout", "success"]
    assert {r["trace_id"] for r in attempts} == {hex_ids(spans[0])[0]}
    for span, row in zip(spans, attempts, strict=True):
        assert (row["trace_id"], row["span_id"], row["parent_span_id"]) == hex_ids(span)
    # no surrounding span: attempt 1 is the root, each retry hangs off the attempt before it
    assert attempts[0]["parent_span_id"] is None
    assert attempts[1]["retry_of"] == attempts[1]["parent_span_id"] == attempts[0]["span_id"]
    assert attempts[2]["retry_of"] == attempts[1]["span_id"]


def test_explicit_trace_id_without_a_parent(exporter, rec):
    given = "4bf92f3577b34da6a3ce929d0e0e4736"
    with rec.track("resume", trace_id=given):
        pass
    (span,) = exporter.get_finished_spans()
    (row,) = rows(rec)
    assert row["trace_id"] == given == hex_ids(span)[0]
    assert row["parent_span_id"] == placeholder_parent(given) == hex_ids(span)[2]


def test_live_span_through_otlp_json_reproduces_the_row(exporter, rec, tmp_path):
    """A fleet's path: span -> Collector file (OTLP/JSON) -> import-otlp -> the same row."""
    with (
        pytest.raises(KeyError),
        rec.track("digest", scheduled_at=datetime(2025, 1, 1, tzinfo=UTC)) as run,
    ):
        run.wrote("out/a.md")
        run.summary("wrote the digest")
        raise KeyError("missing")
    (span,) = exporter.get_finished_spans()
    trace_id, span_id, parent = hex_ids(span)
    otlp_span = {
        "traceId": trace_id,
        "spanId": span_id,
        "parentSpanId": parent or "",
        "name": span.name,
        "kind": 1,
        "startTimeUnixNano": str(span.start_time),
        "endTimeUnixNano": str(span.end_time),
        "attributes": encode_attributes(dict(span.attributes)),
        "events": [
            {
                "name": e.name,
                "timeUnixNano": str(e.timestamp),
                "attributes": encode_attributes(dict(e.attributes)),
            }
            for e in span.events
        ],
        "status": {"code": 2, "message": span.status.description},
    }
    path = tmp_path / "collector.json"
    path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [otlp_span]}]}]}))
    from taskexec.ingest.otlp import import_files

    other = tmp_path / "central.db"
    assert import_files([str(path)], str(other)).inserted == 1
    conn = sqlite3.connect(other)
    conn.row_factory = sqlite3.Row
    imported = dict(conn.execute("SELECT * FROM task_executions").fetchone())
    (local,) = rows(rec)
    different = {k for k in local if local[k] != imported[k]}
    assert different - {"id"} == {"created_at", "provenance"}, different
    assert imported["provenance"] == "otlp"
    # so merging the host's own file into the central one adds nothing
    from taskexec.ingest.merge import merge

    assert merge([rec.store.path], other).total.duplicates == 1


def test_no_provider_means_no_spans_and_no_import(tmp_path):
    """Without a configured provider, recording never imports opentelemetry at all."""
    code = f"""
import sys
from taskexec import Recorder
with Recorder({str(tmp_path / "x.db")!r}) as rec:
    with rec.track("t", trace_id="4bf92f3577b34da6a3ce929d0e0e4736") as run:
        pass
    row = rec.store.conn.execute("SELECT parent_span_id FROM task_executions").fetchone()
assert row[0] is None, row[0]
assert not any(m.startswith("opentelemetry") for m in sys.modules), "opentelemetry imported"
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


def test_api_without_sdk_provider_changes_nothing(rec):
    """opentelemetry imported (by this test module) but no provider set: plain taskexec ids."""
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    with rec.track("t", trace_id="4bf92f3577b34da6a3ce929d0e0e4736") as run:
        span_id = run.span_id
    (row,) = rows(rec)
    assert row["span_id"] == span_id and row["parent_span_id"] is None


def test_async_attempts_get_spans_too(exporter, rec):
    import asyncio

    async def main():
        async with rec.track("async job") as run:
            await asyncio.sleep(0)
            return run.span_id

    span_id = asyncio.run(main())
    (span,) = exporter.get_finished_spans()
    assert hex_ids(span)[1] == span_id == rows(rec)[0]["span_id"]


def test_explicit_parent_is_kept(exporter, rec):
    parent = "00f067aa0ba902b7"
    tracer = trace.get_tracer("app")
    with rec.track("orphan", parent_span_id=parent):  # no trace, no current span
        pass
    with tracer.start_as_current_span("tick") as tick, rec.track("child", parent_span_id=parent):
        pass
    spans = {s.name: s for s in exporter.get_finished_spans()}
    orphan, child = rows(rec)
    assert orphan["parent_span_id"] == parent == hex_ids(spans["orphan"])[2]
    assert child["parent_span_id"] == parent == hex_ids(spans["child"])[2]
    assert child["trace_id"] == format(tick.get_span_context().trace_id, "032x")
