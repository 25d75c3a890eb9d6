"""A run swept as abandoned that finishes after all gets its real outcome, and loses the sweep's
note "no end was recorded: the worker probably died", by every path a finish takes."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

from taskexec.db.store import Store
from taskexec.model import TaskExecution, utcnow
from taskexec.recorder import Recorder

NOTE = "no end was recorded: the worker probably died"


def swept(path: Path, slug: str) -> TaskExecution:
    """A running row two hours old, then swept: abandoned, with the sweep's note."""
    record = TaskExecution(
        task_slug=slug, status="running", started_at=utcnow() - timedelta(hours=2)
    )
    with Store(path) as store:
        store.start(record)
        assert store.sweep(3600) == 1
        (row,) = store.trace(record.trace_id)
    assert row["status"] == "abandoned" and row["error_message"].startswith(NOTE)
    return record


def row(path: Path, record: TaskExecution) -> dict:
    with Store.open_readonly(path) as store:
        (found,) = store.trace(record.trace_id)
    return found


@pytest.mark.parametrize("status", ["success", "cancelled"])
def test_store_finish_replaces_the_sweep_note(tmp_path, status):
    path = tmp_path / "t.db"
    record = swept(path, "job")
    with Store(path) as store:
        assert store.finish(record.span_id, status=status, ended_at=utcnow(), duration_ms=5.0)
    found = row(path, record)
    assert found["status"] == status and found["error_message"] is None


def test_a_failure_after_the_sweep_keeps_its_own_message(tmp_path):
    path = tmp_path / "t.db"
    record = swept(path, "job")
    with Store(path) as store:
        store.finish(
            record.span_id,
            status="failed",
            ended_at=utcnow(),
            duration_ms=5.0,
            error_type="ValueError",
            error_message="bad input",
        )
    found = row(path, record)
    assert found["status"] == "failed" and found["error_message"] == "bad input"


def test_a_still_running_row_keeps_what_it_had(tmp_path):
    """Only the sweep's note goes: a running row finishing without a message is untouched."""
    path = tmp_path / "t.db"
    record = TaskExecution(
        task_slug="job", status="running", started_at=utcnow() - timedelta(minutes=1)
    )
    with Store(path) as store:
        store.start(record)
        store.finish(record.span_id, status="success", ended_at=utcnow(), duration_ms=1.0)
    assert row(path, record)["error_message"] is None


@pytest.mark.parametrize("durable", [False, True])
def test_recorder_finish_after_a_sweep(tmp_path, durable):
    """The recorder's own path (the background writer's group commit, or durable commits)."""
    path = tmp_path / "t.db"
    rec = Recorder(path, durable=durable, strict=True)
    try:
        run = rec.start("job")
        deadline = time.monotonic() + 10
        while True:  # the running row is committed within the writer's interval
            with Store(path) as store:
                if store.sweep(0):
                    break
            assert time.monotonic() < deadline, "the running row never arrived"
            time.sleep(0.02)
        run.finish()
    finally:
        rec.close()
    with Store.open_readonly(path) as store:
        (found,) = store.list_executions(limit=5)
    assert found["status"] == "success" and found["error_message"] is None
