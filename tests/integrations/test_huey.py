"""The Huey integration against a real consumer: ``huey_consumer`` as a subprocess on a
``RedisHuey`` (a real redis-server), the tasks module written to a temporary folder and
connected the way docs/integrations.md says.

Thread workers (Huey's default) run every scenario: success, a failure retried twice (three
linked attempts), a ``RetryTask`` (linked within the process), a cooperative timeout, a
revoked task, then a task interrupted by stopping the consumer. Process workers (``-k
process``) run the retries again, where the attempts land in different processes and are
linked by the ids every process derives. A last test runs Huey in immediate mode in this
process, for a periodic task's slot and the cleanup of the per-process bookkeeping.
"""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("huey")

from taskexec.model import format_ts, parse_ts  # noqa: E402

from ._workers import rows_of, stop, wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

APP = textwrap.dedent(
    """
    import logging
    import os
    import time

    import redis
    from huey import RedisHuey
    from huey.exceptions import RetryTask

    URL = os.environ["TE_BROKER"]
    huey = RedisHuey("te-huey", url=URL)
    if os.environ.get("TASKEXEC_DB"):  # the consumer; the test process only enqueues
        from taskexec import Recorder
        from taskexec.integrations.huey import connect

        connect(huey, Recorder(os.environ["TASKEXEC_DB"]), capture_args=True, capture_logs=5)
    log = logging.getLogger("te_huey_app")


    @huey.task()
    def ok(x):
        return x * 2


    @huey.task(retries=2)
    def boom():
        log.warning("about to fail")
        raise ValueError("boom")


    @huey.task(context=True)
    def again(task=None):
        # RetryTask does not use up a retry: the first call asks for one more run.
        if redis.Redis.from_url(URL).incr("again-calls") == 1:
            raise RetryTask("not yet")
        return "done"


    @huey.task(context=True, timeout=0.3)
    def slowpoke(task=None):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            task.check_timeout()  # thread workers: a cooperative timeout
            time.sleep(0.02)


    @huey.task()
    def sleeper(seconds):
        time.sleep(seconds)
    """
)


def settled(db: Path, expected: dict[str, int]) -> Callable[[], dict[str, list[dict]] | None]:
    """Rows by slug once every slug has its count of finished rows."""

    def check():
        by: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows_of(db):
            by[row["task_slug"]].append(row)
        done = all(
            len(by[slug]) == n and all(r["status"] != "running" for r in by[slug])
            for slug, n in expected.items()
        )
        return by if done else None

    return check


@pytest.fixture
def app(tmp_path: Path, redis_db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The tasks module, importable here (to enqueue) and by the consumer."""
    (tmp_path / "te_huey_app.py").write_text(APP)
    monkeypatch.setenv("TE_BROKER", redis_db)
    monkeypatch.delenv("TASKEXEC_DB", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("te_huey_app", None)
    module = importlib.import_module("te_huey_app")
    try:
        yield module
    finally:
        sys.modules.pop("te_huey_app", None)


def consumer(tmp_path: Path, redis_db: str, kind: str, workers: int = 2):
    db = tmp_path / "tasks.db"
    env = {
        **os.environ,
        "TE_BROKER": redis_db,
        "TASKEXEC_DB": str(db),
        "TASKEXEC_SPOOL_DIR": str(tmp_path / "spool"),
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(tmp_path), str(ROOT), os.environ.get("PYTHONPATH")) if p
        ),
    }
    log = (tmp_path / f"consumer-{kind}.log").open("wb")
    cmd = [
        sys.executable, "-m", "huey.bin.huey_consumer", "te_huey_app.huey",
        "-k", kind, "-w", str(workers), "-d", "0.05", "-m", "0.2", "-C",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    return proc, db, log


def test_thread_consumer_records_every_attempt(tmp_path: Path, redis_db: str, app: Any):
    proc, db, log = consumer(tmp_path, redis_db, "thread")
    try:
        t0 = time.monotonic()
        ok = app.ok(21)
        boom = app.boom()
        again = app.again()
        app.slowpoke()
        doomed = app.sleeper.schedule(args=(0,), delay=1)
        doomed.revoke()
        assert ok.get(blocking=True, timeout=30) == 42
        assert again.get(blocking=True, timeout=30) == "done"
        by = wait_for(
            settled(db, {"ok": 1, "boom": 3, "again": 2, "slowpoke": 1, "sleeper": 1}),
            30,
            "every row to be finished",
            proc,
        )
        phase_one = time.monotonic() - t0

        # A success: trace = the Huey task id, arguments kept, task_id = the registered name.
        (row,) = by["ok"]
        assert row["status"] == "success" and row["attempt"] == 1 and row["retry_of"] is None
        assert row["trace_id"] == ok.id.replace("-", "")
        assert row["task_id"] == "te_huey_app.ok"
        assert row["attributes"]["args"] == [21]
        assert "huey_task_id" not in row["attributes"]  # a UUID: the trace id says it
        assert row["scheduled_at"] is None

        # retries=2: three attempts in one trace, retry_of chained, the log line captured.
        attempts = sorted(by["boom"], key=lambda r: r["attempt"])
        assert [r["attempt"] for r in attempts] == [1, 2, 3]
        assert {r["status"] for r in attempts} == {"failed"}
        assert {r["trace_id"] for r in attempts} == {boom.id.replace("-", "")}
        assert attempts[0]["retry_of"] is None
        assert attempts[1]["retry_of"] == attempts[0]["span_id"]
        assert attempts[2]["retry_of"] == attempts[1]["span_id"]
        assert [r["attributes"]["retries_left"] for r in attempts] == [2, 1, 0]
        for row in attempts:
            assert row["error_type"] == "ValueError" and row["error_message"] == "boom"
            assert 'raise ValueError("boom")' in row["stack_trace"]
            assert any("about to fail" in line for line in row["attributes"]["log_tail"])

        # RetryTask uses no retry: the consumer still counts and links the two attempts.
        first, second = sorted(by["again"], key=lambda r: r["attempt"])
        assert (first["attempt"], second["attempt"]) == (1, 2)
        assert first["status"] == "failed" and first["error_type"] == "huey.exceptions.RetryTask"
        assert second["status"] == "success" and second["retry_of"] == first["span_id"]

        # A cooperative timeout.
        (row,) = by["slowpoke"]
        assert row["status"] == "timeout" and row["error_type"] == "huey.exceptions.TaskTimeout"
        assert 250 <= row["duration_ms"] < 5000

        # Revoked before it ran: cancelled, scheduled_at = its eta, no duration to speak of.
        (row,) = by["sleeper"]
        assert row["status"] == "cancelled"
        assert row["error_message"] == "revoked before it started"
        assert row["trace_id"] == doomed.id.replace("-", "")
        assert parse_ts(row["scheduled_at"]) <= parse_ts(row["started_at"])

        # The consumer stopped mid-task (SIGTERM: Huey's "interrupt" signal): cancelled.
        victim = app.sleeper(30)
        trace = victim.id.replace("-", "")
        wait_for(
            lambda: any(r["trace_id"] == trace and r["status"] == "running" for r in rows_of(db)),
            20,
            "the sleeper to run",
            proc,
        )
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
        (row,) = [r for r in rows_of(db) if r["trace_id"] == trace]
        assert row["status"] == "cancelled"
        assert row["error_message"].startswith("interrupted")
        assert row["duration_ms"] < 20_000

        spans = [r["span_id"] for r in rows_of(db)]
        assert len(spans) == len(set(spans))
        print(f"thread consumer: every scenario settled in {phase_one:.1f} s")
    finally:
        stop(proc, signal.SIGINT)
        log.close()


def test_process_workers_link_retries_across_processes(tmp_path: Path, redis_db: str, app: Any):
    proc, db, log = consumer(tmp_path, redis_db, "process", workers=2)
    try:
        results = [app.boom() for _ in range(3)]
        by = wait_for(settled(db, {"boom": 9}), 40, "three tasks' three attempts", proc)
        for result in results:
            trace = result.id.replace("-", "")
            attempts = sorted(
                (r for r in by["boom"] if r["trace_id"] == trace), key=lambda r: r["attempt"]
            )
            assert [r["attempt"] for r in attempts] == [1, 2, 3]
            assert attempts[1]["retry_of"] == attempts[0]["span_id"]
            assert attempts[2]["retry_of"] == attempts[1]["span_id"]
        # Which worker takes a retry is Huey's choice: say how many crossed processes.
        moved = sum(
            1
            for row in by["boom"]
            for prev in by["boom"]
            if row["retry_of"] == prev["span_id"] and row["pid"] != prev["pid"]
        )
        print(f"process workers: {moved} of 6 retries ran in another process than the last try")
        # Stopping the consumer: each worker process is interrupted inside its task.
        victim = app.sleeper(30)
        trace = victim.id.replace("-", "")
        wait_for(
            lambda: any(r["trace_id"] == trace and r["status"] == "running" for r in rows_of(db)),
            20,
            "the sleeper to run",
            proc,
        )
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
        (row,) = wait_for(
            lambda: [r for r in rows_of(db) if r["trace_id"] == trace and r["status"] != "running"],
            5,
            "the interrupted row",
        )
        assert row["status"] == "cancelled" and row["error_message"].startswith("interrupted")
    finally:
        stop(proc, signal.SIGINT)
        log.close()


def test_immediate_mode_periodic_slot_and_bookkeeping(tmp_path: Path):
    """In this process, Huey's immediate mode: a periodic task's slot is the minute it was
    enqueued in; the per-process maps are empty once every task ended."""
    from huey import MemoryHuey, crontab
    from huey.exceptions import CancelExecution, RetryTask

    from taskexec import Recorder
    from taskexec.integrations.huey import connect

    huey = MemoryHuey("te-immediate", immediate=True)
    rec = Recorder(tmp_path / "tasks.db")
    integration = connect(huey, rec)
    assert connect(huey, rec) is integration
    calls: dict[str, int] = defaultdict(int)

    @huey.periodic_task(crontab(minute="*"))
    def every_minute():
        return "tick"

    @huey.task(retries=1, context=True)
    def twice(task=None):
        calls["twice"] += 1
        if calls["twice"] < 3:
            raise RetryTask()  # no retry used: three attempts with retries=1 left each time

    @huey.task(retries=3)
    def cancel():
        raise CancelExecution(retry=False)

    before = time.time()
    huey.enqueue(every_minute.task_class())
    twice()
    cancel()
    rows = {}
    for row in rec.store.iter_executions():
        rows.setdefault(row["task_slug"], []).append(row)
    (tick,) = rows["every_minute"]
    assert tick["status"] == "success" and tick["attributes"]["periodic"] is True
    slot = parse_ts(tick["scheduled_at"])
    assert slot.second == 0 and slot.microsecond == 0
    assert before - 61 < slot.timestamp() <= time.time()
    attempts = sorted(rows["twice"], key=lambda r: r["attempt"])
    assert [r["attempt"] for r in attempts] == [1, 2, 3]
    assert [r["status"] for r in attempts] == ["failed", "failed", "success"]
    assert attempts[2]["retry_of"] == attempts[1]["span_id"]
    (row,) = rows["cancel"]
    assert row["status"] == "cancelled"
    assert row["error_type"] == "huey.exceptions.CancelExecution"
    assert not integration._runs and not integration._next and not integration._due
    integration.disconnect()
    twice()  # not recorded any more
    assert len(list(rec.store.iter_executions())) == 5
    rec.close()
    assert format_ts(slot) == tick["scheduled_at"]
