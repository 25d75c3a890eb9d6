"""The Celery integration against a real worker: ``celery worker --pool=prefork`` (with beat
embedded) as a subprocess, a real redis-server as broker and result backend, the app module
written to a temporary folder and connected the way docs/integrations.md says.

One worker serves every scenario (succeed, fail, retry twice then succeed, soft and hard time
limits, a terminating revoke, a pool process killed, a chain, a countdown, beat); then it is
killed with SIGKILL mid-task and ``sweep`` marks the row it left running as abandoned.
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

import pytest

from taskexec.db.store import Store
from taskexec.model import parse_ts

from ._workers import rows_of, wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

APP = textwrap.dedent(
    """
    import logging
    import os
    import signal
    import time

    from celery import Celery

    from taskexec import Recorder
    from taskexec.integrations.celery import connect

    URL = os.environ["TE_BROKER"]
    app = Celery("te_app", broker=URL, backend=URL)
    app.conf.update(
        broker_connection_retry_on_startup=True,
        worker_prefetch_multiplier=1,
        result_expires=600,
        beat_schedule={"tick": {"task": "tick", "schedule": 1.0}},
    )
    # Module level: the worker's main process, its pool processes and embedded beat all have it.
    connect(Recorder(os.environ["TASKEXEC_DB"]), app, capture_args=True, capture_logs=5)
    log = logging.getLogger("te_app")


    @app.task(name="ok")
    def ok(x):
        return x * 2


    @app.task(name="boom")
    def boom():
        log.warning("about to fail")
        raise ValueError("boom")


    @app.task(
        name="flaky", bind=True, autoretry_for=(ValueError,),
        retry_kwargs={"max_retries": 3, "countdown": 0.2}, retry_backoff=False,
    )
    def flaky(self):
        if self.request.retries < 2:
            raise ValueError(f"flaky {self.request.retries}")
        return "done"


    @app.task(name="soft", soft_time_limit=0.5)
    def soft():
        time.sleep(10)


    @app.task(name="hard", time_limit=1)
    def hard():
        time.sleep(10)


    @app.task(name="sleeper")
    def sleeper(seconds):
        time.sleep(seconds)


    @app.task(name="crash")
    def crash():
        time.sleep(0.3)  # the running row is committed within 20 ms
        os.kill(os.getpid(), signal.SIGKILL)


    @app.task(name="first")
    def first(x):
        return x + 1


    @app.task(name="second")
    def second(x):
        return x * 10


    @app.task(name="tick")
    def tick():
        return "tick"
    """
)


def running_row(db: Path, slug: str, celery_id: str):
    def find():
        if not db.exists():
            return None
        for row in rows_of(db):
            if (
                row["task_slug"] == slug
                and row["status"] == "running"
                and row["trace_id"] == celery_id.replace("-", "")
            ):
                return row
        return None

    return find


@pytest.fixture
def worker(tmp_path: Path, redis_db: str):
    """The app module, a running prefork worker with beat embedded, a client app that sends
    (no result backend) and one that reads results (polling, never subscribing: a redis
    backend that sent a task subscribes to its result, and unsubscribes in ``__del__``, which
    would retry for minutes once redis has stopped)."""
    from celery import Celery
    from kombu import Connection
    from kombu.exceptions import VersionMismatch

    try:
        with Connection(redis_db) as conn:
            conn.ensure_connection(max_retries=1)
    except VersionMismatch as exc:  # kombu >= 5.7 wants redis-py >= 6.1; arq pins it below 6
        pytest.fail(f"Celery cannot use redis in this environment: {exc}")
    (tmp_path / "te_celery_app.py").write_text(APP)
    db = tmp_path / "tasks.db"
    env = {
        **os.environ,
        "TE_BROKER": redis_db,
        "TASKEXEC_DB": str(db),
        "TASKEXEC_SPOOL_DIR": str(tmp_path / "spool"),
        # keep the Celery ids readable (docs/integrations.md, "Scrubbing")
        "TASKEXEC_SCRUB_ALLOW_KEYS": "celery_task_id,celery_parent_id",
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(tmp_path), str(ROOT), os.environ.get("PYTHONPATH")) if p
        ),
    }
    log = (tmp_path / "worker.log").open("wb")
    cmd = [
        sys.executable, "-m", "celery", "-A", "te_celery_app", "worker",
        "--pool=prefork", "--concurrency=2", "-l", "warning", "-n", "te@%h",
        "-B", "-s", str(tmp_path / "beat-schedule"),
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    client = Celery("client", broker=redis_db)
    client.conf.broker_connection_retry_on_startup = True
    results = Celery("results", backend=redis_db)
    try:
        wait_for(lambda: client.control.ping(timeout=0.5), 30, "the worker to answer", proc)
        yield proc, client, results, db
    finally:
        client.close()
        results.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        with __import__("contextlib").suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # pool processes or beat left behind
        log.close()


def test_celery_worker_records_every_attempt(worker):
    proc, client, results, db = worker

    def outcome(sent, timeout: float = 30):
        """The task's result once it is ready (polled)."""
        result = results.AsyncResult(sent.id)
        wait_for(result.ready, timeout, f"the result of {sent.id}", proc)
        return result.result, result.state

    t0 = time.monotonic()
    ok = client.send_task("ok", args=(21,))
    boom = client.send_task("boom")
    flaky = client.send_task("flaky")
    chain = (client.signature("first", args=(1,)) | client.signature("second")).apply_async()
    sent_at = datetime.now(UTC)
    later = client.send_task("ok", args=(5,), countdown=1.5)
    soft = client.send_task("soft")
    hard = client.send_task("hard")
    crash = client.send_task("crash")
    revoked = client.send_task("sleeper", args=(30,))
    doomed = client.send_task("ok", args=(7,), countdown=2)
    client.control.revoke(doomed.id)  # before it starts: no terminate
    unknown = client.send_task("nope")

    wait_for(running_row(db, "sleeper", revoked.id), 30, "the sleeper to run", proc)
    client.control.revoke(revoked.id, terminate=True)

    assert outcome(ok) == (42, "SUCCESS")
    assert outcome(flaky) == ("done", "SUCCESS")
    assert outcome(chain) == (20, "SUCCESS")
    assert outcome(later) == (10, "SUCCESS")
    states = [outcome(r)[1] for r in (boom, soft, hard, crash, revoked, doomed, unknown)]
    assert states == ["FAILURE"] * 4 + ["REVOKED"] * 2 + ["FAILURE"]

    expected = {"ok": 3, "nope": 1, "boom": 1, "flaky": 3, "first": 1, "second": 1}
    expected.update(soft=1, hard=1, crash=1, sleeper=1)

    def settled():
        by = defaultdict(list)
        for row in rows_of(db):
            by[row["task_slug"]].append(row)
        done = all(
            len(by[slug]) == n and all(r["status"] != "running" for r in by[slug])
            for slug, n in expected.items()
        )
        ticks = [r for r in by["tick"] if r["status"] == "success"]
        return by if done and ticks else None

    by = wait_for(settled, 20, "every row to be finished", proc)
    phase_one = time.monotonic() - t0

    # A success: ids from Celery's, arguments and result captured, the worker named.
    (row,) = [r for r in by["ok"] if r["attributes"].get("args") == [21]]
    assert row["status"] == "success" and row["attempt"] == 1 and row["retry_of"] is None
    assert row["trace_id"] == ok.id.replace("-", "")
    assert row["task_id"] == "ok" and row["provenance"] == "live"
    attrs = row["attributes"]
    assert attrs["result"] == 42
    assert attrs["worker"].startswith("te@") and attrs["queue"] == "celery"
    assert attrs["celery_task_id"] in (ok.id, "<uuid>")  # scrubbed unless allow-listed
    assert row["scheduled_at"] is None

    # A failure: the exception, its stack and the captured log lines.
    (row,) = by["boom"]
    assert row["status"] == "failed" and row["error_type"] == "ValueError"
    assert row["error_message"] == "boom" and "raise ValueError" in row["stack_trace"]
    assert any("about to fail" in line for line in row["attributes"]["log_tail"])

    # autoretry twice then success: three attempts, one trace, retry_of chained, countdown as
    # scheduled_at.
    attempts = sorted(by["flaky"], key=lambda r: r["attempt"])
    assert [r["attempt"] for r in attempts] == [1, 2, 3]
    assert [r["status"] for r in attempts] == ["failed", "failed", "success"]
    assert {r["trace_id"] for r in attempts} == {flaky.id.replace("-", "")}
    assert attempts[0]["retry_of"] is None
    assert attempts[1]["retry_of"] == attempts[0]["span_id"]
    assert attempts[2]["retry_of"] == attempts[1]["span_id"]
    for failed in attempts[:2]:
        assert failed["error_type"] == "celery.exceptions.Retry"
        assert "flaky" in failed["error_message"]
        assert failed["attributes"]["retry_cause"] == "ValueError"
    assert attempts[0]["scheduled_at"] is None
    for retry in attempts[1:]:
        assert retry["scheduled_at"] is not None
        assert parse_ts(retry["started_at"]) >= parse_ts(retry["scheduled_at"]) - timedelta(
            milliseconds=50
        )

    # The chain: one trace (the root's id), the second step's parent is the first's attempt.
    (a,), (b,) = by["first"], by["second"]
    assert a["trace_id"] == b["trace_id"] == chain.parent.id.replace("-", "")
    assert b["parent_span_id"] == a["span_id"] and a["parent_span_id"] is None
    assert (a["status"], b["status"]) == ("success", "success")
    assert b["attributes"]["celery_parent_id"] in (chain.parent.id, "<uuid>")

    # countdown=1.5 -> scheduled_at about 1.5 s after sending, and it did not start before.
    (row,) = [r for r in by["ok"] if r["attributes"].get("args") == [5]]
    scheduled = parse_ts(row["scheduled_at"])
    assert abs((scheduled - sent_at).total_seconds() - 1.5) < 1.0
    assert parse_ts(row["started_at"]) >= scheduled - timedelta(milliseconds=50)

    # Time limits: soft raised in the child, hard announced (and closed) by the main process.
    (row,) = by["soft"]
    assert row["status"] == "timeout"
    assert row["error_type"] == "billiard.exceptions.SoftTimeLimitExceeded"
    (row,) = by["hard"]
    assert row["status"] == "timeout"
    assert row["error_type"] == "billiard.exceptions.TimeLimitExceeded"
    assert row["error_message"] == "TimeLimitExceeded(1,)"  # the main process's word
    assert 0.9 <= row["duration_ms"] / 1000 < 8
    assert row["attributes"]["args"] == []  # captured at start: kept when the main closes it

    # revoke(terminate=True) while running -> cancelled; a pool process killed -> abandoned.
    (row,) = by["sleeper"]
    assert row["status"] == "cancelled" and row["duration_ms"] / 1000 < 20
    assert row["attributes"]["args"] == [30]
    (row,) = [r for r in by["ok"] if r["trace_id"] == doomed.id.replace("-", "")]
    assert row["status"] == "cancelled" and row["error_message"] == "revoked before it started"
    assert parse_ts(row["scheduled_at"]) > parse_ts(row["started_at"])  # it never ran
    (row,) = by["nope"]  # a message for a task the worker does not know
    assert row["status"] == "failed" and row["error_type"] == "celery.exceptions.NotRegistered"
    (row,) = by["crash"]
    assert row["status"] == "abandoned"
    assert row["error_type"] == "billiard.exceptions.WorkerLostError"

    # Beat: scheduled_at is when beat sent it.
    tick = by["tick"][0]
    assert tick["attributes"]["beat"] is True and tick["scheduled_at"] is not None
    assert parse_ts(tick["started_at"]) >= parse_ts(tick["scheduled_at"])

    # Every span id is distinct: no two attempts collided.
    spans = [r["span_id"] for rows in by.values() for r in rows]
    assert len(spans) == len(set(spans))

    # The whole worker killed with SIGKILL mid-task: the running row stays, sweep finds it.
    victim = client.send_task("sleeper", args=(30,))
    row = wait_for(running_row(db, "sleeper", victim.id), 20, "the second sleeper", proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    (row,) = [r for r in rows_of(db) if r["span_id"] == row["span_id"]]
    assert row["status"] == "running"
    with Store(db) as store:
        assert store.sweep(older_than=0) >= 1
    (row,) = [r for r in rows_of(db) if r["span_id"] == row["span_id"]]
    assert row["status"] == "abandoned"
    print(f"phase one (every scenario, rows settled): {phase_one:.1f} s")


def test_connect_is_lazy_and_idempotent(tmp_path):
    code = textwrap.dedent(
        """
        import sys
        import taskexec.integrations, taskexec.integrations.celery as te
        assert "celery" not in sys.modules, "importing the integration loaded celery"
        from celery import Celery, signals
        from taskexec import Recorder
        app = Celery("x")
        rec = Recorder(sys.argv[1])
        first = te.connect(rec, app)
        before = len(signals.task_prerun.receivers)
        assert te.connect(rec, app, capture_args=True) is first and first.capture_args
        assert len(signals.task_prerun.receivers) == before
        first.disconnect()
        assert len(signals.task_prerun.receivers) == before - 1
        """
    )
    db = tmp_path / "lazy.db"
    subprocess.run([sys.executable, "-c", code, str(db)], check=True, cwd=ROOT, timeout=60)


def test_ids_match_the_model():
    import uuid

    from taskexec.integrations.celery import span_id_for, trace_id_for
    from taskexec.model import as_trace_id, derive_span_id

    for _ in range(200):
        celery_id = str(uuid.uuid4())
        assert trace_id_for(celery_id) == as_trace_id(celery_id)
        for attempt in (1, 2, 17):
            assert span_id_for(celery_id, attempt) == derive_span_id(celery_id, attempt)
    assert trace_id_for("my-custom-id") != trace_id_for("my-custom-id2")
    assert len(trace_id_for("my-custom-id")) == 32
    assert span_id_for("x", 1, nesting=1) != span_id_for("x", 1)
