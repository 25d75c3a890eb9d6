"""The RQ integration against real workers: ``rq worker --worker-class
taskexec.integrations.rq.Worker`` (a forked work horse per job, the scheduler embedded) as a
subprocess on a real redis-server, the jobs' module written to a temporary folder and the
database and options taken from the environment, as docs/integrations.md says.

One worker serves every scenario (succeed, fail, ``Retry(max=2)`` failing twice then
succeeding, a retry with an interval, a returned ``Retry``, a job timeout, ``enqueue_in``
through ``rq.Queue`` and through ``taskexec.integrations.rq.Queue``, a work horse killed late
and at once, a stop-job command, a job annotating ``current_run()`` in its horse, a cold
shutdown); then a ``SimpleWorker`` in burst mode, and ``connect(worker=...)`` on a plain
``rq.SimpleWorker`` in this process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from taskexec.model import derive_span_id, parse_ts

from ._workers import rows_of, stop, wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
RQ = str(Path(sys.executable).with_name("rq"))

JOBS = textwrap.dedent(
    """
    import logging
    import os
    import signal
    import time

    import redis
    from rq import Retry, get_current_job

    R = redis.Redis.from_url(os.environ["TE_REDIS"])
    log = logging.getLogger("te_rq_jobs")


    def ok(x):
        return x * 2


    def annotate():
        from taskexec.recorder import current_run

        current_run().set(note="set in the work horse")
        current_run().summary("annotated")
        return os.getpid()


    def boom():
        log.warning("about to fail")
        raise ValueError("boom")


    def flaky():
        n = R.incr("runs:" + get_current_job().id)
        if n <= 2:
            raise ValueError(f"flaky {n}")
        return "done"


    def again():
        # returns rq.Retry once, then succeeds
        if R.incr("runs:" + get_current_job().id) == 1:
            return Retry(max=2)
        return "again done"


    def slow():
        time.sleep(10)


    def crash():
        time.sleep(0.3)  # the running row is written within 20 ms
        os.kill(os.getpid(), signal.SIGKILL)


    def crash_fast():
        os.kill(os.getpid(), signal.SIGKILL)  # before the running row can be written


    def sleeper(seconds):
        time.sleep(seconds)
    """
)


def hexid(job) -> str:
    """The trace id of a job: RQ's ids are UUIDs."""
    return job.id.replace("-", "")


def by_slug(db: Path) -> dict[str, list[dict[str, Any]]]:
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows_of(db):
        by[row["task_slug"].rsplit(".", 1)[-1]].append(row)
    return by


def worker_env(tmp_path: Path, redis_db: str, db: Path) -> dict[str, str]:
    return {
        **os.environ,
        "TE_REDIS": redis_db,
        "TASKEXEC_DB": str(db),
        "TASKEXEC_SPOOL_DIR": str(tmp_path / "spool"),
        "TASKEXEC_CAPTURE_ARGS": "1",
        "TASKEXEC_CAPTURE_LOGS": "5",
        "TASKEXEC_SCRUB_ALLOW_KEYS": "rq_job_id",  # keep the job ids readable
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(tmp_path), str(ROOT), os.environ.get("PYTHONPATH")) if p
        ),
    }


def test_rq_worker_records_every_attempt(tmp_path: Path, redis_db: str):
    import redis
    from rq import Queue, Retry
    from rq.command import send_stop_job_command

    from taskexec.integrations.rq import Queue as DueQueue

    (tmp_path / "te_rq_jobs.py").write_text(JOBS)
    db = tmp_path / "tasks.db"
    conn = redis.Redis.from_url(redis_db)
    q = Queue("default", connection=conn)
    due_q = DueQueue("default", connection=conn)
    t0 = time.monotonic()

    ok = q.enqueue("te_rq_jobs.ok", 21)
    boom = q.enqueue("te_rq_jobs.boom")
    flaky = q.enqueue("te_rq_jobs.flaky", retry=Retry(max=2))
    later_retry = q.enqueue("te_rq_jobs.flaky", retry=Retry(max=2, interval=1))
    again = q.enqueue("te_rq_jobs.again")
    slow = q.enqueue("te_rq_jobs.slow", job_timeout=1)
    crash = q.enqueue("te_rq_jobs.crash")
    crash_fast = q.enqueue("te_rq_jobs.crash_fast")
    sent_at = datetime.now(UTC)
    later = q.enqueue_in(timedelta(seconds=2), "te_rq_jobs.ok", 5)
    exact = due_q.enqueue_in(timedelta(seconds=2), "te_rq_jobs.ok", 6)
    annotate = q.enqueue("te_rq_jobs.annotate")
    sleeper = q.enqueue("te_rq_jobs.sleeper", 30)

    log = (tmp_path / "worker.log").open("wb")
    cmd = [
        RQ, "worker", "--worker-class", "taskexec.integrations.rq.Worker", "--with-scheduler",
        "--url", redis_db, "--name", "te-worker", "default",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env=worker_env(tmp_path, redis_db, db),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:

        def sleeper_running():
            return [
                r
                for r in rows_of(db)
                if r["trace_id"] == hexid(sleeper) and r["status"] == "running"
            ]

        wait_for(sleeper_running, 30, "the sleeper to run", proc)
        send_stop_job_command(conn, sleeper.id)

        expected = {"ok": 3, "boom": 1, "flaky": 6, "again": 2, "slow": 1, "crash": 1}
        expected.update(crash_fast=1, sleeper=1, annotate=1)

        def settled():
            by = by_slug(db)
            done = all(
                len(by[slug]) == n and all(r["status"] != "running" for r in by[slug])
                for slug, n in expected.items()
            )
            return by if done else None

        by = wait_for(settled, 40, "every row to be finished", proc)
        elapsed = time.monotonic() - t0

        # A cold shutdown (a second SIGTERM) mid-job: RQ kills the horse and exits.
        victim = q.enqueue("te_rq_jobs.sleeper", 31)
        wait_for(
            lambda: [r for r in rows_of(db) if r["trace_id"] == hexid(victim)], 20, "the victim"
        )
        os.kill(proc.pid, signal.SIGTERM)
        time.sleep(1.2)  # RQ ignores a second signal within a second
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(15)
        (cold,) = [r for r in rows_of(db) if r["trace_id"] == hexid(victim)]
    finally:
        stop(proc)
        log.close()
    print(f"rq worker: every scenario settled in {elapsed:.1f} s")

    def rows(job) -> list[dict[str, Any]]:
        return sorted(
            (r for rs in by.values() for r in rs if r["trace_id"] == hexid(job)),
            key=lambda r: r["attempt"],
        )

    # A success: the job id is the trace, arguments and result captured, queue and worker named.
    (row,) = rows(ok)
    assert row["status"] == "success" and row["attempt"] == 1 and row["retry_of"] is None
    assert row["task_slug"] == row["task_id"] == "te_rq_jobs.ok"
    assert row["span_id"] == derive_span_id(ok.id, 1)
    attrs = row["attributes"]
    assert attrs["args"] == [21] and attrs["result"] == 42
    assert attrs["queue"] == "default" and attrs["worker"] == "te-worker"
    assert attrs["rq_job_id"] == ok.id
    assert row["scheduled_at"] is None and row["provenance"] == "live"
    assert row["pid"] == proc.pid  # the worker process records; its horses never open the file

    # What the job set on current_run() in the work horse reaches the row.
    (row,) = rows(annotate)
    assert row["attributes"]["note"] == "set in the work horse"
    assert row["content"] == "annotated" and row["attributes"]["result"] != proc.pid

    # A failure: the exception, its stack, the job's own log lines (not RQ's).
    (row,) = rows(boom)
    assert row["status"] == "failed" and row["error_type"] == "ValueError"
    assert row["error_message"] == "boom" and "raise ValueError" in row["stack_trace"]
    assert row["attributes"]["log_tail"] == ["WARNING te_rq_jobs: about to fail"]

    # Retry(max=2): fails twice, then succeeds; one trace, attempts 1-3, retry_of chained.
    attempts = rows(flaky)
    assert [r["attempt"] for r in attempts] == [1, 2, 3]
    assert [r["status"] for r in attempts] == ["failed", "failed", "success"]
    assert [r["error_message"] for r in attempts] == ["flaky 1", "flaky 2", None]
    assert attempts[0]["retry_of"] is None
    assert attempts[1]["retry_of"] == attempts[0]["span_id"] == derive_span_id(flaky.id, 1)
    assert attempts[2]["retry_of"] == attempts[1]["span_id"]
    assert all(r["scheduled_at"] is None for r in attempts)

    # Retry with an interval: each retry's due time is its scheduled_at. (RQ keeps due times to
    # the whole second, rounded down: a job may start up to a second early.)
    attempts = rows(later_retry)
    assert [r["status"] for r in attempts] == ["failed", "failed", "success"]
    for previous, retry in zip(attempts, attempts[1:], strict=False):
        due = parse_ts(retry["scheduled_at"])
        assert abs((due - parse_ts(previous["ended_at"])).total_seconds() - 1) < 0.5
        assert parse_ts(retry["started_at"]) >= due - timedelta(seconds=1)

    # A returned rq.Retry: a failed attempt of its own, then the next one.
    attempts = rows(again)
    assert [(r["attempt"], r["status"]) for r in attempts] == [(1, "failed"), (2, "success")]
    assert attempts[0]["error_type"] == "rq.job.Retry"
    assert attempts[1]["retry_of"] == attempts[0]["span_id"]

    # The job timeout (SIGALRM in the work horse).
    (row,) = rows(slow)
    assert row["status"] == "timeout"
    assert row["error_type"] == "rq.timeouts.JobTimeoutException"
    assert 0.9 <= row["duration_ms"] / 1000 < 5

    # enqueue_in through rq.Queue: when RQ's scheduler released it; through taskexec's Queue:
    # the exact due time.
    (row,) = rows(later)
    scheduled = parse_ts(row["scheduled_at"])
    assert 1.0 <= (scheduled - sent_at).total_seconds() < 4.5
    assert parse_ts(row["started_at"]) >= scheduled
    (row,) = rows(exact)
    scheduled = parse_ts(row["scheduled_at"])
    assert abs((scheduled - sent_at).total_seconds() - 2) < 0.5
    assert parse_ts(row["started_at"]) >= scheduled - timedelta(seconds=1)

    # A work horse killed, late or at once: the worker finishes the row as abandoned.
    (row,) = rows(crash)
    assert row["status"] == "abandoned" and "signal 9 (SIGKILL)" in row["error_message"]
    assert row["duration_ms"] / 1000 >= 0.25
    (row,) = rows(crash_fast)
    assert row["status"] == "abandoned" and "signal 9 (SIGKILL)" in row["error_message"]
    assert row["span_id"] == derive_span_id(crash_fast.id, 1)

    # The stop-job command: cancelled, by the worker.
    (row,) = rows(sleeper)
    assert row["status"] == "cancelled" and "stopped on request" in row["error_message"]
    assert row["duration_ms"] / 1000 < 20 and row["attributes"]["args"] == [30]

    # No two attempts share a span id; the worker's bookkeeping is in the job's meta.
    spans = [r["span_id"] for rs in by.values() for r in rs]
    assert len(spans) == len(set(spans))
    flaky.refresh()
    assert flaky.meta["taskexec"]["attempt"] == 3

    # The cold shutdown: cancelled, written before the worker exited.
    assert cold["status"] == "cancelled" and "cold shutdown" in cold["error_message"]


def test_simple_worker_burst(tmp_path: Path, redis_db: str):
    """``SimpleWorker`` runs jobs in the worker process itself: same rows, nothing forked."""
    import redis
    from rq import Queue, Retry

    (tmp_path / "te_rq_jobs.py").write_text(JOBS)
    db = tmp_path / "simple.db"
    conn = redis.Redis.from_url(redis_db)
    q = Queue("simple", connection=conn)
    ok = q.enqueue("te_rq_jobs.ok", 1)
    boom = q.enqueue("te_rq_jobs.boom")
    flaky = q.enqueue("te_rq_jobs.flaky", retry=Retry(max=2))
    slow = q.enqueue("te_rq_jobs.slow", job_timeout=1)
    cmd = [
        RQ, "worker", "--worker-class", "taskexec.integrations.rq.SimpleWorker", "--burst",
        "--url", redis_db, "simple",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env=worker_env(tmp_path, redis_db, db),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        proc.wait(30)
    finally:
        stop(proc)
    rows = rows_of(db)

    def of(job) -> list[dict[str, Any]]:
        return sorted((r for r in rows if r["trace_id"] == hexid(job)), key=lambda r: r["attempt"])

    assert [r["status"] for r in of(ok)] == ["success"]
    assert [r["status"] for r in of(boom)] == ["failed"]
    flaky_rows = of(flaky)
    assert [r["status"] for r in flaky_rows] == ["failed", "failed", "success"]
    assert flaky_rows[2]["retry_of"] == flaky_rows[1]["span_id"]
    assert of(boom)[0]["attributes"]["log_tail"] == ["WARNING te_rq_jobs: about to fail"]
    (row,) = of(slow)
    assert row["status"] == "timeout" and {r["pid"] for r in rows} == {proc.pid}


def test_connect_a_worker_instance(tmp_path: Path, redis_db: str, monkeypatch):
    """``connect(recorder, worker=w)`` makes a plain ``rq.SimpleWorker`` record; importing the
    module does not import RQ."""
    code = "import sys, taskexec.integrations.rq; assert 'rq' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)

    # In a process of its own: RQ's worker leaves a thread behind, and later tests need a
    # test process with none (bulk loads fork only then).
    (tmp_path / "te_rq_jobs.py").write_text(JOBS)
    script = textwrap.dedent(
        """
        import sys
        import redis
        from rq import Queue, SimpleWorker
        from taskexec import Recorder
        from taskexec.integrations import rq as te_rq
        conn = redis.Redis.from_url(sys.argv[1])
        q = Queue("inproc", connection=conn)
        job = q.enqueue("te_rq_jobs.ok", 4)
        worker = SimpleWorker([q], connection=conn)
        with Recorder(sys.argv[2], strict=True) as rec:
            integration = te_rq.connect(rec, worker=worker, capture_args=True)
            assert isinstance(worker, SimpleWorker) and isinstance(worker, te_rq.RecordingMixin)
            assert worker.taskexec is integration and te_rq._default() is not integration
            worker.work(burst=True)
            (row,) = rec.store.trace(job.id.replace("-", ""))
        assert row["status"] == "success" and row["attributes"]["result"] == 8, row
        """
    )
    env = {**os.environ, "TE_REDIS": redis_db, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    done = subprocess.run(
        [sys.executable, "-c", script, redis_db, str(tmp_path / "inproc.db")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
