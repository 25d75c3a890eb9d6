"""The APScheduler 3.x integration against a real ``BackgroundScheduler`` in this process: an
interval job that runs several times, a failing job, a run missed past its grace time, runs
skipped by ``max_instances``, and the ``debug`` executor (whose ends come before their
submission is announced). Every wait is bounded; nothing sleeps for a fixed time.

The expected values come from a second listener on the same scheduler, so every row is compared
with what APScheduler itself announced (counts, statuses, ``scheduled_at`` to the microsecond).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("apscheduler")

from apscheduler.events import (  # noqa: E402
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
)
from apscheduler.schedulers.background import BackgroundScheduler  # noqa: E402

from taskexec import Recorder  # noqa: E402
from taskexec.db.store import Store  # noqa: E402
from taskexec.integrations.apscheduler import MAX_INSTANCES, MISFIRE, connect  # noqa: E402
from taskexec.model import format_ts, parse_ts  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ALL = (
    EVENT_JOB_SUBMITTED
    | EVENT_JOB_EXECUTED
    | EVENT_JOB_ERROR
    | EVENT_JOB_MISSED
    | EVENT_JOB_MAX_INSTANCES
)


class Seen:
    """What APScheduler announced, per (event code, job id): the run times."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.times: dict[tuple[int, str], list[datetime]] = defaultdict(list)

    def __call__(self, event: Any) -> None:
        times = getattr(event, "scheduled_run_times", None) or [event.scheduled_run_time]
        with self.lock:
            self.times[(event.code, event.job_id)].extend(times)
            self.lock.notify_all()

    def count(self, code: int, job_id: str) -> int:
        with self.lock:
            return len(self.times[(code, job_id)])

    def wait(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self.lock:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
                self.lock.wait(left)


def rows_of(rec: Recorder) -> dict[str, list[dict[str, Any]]]:
    assert rec.flush(10)
    store = Store.open_readonly(rec.path)
    try:
        by: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in store.iter_executions():
            by[row["task_id"]].append(row)
        return by
    finally:
        store.close()


def tick(n: int) -> int:
    return n * 2


def boom() -> None:
    raise ValueError("boom")


def never() -> None:  # pragma: no cover - its run is missed
    raise AssertionError("a missed run must not run")


def test_background_scheduler_records_every_run(tmp_path: Path):
    rec = Recorder(tmp_path / "tasks.db")
    scheduler = BackgroundScheduler(timezone=UTC)
    seen = Seen()
    release = threading.Event()

    def blocker() -> str:
        release.wait(10)
        return "released"

    integration = connect(scheduler, rec, capture_args=True)
    scheduler.add_listener(seen, ALL)
    now = datetime.now(UTC)
    scheduler.add_job(tick, "interval", seconds=0.15, id="tick", args=(21,))
    scheduler.add_job(boom, "date", run_date=now + timedelta(seconds=0.1), id="boom")
    late = now - timedelta(seconds=30)
    scheduler.add_job(never, "date", run_date=late, id="late", misfire_grace_time=1)
    scheduler.add_job(blocker, "interval", seconds=0.1, id="blocker", max_instances=1)
    t0 = time.monotonic()
    scheduler.start()
    try:
        seen.wait(
            lambda: seen.count(EVENT_JOB_MAX_INSTANCES, "blocker") >= 2,
            10,
            "two runs of the blocker skipped by max_instances",
        )
        scheduler.remove_job("blocker")
        release.set()
        seen.wait(
            lambda: (
                seen.count(EVENT_JOB_EXECUTED, "tick") >= 5
                and seen.count(EVENT_JOB_ERROR, "boom") == 1
                and seen.count(EVENT_JOB_MISSED, "late") == 1
                and seen.count(EVENT_JOB_EXECUTED, "blocker") == 1
            ),
            10,
            "five ticks, the failure, the misfire and the blocker's end",
        )
        scheduler.pause()  # no new runs; the ones submitted still end
        seen.wait(
            lambda: (
                seen.count(EVENT_JOB_SUBMITTED, "tick") == seen.count(EVENT_JOB_EXECUTED, "tick")
            ),
            10,
            "the last tick to end",
        )
    finally:
        release.set()
        scheduler.shutdown(wait=True)
    elapsed = time.monotonic() - t0
    assert integration.in_progress == 0
    by = rows_of(rec)
    rec.close()

    # The interval job: one success row per run, scheduled_at = APScheduler's run time. On a
    # loaded machine a tick can come later than its misfire grace time: APScheduler then
    # skips it, and that is a cancelled row of its own (the misfire case below).
    missed = [r for r in by["tick"] if r["status"] == "cancelled"]
    assert len(missed) == len(seen.times[(EVENT_JOB_MISSED, "tick")])
    ticks = [r for r in by["tick"] if r["status"] != "cancelled"]
    expected = seen.times[(EVENT_JOB_EXECUTED, "tick")]
    assert len(ticks) == len(expected) >= 5
    assert sorted(r["scheduled_at"] for r in ticks) == sorted(format_ts(t) for t in expected)
    for row in ticks:
        assert row["status"] == "success" and row["task_slug"] == "tick"
        assert row["attempt"] == 1 and row["retry_of"] is None
        assert row["attributes"]["args"] == [21] and row["attributes"]["result"] == 42
        assert row["attributes"]["trigger"].startswith("interval[")
        assert parse_ts(row["started_at"]) >= parse_ts(row["scheduled_at"])
        assert row["duration_ms"] < 5000
    assert len({r["trace_id"] for r in ticks}) == len(ticks)  # a trace per run

    # The failing job: failed, its exception and stack.
    (row,) = by["boom"]
    assert row["status"] == "failed" and row["error_type"] == "ValueError"
    assert row["error_message"] == "boom" and 'raise ValueError("boom")' in row["stack_trace"]
    assert row["scheduled_at"] == format_ts(seen.times[(EVENT_JOB_ERROR, "boom")][0])

    # The misfire: cancelled, apscheduler.misfire, scheduled_at the missed time, duration ~0.
    (row,) = by["late"]
    assert row["status"] == "cancelled" and row["error_type"] == MISFIRE
    assert row["scheduled_at"] == format_ts(late)
    assert row["task_slug"] == "never"
    assert 29 < row["attributes"]["late_s"] < 60
    assert "misfire_grace_time (1 s)" in row["error_message"]
    assert row["duration_ms"] < 1000

    # max_instances: one row per skipped run time, and the run that was going.
    blocker = by["blocker"]
    skipped = [r for r in blocker if r["error_type"] == MAX_INSTANCES]
    assert len(skipped) == seen.count(EVENT_JOB_MAX_INSTANCES, "blocker") >= 2
    assert {r["scheduled_at"] for r in skipped} == {
        format_ts(t) for t in seen.times[(EVENT_JOB_MAX_INSTANCES, "blocker")]
    }
    assert all(r["status"] == "cancelled" for r in skipped)
    assert "max_instances=1" in skipped[0]["error_message"]
    (ran,) = [r for r in blocker if r["status"] == "success"]
    assert ran["attributes"]["result"] == "released"
    assert ran["duration_ms"] >= 100  # it waited until the second skip was announced
    assert len(blocker) == len(skipped) + 1
    print(f"scheduler ran for {elapsed:.2f} s")


def test_debug_executor_ends_before_submission_is_announced(tmp_path: Path):
    """The ``debug`` executor runs the job inside ``submit_job``: the end event comes before
    the submission event, and the rows are still complete."""
    from apscheduler.executors.debug import DebugExecutor

    rec = Recorder(tmp_path / "tasks.db")
    scheduler = BackgroundScheduler(timezone=UTC, executors={"default": DebugExecutor()})
    seen = Seen()
    integration = connect(scheduler, rec)
    scheduler.add_listener(seen, ALL)
    now = datetime.now(UTC)
    for i in range(3):
        scheduler.add_job(tick, "date", run_date=now, id=f"d{i}", args=(i,), name="debug-tick")
    scheduler.add_job(boom, "date", run_date=now, id="dboom")
    scheduler.start()
    try:
        seen.wait(
            lambda: (
                sum(seen.count(EVENT_JOB_EXECUTED, f"d{i}") for i in range(3)) == 3
                and seen.count(EVENT_JOB_SUBMITTED, "dboom") == 1
            ),
            10,
            "the debug runs",
        )
    finally:
        scheduler.shutdown(wait=True)
    assert integration.in_progress == 0 and not integration._early
    by = rows_of(rec)
    rec.close()
    for i in range(3):
        (row,) = by[f"d{i}"]
        assert row["status"] == "success" and row["task_slug"] == "debug-tick"
        assert row["scheduled_at"] == format_ts(seen.times[(EVENT_JOB_EXECUTED, f"d{i}")][0])
        assert "args" not in row["attributes"]  # capture_args is off
    (row,) = by["dboom"]
    assert row["status"] == "failed" and row["error_type"] == "ValueError"


def test_a_burst_of_runs_due_at_once(tmp_path: Path):
    """2,000 jobs due at the same moment: the scheduler submits them all in one pass and
    announces the submissions after it, so most runs end first; every row is still finished
    and nothing is left in the integration's maps."""
    rec = Recorder(tmp_path / "tasks.db")
    scheduler = BackgroundScheduler(timezone=UTC)
    seen = Seen()
    integration = connect(scheduler, rec)
    scheduler.add_listener(seen, ALL)
    now = datetime.now(UTC)
    total = 2000
    for i in range(total):
        scheduler.add_job(
            tick, "date", run_date=now, id=f"b{i}", args=(i,), misfire_grace_time=None
        )
    scheduler.start()
    try:
        seen.wait(
            lambda: (
                sum(len(v) for (code, _), v in seen.times.items() if code == EVENT_JOB_EXECUTED)
                == total
            ),
            30,
            "every run of the burst",
        )
    finally:
        scheduler.shutdown(wait=True)
    assert integration.in_progress == 0 and not integration._early
    rows = [r for rows in rows_of(rec).values() for r in rows]
    rec.close()
    assert len(rows) == total
    assert {r["status"] for r in rows} == {"success"}
    assert {r["task_id"] for r in rows} == {f"b{i}" for i in range(total)}


def test_connect_is_lazy_and_idempotent(tmp_path: Path):
    code = textwrap.dedent(
        """
        import sys
        import taskexec.integrations.apscheduler as te
        assert "apscheduler" not in sys.modules, "importing the integration loaded apscheduler"
        from apscheduler.schedulers.background import BackgroundScheduler
        from taskexec import Recorder
        scheduler = BackgroundScheduler()
        rec = Recorder(sys.argv[1])
        first = te.connect(scheduler, rec)
        assert te.connect(scheduler, rec, capture_args=True) is first and first.capture_args
        assert len(scheduler._listeners) == 1
        first.disconnect()
        assert len(scheduler._listeners) == 0
        te.disconnect(scheduler)  # not connected any more: nothing happens
        """
    )
    db = tmp_path / "lazy.db"
    subprocess.run([sys.executable, "-c", code, str(db)], check=True, cwd=ROOT, timeout=60)
