"""The recording API: track (sync/async), decorator with retries, statuses, errors."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from datetime import UTC, datetime

import pytest

from taskexec import DatabaseError, InvalidRecord, Recorder, Store


@pytest.fixture
def rec(db_path):
    r = Recorder(db_path)
    yield r
    r.close()


def rows(rec):
    return rec.store.list_executions(limit=100)


def test_track_success_with_metadata(rec):
    with rec.track("daily_reflection", task_id="task_007", attributes={"model": "m1"}) as run:
        run.retrieved(12, sources=["semantic", "episodic"])
        run.wrote("notes/2025-11-05.md")
        run.set(tokens=321)
        run.summary("reflected on 12 memories")
    (row,) = rows(rec)
    assert row["status"] == "success" and row["task_id"] == "task_007"
    assert row["memories_retrieved"] == 12
    assert row["retrieval_sources"] == ["semantic", "episodic"]
    assert row["files_written"] == ["notes/2025-11-05.md"]
    assert row["attributes"] == {"model": "m1", "tokens": 321}
    assert row["content"] == "reflected on 12 memories"
    assert row["duration_ms"] >= 0 and row["ended_at"] >= row["started_at"]
    assert row["pid"] and row["host"] and row["provenance"] == "live"


def test_running_row_is_visible_within_the_flush_interval(rec, db_path):
    with rec.track("slow") as run:
        deadline = time.monotonic() + 2.0
        found = []
        while not found and time.monotonic() < deadline:
            time.sleep(0.01)
            if os.path.exists(db_path):
                with contextlib.suppress(DatabaseError), Store.open_readonly(db_path) as ro:
                    found = ro.list_executions(limit=5)
        (row,) = found
        assert row["status"] == "running" and row["span_id"] == run.span_id


def test_durable_mode_commits_the_running_row_before_the_body(db_path):
    with Recorder(db_path, durable=True) as rec, rec.track("slow") as run:
        with Store.open_readonly(db_path) as ro:
            (row,) = ro.list_executions(limit=5)
        assert row["status"] == "running" and row["span_id"] == run.span_id


def test_exception_marks_failed_and_reraises(rec):
    with pytest.raises(KeyError), rec.track("idea_generation") as run:
        {}["title"]
    (row,) = rows(rec)
    assert row["status"] == "failed" and row["span_id"] == run.span_id
    assert row["error_type"] == "KeyError" and "title" in row["error_message"]
    assert "Traceback" in row["stack_trace"] and len(row["stack_hash"]) == 64
    assert row["first_seen_error"] == 1
    assert rec.store.error_groups()[0]["occurrences"] == 1


def test_timeout_and_cancel_statuses(rec):
    with pytest.raises(TimeoutError), rec.track("t"):
        raise TimeoutError("slow API")

    async def cancelled():
        async with rec.track("c"):
            raise asyncio.CancelledError()

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(cancelled())
    assert sorted(r["status"] for r in rows(rec)) == ["cancelled", "timeout"]


def test_async_track(rec):
    async def main():
        async with rec.track("sync_inbox", task_id="task_011") as run:
            await asyncio.sleep(0)
            run.retrieved(3)
        return run.span_id

    span = asyncio.run(main())
    (row,) = rows(rec)
    assert row["span_id"] == span and row["status"] == "success"


def test_decorator_retries_share_trace(rec):
    calls = {"n": 0}

    @rec.task("idea_generation", task_id="task_008", retries=3, backoff=0)
    def generate(x):
        calls["n"] += 1
        if calls["n"] < 3:
            raise ConnectionError("flaky")
        return x * 2

    assert generate(21) == 42
    attempts = sorted(rows(rec), key=lambda r: r["attempt"])
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert [a["status"] for a in attempts] == ["failed", "failed", "success"]
    assert len({a["trace_id"] for a in attempts}) == 1
    assert attempts[0]["retry_of"] is None
    assert attempts[1]["retry_of"] == attempts[0]["span_id"]
    assert attempts[2]["retry_of"] == attempts[1]["span_id"]
    # Same bug twice: one group, first occurrence flagged once.
    assert [a["first_seen_error"] for a in attempts] == [1, 0, 0]


def test_decorator_gives_up_and_reraises(rec):
    @rec.task("always_fails", retries=2, backoff=0)
    def boom():
        raise ValueError("nope")

    with pytest.raises(ValueError):
        boom()
    assert [r["status"] for r in rows(rec)] == ["failed"] * 3


def test_decorator_async(rec):
    state = {"n": 0}

    @rec.task("sync_inbox", retries=1, backoff=0)
    async def sync():
        state["n"] += 1
        if state["n"] == 1:
            raise OSError("imap hiccup")
        return "ok"

    assert asyncio.run(sync()) == "ok"
    assert sorted(r["status"] for r in rows(rec)) == ["failed", "success"]


def test_no_retry_for_exceptions_outside_retry_on(rec):
    @rec.task("x", retries=3, backoff=0, retry_on=ConnectionError)
    def bad():
        raise KeyError("k")

    with pytest.raises(KeyError):
        bad()
    assert len(rows(rec)) == 1


def test_bad_arguments_raise_clear_errors_in_strict_mode(db_path):
    with Recorder(db_path, strict=True) as rec:
        with pytest.raises(InvalidRecord, match="trace_id"), rec.track("x", trace_id="XYZ"):
            pass
        with pytest.raises(InvalidRecord, match="attempt"), rec.track("x", attempt=0):
            pass
        with (
            pytest.raises(InvalidRecord, match="scheduled_at"),
            rec.track("x", scheduled_at=datetime(2025, 1, 1)),
        ):
            pass
        with pytest.raises(InvalidRecord, match="retries"):
            rec.task("x", retries=-1)
        assert rows(rec) == []


def test_bad_arguments_are_recorded_anyway_by_default(rec, caplog):
    """Fail-open: the body runs, the attempt is recorded, the bad field is named once."""
    ran = []
    with rec.track("x", trace_id="XYZ"):
        ran.append(1)
    with rec.track("x", attempt=0):
        ran.append(2)
    with rec.track("x", scheduled_at=datetime(2025, 1, 1)):
        ran.append(3)
    with rec.track("x", trace_id="XYZ"):
        ran.append(4)
    assert ran == [1, 2, 3, 4]
    found = rows(rec)
    assert len(found) == 4 and {r["status"] for r in found} == {"success"}
    invalid = [r["attributes"]["taskexec_invalid"] for r in found]
    assert sum("trace_id" in i for i in invalid) == 2
    assert any("attempt" in i for i in invalid) and any("scheduled_at" in i for i in invalid)
    warnings = [r for r in caplog.records if "trace_id" in r.getMessage()]
    assert len(warnings) == 1  # one warning per kind of problem, no traceback
    assert all(r.exc_info is None for r in caplog.records)
    with pytest.raises(InvalidRecord, match="retries"):  # a definition-time mistake still raises
        rec.task("x", retries=-1)


def test_live_key_comes_from_the_span_and_scheduled_at_is_kept(rec):
    from taskexec.model import live_key

    sched = datetime(2025, 11, 5, 6, 0, tzinfo=UTC)
    with rec.track("daily_reflection", task_id="task_007", scheduled_at=sched) as run:
        pass
    with rec.track("daily_reflection", task_id="task_007", scheduled_at=sched):
        pass  # the same slot run again (by hand, or on another worker): a second row
    first, second = sorted(rows(rec), key=lambda r: r["started_at"])
    assert first["idempotency_key"] == live_key(run.span_id)
    assert first["scheduled_at"] == second["scheduled_at"] == "2025-11-05T06:00:00.000000Z"
    assert first["idempotency_key"] != second["idempotency_key"]


def test_start_and_finish_from_another_thread_with_uuid_ids(rec):
    import threading
    import uuid

    from taskexec.model import derive_span_id

    job = uuid.UUID("3f2b8a1c-5d6e-4f70-8a9b-0c1d2e3f4a5b")
    run = rec.start("celery_like", trace_id=str(job), span_id=derive_span_id(job.hex, 1))
    second = rec.start(
        "celery_like",
        trace_id="{" + str(job).upper() + "}",
        attempt=2,
        retry_of=derive_span_id(job.hex, 1),
        span_id=derive_span_id(job.hex, 2),
    )
    done = threading.Thread(target=run.finish, kwargs={"exc": ValueError("first try")})
    done.start()
    done.join()
    run.finish()  # a second finish does nothing
    second.finish(status="success")
    first_row, second_row = sorted(rows(rec), key=lambda r: r["attempt"])
    assert first_row["trace_id"] == second_row["trace_id"] == job.hex
    assert first_row["status"] == "failed" and first_row["error_type"] == "ValueError"
    assert second_row["retry_of"] == first_row["span_id"] == derive_span_id(job.hex, 1)
    assert second_row["status"] == "success"


def test_uuid_forms_map_to_one_trace_id():
    import uuid

    from taskexec.model import as_span_id, as_trace_id

    value = uuid.uuid4()
    forms = [str(value), value.hex, str(value).upper(), f"{{{value}}}", f"urn:uuid:{value}", value]
    assert {as_trace_id(f) for f in forms} == {value.hex}
    assert len({as_span_id(f) for f in forms}) == 1 and len(as_span_id(value)) == 16


def test_capture_args_result_and_log_lines(db_path):
    import logging

    logger = logging.getLogger("user.code")
    logger.setLevel(logging.INFO)
    with Recorder(db_path, capture_logs=3) as rec:

        @rec.task("captured", capture_args=True)
        def work(n, secret_note="mail me at a@b.example"):
            for i in range(5):
                logger.info("step %d of %d", i, n)
            return {"total": n * 2, "blob": "x" * 5000}

        assert work(5)["total"] == 10
        with rec.track("other"):
            logger.info("not captured by this one")
        (row,) = rec.store.list_executions(task_slug="captured")
    attrs = row["attributes"]
    assert attrs["args"] == [5]
    assert attrs["log_tail"] == [f"INFO user.code: step {i} of 5" for i in (2, 3, 4)]
    assert attrs["result"].endswith("chars)") and len(attrs["result"]) < 2100


def test_on_finish_hooks_get_each_record_with_its_novelty(db_path, caplog):
    import threading

    seen = []
    threads = set()

    def hook(row):
        threads.add(threading.get_ident())
        seen.append(
            (row["task_slug"], row["status"], row["is_new_error"], row["group_occurrences"])
        )

    def broken(row):
        raise RuntimeError("a hook that fails")

    with Recorder(db_path) as rec:
        rec.on_finish(hook)
        rec.on_finish(broken)
        for _ in range(2):
            with pytest.raises(KeyError), rec.track("fragile"):
                {}["missing"]
        with rec.track("fine"):
            pass
    assert sorted(seen) == [
        ("fine", "success", 0, None),
        ("fragile", "failed", 0, 2),
        ("fragile", "failed", 1, 2),
    ] or sorted(seen) == [
        ("fine", "success", 0, None),
        ("fragile", "failed", 0, 2),
        ("fragile", "failed", 1, 1),
    ]
    assert threading.get_ident() not in threads  # never on the task's thread
    assert any("on_finish callback raised" in r.getMessage() for r in caplog.records)


# -- the quick path: encoded on the writer thread, the same rows as the general path ----------

SECRETIVE = {
    "note": "mail me at someone@example.com",
    "api_key": "sk-live-0123456789abcdef0123",
    "url": "postgres://admin:hunter2@db.internal/app",
    "n": 7,
    "ratio": 0.5,
    "ok": True,
    "none": None,
}
#: Columns that differ between two recordings of the same attempt (ids, the clock, row id).
VOLATILE = {
    "id",
    "span_id",
    "trace_id",
    "idempotency_key",
    "started_at",
    "ended_at",
    "duration_ms",
    "created_at",
    "heartbeat_at",
    "first_seen_error",
}


def record_cases(rec):
    """Attempts with every option the quick path takes, a few ways of ending each."""
    sched = datetime(2025, 11, 5, 6, 0, tzinfo=UTC)
    with rec.track("plain"):
        pass
    with rec.track("with-secrets", task_id="t-1", attributes=SECRETIVE, content="password=hunter2"):
        pass
    with rec.track("changed", attributes={"a": 1}) as run:
        run.set(b="token=abc123secret456", a=2)
        run.summary("called 555-867-5309 about it")
    with rec.track(
        "chained",
        trace_id="0af7651916cd43dd8448eb211c80319c",
        parent_span_id="b7ad6b7169203331",
        retry_of="00f067aa0ba902b7",
        attempt=2,
        scheduled_at=sched,
        capture_logs=0,
    ):
        pass
    run = rec.start("event-driven", attributes={"job": "j-1"})
    run.finish(status="cancelled")
    with rec.track("slow") as run:
        time.sleep(0.15)  # longer than the flush interval: a running row, then an update
        run.set(done=True)


def comparable(rows_):
    return sorted(
        ({k: v for k, v in r.items() if k not in VOLATILE} for r in rows_),
        key=lambda r: (r["task_slug"], r["attempt"]),
    )


def test_quick_path_writes_what_the_general_path_writes(tmp_path):
    """The writer-thread encoding of the quick path against the task-thread encoding of the
    general one (``durable=True`` takes it), same inputs: every column but ids and times."""
    quick_db, general_db = tmp_path / "quick.db", tmp_path / "general.db"
    with Recorder(quick_db, host="box-1", flush_interval=0.05) as rec:
        run = rec.start("probe")
        assert run._quick is not None  # the quick path is what is tested here
        run.finish()
        record_cases(rec)
        quick = rec.store.list_executions(limit=100)
    with Recorder(general_db, host="box-1", durable=True) as rec:
        run = rec.start("probe")
        assert run._quick is None
        run.finish()
        record_cases(rec)
        general = rec.store.list_executions(limit=100)
    assert len(quick) == len(general) == 7
    assert comparable(quick) == comparable(general)
    blob = repr(quick)
    for secret in ("someone@example.com", "hunter2", "sk-live-0123", "abc123secret456", "867-5309"):
        assert secret not in blob
    chained = next(r for r in quick if r["task_slug"] == "chained")
    assert chained["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    for row in quick:
        assert row["ended_at"] >= row["started_at"] == row["created_at"]
        assert row["duration_ms"] >= 0


def test_quick_row_is_encode_record_of_its_record(tmp_path):
    """Field by field: the row the writer thread builds is ``rows.encode_record(run.record)``,
    and the finished row is that row with ``rows.encode_outcome`` of its outcome applied."""
    from datetime import timedelta

    from taskexec.db import rows as rows_
    from taskexec.model import Outcome
    from taskexec.recorder import _stamp

    with Recorder(tmp_path / "t.db", host="me@example.com", flush_interval=60) as rec:
        run = rec.start(
            "a@b.example",
            task_id="id 10.0.0.1",
            attributes=SECRETIVE,
            content="x",
            scheduled_at=datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        )
        assert rec._quick_row(run) == list(rows_.encode_record(run.record))
        run.set(extra="password=swordfish")
        run.finish(status="timeout")
        (kind, span, row, error) = run._start_op()
        assert (kind, span, error) == ("r", run.span_id, False)
        started = run.record.started_at
        outcome = Outcome(
            status="timeout",
            ended_at=started + timedelta(milliseconds=run._ended[3]),
            duration_ms=run._ended[3],
            attributes=dict(run.attributes),
        )
        expected = list(rows_.encode_record(run.record))
        for name, value in rows_.encode_outcome(outcome).items():
            expected[rows_.COL[name]] = value
        assert row == expected
        assert run._end_op() is None  # the end went with the start
        rec._writer._queue.clear()  # written by hand above
    for us in (0, 1, 999_999, 1_000_000, 1_764_000_000_123_456, 253_402_300_799_999_999):
        assert _stamp(us) == rows_.ts(EPOCH_UTC + timedelta(microseconds=us))


EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)


def test_what_the_quick_path_does_not_take(tmp_path):
    """Anything but plain options goes the general way, and is recorded as before."""
    from pathlib import Path

    with Recorder(tmp_path / "t.db") as rec:
        for options in (
            {"attributes": {"path": Path("/tmp")}},
            {"attributes": {"nested": {"a": 1}}},
            {"attributes": {"nan": float("nan")}},
            {"attributes": {1: "int key"}},
            {"span_id": "3f2b8a1c-5d6e-4f70-8a9b-0c1d2e3f4a5b"},
            {"trace_id": "XYZ"},
            {"attempt": 0},
            {"parents": ["p-1"]},
            {"started_at": datetime(2025, 1, 1, tzinfo=UTC)},
        ):
            tracking = rec.track("general", **options)
            assert tracking._quick is None, options
            with tracking:
                pass
        with rec.track("quick", attributes={"i": 1}) as run:
            assert run._quick is not None
            run.set(path=Path("/srv/x"))  # not flat any more: the outcome is encoded here
        with rec.track("quick-files") as run:
            run.wrote("out.txt")
        with pytest.raises(KeyError), rec.track("quick-fails") as run:
            assert run._quick is not None
            {}["missing"]
        found = {r["task_slug"]: r for r in rec.store.list_executions(limit=100)}
    assert rec.stats.lost == 0 and len(found) == 4  # "general", and the three quick ones
    assert found["quick"]["attributes"] == {"i": 1, "path": "/srv/x"}
    assert found["quick-files"]["files_written"] == ["out.txt"]
    assert found["quick-fails"]["status"] == "failed"
    assert found["quick-fails"]["error_type"] == "KeyError"
    assert "Traceback" in found["quick-fails"]["stack_trace"]


def test_quick_attempt_finished_from_another_thread_once(rec):
    import threading

    run = rec.start("event", attributes={"k": "v"})
    assert run._quick is not None
    assert run.record.attributes == {"k": "v"} and run.record.status == "running"
    done = threading.Thread(target=run.finish, kwargs={"status": "failed"})
    done.start()
    done.join()
    run.finish()  # a second finish does nothing
    (row,) = rows(rec)
    assert row["status"] == "failed" and row["attributes"] == {"k": "v"}
    assert row["started_at"] == rows_ts(run.record.started_at)


def rows_ts(value):
    from taskexec.db.rows import ts

    return ts(value)


def test_a_record_the_writer_cannot_encode_never_reaches_the_task(tmp_path, caplog, monkeypatch):
    """When the writer thread's encoding of a quick attempt fails, the row is encoded the
    general way (``rows.encode_record``), its end's status and times still land, the task
    never hears of it and it is said once."""
    import taskexec.recorder as recorder_module

    def broken(value):
        raise RuntimeError("cannot encode this")

    monkeypatch.setattr(recorder_module, "_json", broken)
    with Recorder(tmp_path / "t.db", host=12345) as rec:  # type: ignore[arg-type]
        for i in range(3):
            with rec.track("odd", attributes={"i": i}) as run:
                run.set(i=i + 1)
        assert rec.flush(10)
        assert rec.stats.lost == 0
        found = rec.store.list_executions(limit=10)
    assert sorted(r["attributes"]["i"] for r in found) == [0, 1, 2]  # as they started
    assert {(r["task_slug"], r["status"], r["host"]) for r in found} == {
        ("odd", "success", "12345")
    }
    assert all(r["ended_at"] >= r["started_at"] for r in found)
    problems = [r for r in caplog.records if "cannot encode this" in r.getMessage()]
    assert len(problems) == 1 and problems[0].exc_info is None


def test_import_taskexec_is_lazy():
    """``import taskexec`` loads no database, recorder or click: a command that does not
    record (``taskexec --version``) starts fast; every public name still resolves."""
    import subprocess
    import sys

    code = (
        "import sys, taskexec; heavy = sorted(m for m in ('sqlite3', 'click', 'json', "
        "'taskexec.db', 'taskexec.recorder', 'taskexec.model') if m in sys.modules); "
        "print(heavy); names = [getattr(taskexec, n) for n in taskexec.__all__]; "
        "from taskexec import Recorder, Store, TaskExecution, __version__; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "ok"], out.stdout + out.stderr
