"""OTLP/JSON import of hand-written spec-conformant documents, the Collector's one-document-per-
line output, idempotent re-import, malformed input, and export -> import reproducing the rows."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from taskexec.cli import cli
from taskexec.db import Store
from taskexec.ingest.demo import generate
from taskexec.ingest.otlp import ImportSummary, decode_value, encode_value, records_from_document
from taskexec.model import TaskExecution, idempotency_key

TRACE = "5B8EFFF798038103D269B633813FC60C"  # upper case, as the spec's own example
START = 1_762_322_400_000_000_000  # 2025-11-05T06:00:00Z in unix nanoseconds


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def summary(result) -> dict[str, int]:
    out = {}
    for line in result.stdout.splitlines():
        if m := re.match(r"^([a-z][a-z \-]+):\s+([\d,]+)", line):
            out[m.group(1)] = int(m.group(2).replace(",", ""))
    return out


def rows(db: Path) -> list[dict]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    return [dict(r) for r in conn.execute("SELECT * FROM task_executions ORDER BY started_at, id")]


def kv(key: str, **value) -> dict:
    return {"key": key, "value": value}


def spec_document() -> dict:
    """Three spans as an OpenTelemetry SDK + Collector would send them (plus one HTTP span)."""
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [
                        kv("service.name", stringValue="scheduler"),
                        kv("host.name", stringValue="worker-7"),
                        kv("process.pid", intValue="4242"),
                    ]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "my.scheduler", "version": "1.0"},
                        "spans": [
                            {  # a failed run written by another SDK: status ERROR + exception event
                                "traceId": TRACE,
                                "spanId": "EEE19B7EC3C1B174",
                                "parentSpanId": "",
                                "name": "nightly_export",
                                "kind": 1,
                                "startTimeUnixNano": str(START),
                                "endTimeUnixNano": str(START + 1_500_000_000),
                                "attributes": [
                                    kv("taskexec.task_slug", stringValue="nightly_export"),
                                    kv("taskexec.task_id", stringValue="export-v2"),
                                    kv("taskexec.attempt", intValue="2"),
                                    kv("rows.exported", intValue=17),
                                    kv("dry", boolValue=False),
                                ],
                                "events": [
                                    {
                                        "timeUnixNano": str(START + 1_400_000_000),
                                        "name": "exception",
                                        "attributes": [
                                            kv("exception.type", stringValue="ConnectionError"),
                                            kv(
                                                "exception.message",
                                                stringValue="db down for ops@example.com",
                                            ),
                                            kv(
                                                "exception.stacktrace",
                                                stringValue=(
                                                    "Traceback (most recent call last):\n"
                                                    '  File "/srv/app/export.py", line 3, in run\n'
                                                    "ConnectionError: db down"
                                                ),
                                            ),
                                        ],
                                    }
                                ],
                                "status": {"code": 2, "message": "db down"},
                            },
                            {  # times as JSON numbers, semantic-convention task name, status OK
                                "traceId": TRACE.lower(),
                                "spanId": "00f067aa0ba902b7",
                                "parentSpanId": "EEE19B7EC3C1B174",
                                "name": "lint",
                                "kind": 1,
                                "startTimeUnixNano": START + 2_000_000_000,
                                "endTimeUnixNano": START + 2_250_000_000,
                                "attributes": [
                                    kv("cicd.pipeline.task.name", stringValue="go-lint")
                                ],
                                "status": {"code": 1},
                            },
                            {  # not a task execution: no task attribute
                                "traceId": TRACE,
                                "spanId": "1111111111111111",
                                "name": "GET /health",
                                "kind": 2,
                                "startTimeUnixNano": str(START),
                                "endTimeUnixNano": str(START + 1000),
                                "attributes": [kv("http.request.method", stringValue="GET")],
                            },
                        ],
                    }
                ],
            }
        ]
    }


def test_import_of_a_spec_conformant_document(tmp_path):
    path = tmp_path / "spans.json"
    path.write_text(json.dumps(spec_document(), indent=2))  # one pretty-printed document
    db = tmp_path / "t.db"
    result = run("import-otlp", path, "--db", db)
    assert result.exit_code == 0, result.output
    counts = summary(result)
    assert counts["spans"] == 3 and counts["task spans"] == 2 and counts["not tasks"] == 1
    assert counts["inserted"] == 2
    failed, lint = rows(db)
    assert failed["task_slug"] == "nightly_export" and failed["task_id"] == "export-v2"
    assert failed["trace_id"] == TRACE.lower() and failed["span_id"] == "eee19b7ec3c1b174"
    assert failed["parent_span_id"] is None and failed["attempt"] == 2
    assert failed["status"] == "failed" and failed["provenance"] == "otlp"
    assert failed["started_at"] == "2025-11-05T06:00:00.000000Z"
    assert failed["ended_at"] == "2025-11-05T06:00:01.500000Z" and failed["duration_ms"] == 1500
    assert failed["error_type"] == "ConnectionError"
    assert failed["error_message"] == "db down for <email>"  # scrubbed on the way in
    assert failed["stack_trace"].startswith("Traceback") and failed["stack_hash"]
    assert failed["host"] == "worker-7" and failed["pid"] == 4242
    assert json.loads(failed["attributes"]) == {"rows.exported": 17, "dry": False}
    assert failed["idempotency_key"] == idempotency_key(
        "export-v2", datetime(2025, 11, 5, 6, tzinfo=UTC), 2, host="worker-7", pid=4242
    )
    assert lint["task_slug"] == "go-lint" and lint["task_id"] == "go-lint"
    assert lint["status"] == "success" and lint["parent_span_id"] == "eee19b7ec3c1b174"
    assert lint["duration_ms"] == 250 and lint["error_message"] is None


def test_collector_file_exporter_lines_and_reimport(tmp_path):
    doc = spec_document()
    second = json.loads(json.dumps(doc))
    span = second["resourceSpans"][0]["scopeSpans"][0]["spans"][1]
    span["spanId"] = "A0F067AA0BA902B7"
    span["startTimeUnixNano"] = str(START + 9_000_000_000)
    span["endTimeUnixNano"] = str(START + 9_500_000_000)
    path = tmp_path / "otel-traces.json"
    path.write_text(json.dumps(doc) + "\n" + json.dumps(second) + "\n")
    db = tmp_path / "t.db"
    first = run("import-otlp", path, "--db", db)
    assert first.exit_code == 0, first.stderr
    # the failed span is in both documents (a Collector may deliver twice): one row
    assert summary(first)["inserted"] == 3 and summary(first)["duplicates"] == 1
    assert summary(first)["not tasks"] == 2
    again = run("import-otlp", path, path, "--db", db)
    assert again.exit_code == 0
    assert summary(again)["inserted"] == 0 and summary(again)["duplicates"] == 8
    assert len(rows(db)) == 3


def test_malformed_spans_and_files_are_reported(tmp_path):
    doc = spec_document()
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[0]["spanId"] = "xyz"
    spans.append({**spans[1], "spanId": "2222222222222222", "startTimeUnixNano": "soon"})
    good = tmp_path / "good.json"
    good.write_text(json.dumps(doc))
    broken = tmp_path / "broken.json"
    broken.write_text('{"resourceSpans": [')
    other = tmp_path / "metrics.json"
    other.write_text('{"resourceMetrics": []}\n[1, 2]\n')
    db = tmp_path / "t.db"
    result = run("import-otlp", good, broken, other, "--db", db)
    assert result.exit_code == 1
    err = result.stderr
    assert f"{good}:1: resourceSpans[0].scopeSpans[0].spans[0]: spanId: expected 16 hex" in err
    assert f"{good}:1: resourceSpans[0].scopeSpans[0].spans[3]: startTimeUnixNano" in err
    assert f"{broken}: invalid JSON" in err
    assert f"{other}:2: not an OTLP/JSON traces document" in err
    assert [r["task_slug"] for r in rows(db)] == ["go-lint"]  # the good span still imported


def _rich_records() -> list[TaskExecution]:
    """Records that use every column, including ones OpenTelemetry has no name for."""
    t = datetime(2025, 11, 5, 6, 0, 0, 123456, tzinfo=UTC)
    first = TaskExecution(
        task_slug="digest",
        task_id="digest-v1",
        status="timeout",
        started_at=t,
        ended_at=t + timedelta(seconds=30),
        duration_ms=30000.123456,
        scheduled_at=t.replace(microsecond=0),
        error_type="TimeoutError",
        error_message="took too long",
        stack_trace="Traceback...\nTimeoutError: took too long",
        memories_retrieved=0,
        retrieval_sources=("notes", "calendar"),
        files_written=("out/a.md",),
        parents=({"id": 1, "kind": "note"}, "raw"),
        causes=("abc",),
        host="h1",
        pid=10,
        content="digest of the day",
        attributes={"n": 1, "f": 1.0, "nested": {"list": [1, "a", None]}, "none": None},
    )
    retry = TaskExecution(
        task_slug="digest",
        task_id="digest-v1",
        attempt=2,
        retry_of=first.span_id,
        trace_id=first.trace_id,
        parent_span_id=first.span_id,
        started_at=t + timedelta(minutes=1),
        scheduled_at=t.replace(microsecond=0),
        status="success",
        host="h2",
        pid=None,
    )
    running = TaskExecution(task_slug="sync", status="running", started_at=t, host=None)
    cancelled = TaskExecution(
        task_slug="sync",
        status="cancelled",
        started_at=t,
        attempt=2,
        ended_at=t,
        provenance="backfill",
        error_type="KeyboardInterrupt",
    )
    abandoned = TaskExecution(
        task_slug="sync",
        status="abandoned",
        attempt=3,
        started_at=t,
        error_message="no end was recorded",
    )
    return [first, retry, running, cancelled, abandoned]


def test_export_then_import_reproduces_the_rows(tmp_path):
    source = tmp_path / "source.db"
    with Store(source) as store:
        store.append_many(generate(runs=600, days=5, seed=3, end=datetime(2025, 11, 6, tzinfo=UTC)))
        store.append_many(_rich_records())
    exported = run("export-otlp", "--db", source)
    assert exported.exit_code == 0
    lines = exported.stdout.splitlines()
    assert len(lines) >= 2 and all(json.loads(line)["resourceSpans"] for line in lines)
    spans = tmp_path / "spans.json"
    spans.write_text(exported.stdout)
    target = tmp_path / "target.db"
    imported = run("import-otlp", spans, "--db", target)
    assert imported.exit_code == 0, imported.stderr
    columns = [c for c in rows(source)[0] if c not in ("id", "created_at")]
    query = f"SELECT {', '.join(columns)} FROM task_executions ORDER BY span_id"
    original = sqlite3.connect(source).execute(query).fetchall()
    assert len(original) > 600
    assert sqlite3.connect(target).execute(query).fetchall() == original
    groups = "SELECT * FROM error_groups ORDER BY stack_hash"
    assert (
        sqlite3.connect(target).execute(groups).fetchall()
        == sqlite3.connect(source).execute(groups).fetchall()
    )
    again = run("import-otlp", spans, "--db", target)
    assert summary(again)["inserted"] == 0


def test_export_since_and_statuses(tmp_path):
    db = tmp_path / "t.db"
    with Store(db) as store:
        store.append_many(_rich_records())
    result = run("export-otlp", "--db", db, "--since", "2025-11-05T06:00:30Z")
    spans = [
        s
        for line in result.stdout.splitlines()
        for r in json.loads(line)["resourceSpans"]
        for sc in r["scopeSpans"]
        for s in sc["spans"]
    ]
    assert [s["name"] for s in spans] == ["digest"]  # only the retry started after the cutoff
    everything = run("export-otlp", "--db", db).stdout
    by_status = {}
    for line in everything.splitlines():
        for r in json.loads(line)["resourceSpans"]:
            for s in r["scopeSpans"][0]["spans"]:
                attrs = {a["key"]: decode_value(a["value"]) for a in s["attributes"]}
                by_status[attrs["taskexec.status"]] = s
    assert by_status["timeout"]["status"] == {"code": 2, "message": "took too long"}
    assert by_status["abandoned"]["status"]["code"] == 2
    assert "status" not in by_status["success"] and "status" not in by_status["cancelled"]
    assert "endTimeUnixNano" not in by_status["running"]
    (event,) = by_status["timeout"]["events"]
    assert event["name"] == "exception"
    assert {a["key"] for a in event["attributes"]} == {
        "exception.type",
        "exception.message",
        "exception.stacktrace",
    }


def test_any_value_round_trip():
    for value in ["s", 1, -(2**62), 1.5, True, None, [1, "a", [2.0]], {"a": {"b": [None]}}]:
        assert decode_value(json.loads(json.dumps(encode_value(value)))) == value
    assert encode_value(2**40) == {"intValue": str(2**40)}  # 64-bit ints as decimal strings


_ANY = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_SPAN = st.fixed_dictionaries(
    {"attributes": st.just([kv("taskexec.task_slug", stringValue="t")])},
    optional={
        "traceId": st.sampled_from([TRACE, "", "zz", None]) | _ANY,
        "spanId": st.sampled_from(["00f067aa0ba902b7", "0" * 16]) | _ANY,
        "parentSpanId": _ANY,
        "startTimeUnixNano": st.integers() | st.text(max_size=25) | _ANY,
        "endTimeUnixNano": st.integers() | _ANY,
        "status": st.fixed_dictionaries({}, optional={"code": _ANY, "message": _ANY}) | _ANY,
        "events": st.lists(
            st.fixed_dictionaries({"name": st.just("exception")}, optional={"attributes": _ANY}),
            max_size=2,
        ),
        "name": _ANY,
    },
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_SPAN, max_size=3))
def test_any_span_is_imported_or_reported_never_raises(spans):
    summary = ImportSummary()
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}
    records = list(records_from_document(json.loads(json.dumps(doc)), "f", summary))
    assert summary.spans == len(spans) == len(records) + len(summary.problems)


# -- hostile input ---------------------------------------------------------------------------


def _task_span(n: int, **attrs) -> dict:
    start = START + n * 1_000_000_000
    return {
        "traceId": f"{n + 1:032x}",
        "spanId": f"{n + 1:016x}",
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + 1000),
        "attributes": [kv("taskexec.task_slug", stringValue=f"t{n}")]
        + [{"key": k, "value": v} for k, v in attrs.items()],
    }


def _one_doc(*spans) -> dict:
    return {"resourceSpans": [{"scopeSpans": [{"spans": list(spans)}]}]}


def test_hostile_files_are_reported_and_good_ones_imported(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_one_doc(*(_task_span(i) for i in range(6)))))
    deep_value = '{"arrayValue": {"values": [' * 40 + "{}" + "]}}" * 40
    hostile = {
        "deep_900.json": ('{"resourceSpans": ' + "[" * 900 + "]" * 900 + "}", "resourceSpans"),
        "deep_5000.json": ("[" * 5000 + "]" * 5000, "invalid JSON: nested too deeply to parse"),
        "digits.json": ('{"resourceSpans": [' + "9" * 5000 + "]}", "invalid JSON: Exceeds"),
        "garbage.json": (bytes(range(256)), "invalid JSON"),
        "spans.json": (
            "\n".join(
                json.dumps(_one_doc(span))
                for span in [
                    _task_span(10, **{"process.pid": {"intValue": str(2**70)}}),
                    _task_span(11, **{"taskexec.attempt": {"intValue": "9" * 30}}),
                    _task_span(12, deep=json.loads(deep_value)),
                    _task_span(13, note={"stringValue": "\ud800"}),
                    {**_task_span(14), "startTimeUnixNano": "9" * 30},
                    _task_span(
                        15,
                        **{"taskexec.scheduled_at": {"stringValue": "9999-12-31T23:59:59-05:00"}},
                    ),
                    _task_span(16, **{"taskexec.parents": {"stringValue": "[" * 900 + "]" * 900}}),
                    _task_span(
                        17,
                        **{"taskexec.attributes": {"stringValue": '{"a":' * 40 + "1" + "}" * 40}},
                    ),
                ]
            ),
            "",
        ),
    }
    for name, (content, _) in hostile.items():
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    db = tmp_path / "t.db"
    result = CliRunner().invoke(
        cli, ["import-otlp", str(good), *(str(tmp_path / n) for n in hostile), "--db", str(db)]
    )
    assert result.exit_code == 1, result.output
    errors = result.stderr.splitlines()
    assert all(line.startswith("skipped: ") for line in errors), errors
    for name, (_, words) in hostile.items():
        if words:
            assert any(f"{tmp_path / name}" in e and words in e for e in errors), (name, errors)
    spans = [e for e in errors if "spans.json" in e]
    expected = [
        ":1: resourceSpans[0].scopeSpans[0].spans[0]: pid: must be a 64-bit integer",
        ":2: resourceSpans[0].scopeSpans[0].spans[0]: attempt: must be an integer >= 1",
        ":3: resourceSpans[0].scopeSpans[0].spans[0]: attributes: a value nested deeper than 32",
        ":4: resourceSpans[0].scopeSpans[0].spans[0]: span: text holds a lone surrogate",
        ":5: resourceSpans[0].scopeSpans[0].spans[0]: startTimeUnixNano: out of range",
        ":6: resourceSpans[0].scopeSpans[0].spans[0]: taskexec.scheduled_at: out of range",
        ":7: resourceSpans[0].scopeSpans[0].spans[0]: parents: nested deeper than 32 levels",
        ":8: resourceSpans[0].scopeSpans[0].spans[0]: attributes: nested deeper than 32",
    ]
    assert len(spans) == len(expected), spans
    for line, words in zip(spans, expected, strict=True):
        assert f"spans.json{words}" in line, (line, words)
    assert sorted(r["task_slug"] for r in rows(db)) == [f"t{i}" for i in range(6)]


def test_a_fifo_is_reported_never_waited_on(tmp_path):
    import os

    fifo = tmp_path / "spans.json"
    os.mkfifo(fifo)
    result = run("import-otlp", fifo, "--db", tmp_path / "t.db")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"skipped: {fifo}: not a regular file (a FIFO)"
