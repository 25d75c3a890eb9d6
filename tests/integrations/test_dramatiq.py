"""The Dramatiq integration against a real worker: ``dramatiq MODULE --processes 1 --threads 2``
as a subprocess with the Redis broker on a real redis-server, the broker module (with the
middleware added the way docs/integrations.md says) written to a temporary folder.

One worker serves every scenario: succeed, fail, fail twice then succeed under
``max_retries=2`` (linked attempts), a time limit, a delayed message (``scheduled_at``), a
message ``AgeLimit`` skips, and an actor that sends another (``parent_span_id``). Messages are
sent from this process as plain ``dramatiq.Message``s, the way any producer sends them.
"""

from __future__ import annotations

import contextlib
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

from ._workers import rows_of, wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

APP = textwrap.dedent(
    """
    import logging
    import os
    import time

    import dramatiq
    import redis
    from dramatiq.brokers.redis import RedisBroker

    from taskexec import Recorder
    from taskexec.integrations.dramatiq import Middleware

    URL = os.environ["TE_REDIS"]
    broker = RedisBroker(url=URL)
    broker.add_middleware(
        Middleware(Recorder(os.environ["TASKEXEC_DB"]), capture_args=True, capture_logs=5)
    )
    dramatiq.set_broker(broker)
    R = redis.Redis.from_url(URL)
    log = logging.getLogger("te_dramatiq_app")


    @dramatiq.actor(max_retries=0)
    def ok(x):
        return x * 2


    @dramatiq.actor(max_retries=0)
    def boom():
        log.warning("about to fail")
        raise ValueError("boom")


    @dramatiq.actor(max_retries=2, min_backoff=100, max_backoff=300)
    def flaky(key):
        n = R.incr(key)
        if n <= 2:
            raise ValueError(f"flaky {n}")
        return "done"


    @dramatiq.actor(max_retries=0, time_limit=500)
    def slow():
        for _ in range(200):  # TimeLimit interrupts between bytecodes, not inside a sleep
            time.sleep(0.05)


    @dramatiq.actor(max_retries=0)
    def parent():
        ok.send(100)
    """
)


def test_dramatiq_worker_records_every_attempt(tmp_path: Path, redis_db: str):
    from dramatiq import Message
    from dramatiq.brokers.redis import RedisBroker

    (tmp_path / "te_dramatiq_app.py").write_text(APP)
    db = tmp_path / "tasks.db"
    env = {
        **os.environ,
        "TE_REDIS": redis_db,
        "TASKEXEC_DB": str(db),
        "TASKEXEC_SPOOL_DIR": str(tmp_path / "spool"),
        "TASKEXEC_SCRUB_ALLOW_KEYS": "dramatiq_message_id",  # keep the message ids readable
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(tmp_path), str(ROOT), os.environ.get("PYTHONPATH")) if p
        ),
    }
    client = RedisBroker(url=redis_db)
    client.declare_queue("default")

    def send(actor: str, *args: Any, delay: int | None = None, **options: Any) -> Message:
        message = Message(
            queue_name="default", actor_name=actor, args=args, kwargs={}, options=options
        )
        return client.enqueue(message, delay=delay)

    t0 = time.monotonic()
    ok = send("ok", 21)
    boom = send("boom")
    flaky = send("flaky", "runs:flaky")
    slow = send("slow")
    sent_at = datetime.now(UTC)
    later = send("ok", 5, delay=1500)
    skipped = send("ok", 7, max_age=1)  # AgeLimit: older than 1 ms when it is processed
    parent = send("parent")

    log = (tmp_path / "worker.log").open("wb")
    cmd = [
        sys.executable,
        "-m",
        "dramatiq",
        "te_dramatiq_app",
        "--processes",
        "1",
        "--threads",
        "2",
    ]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        expected = {"ok": 4, "boom": 1, "flaky": 3, "slow": 1, "parent": 1}

        def settled():
            by: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for row in rows_of(db):
                by[row["task_slug"]].append(row)
            done = all(
                len(by[slug]) == n and all(r["status"] != "running" for r in by[slug])
                for slug, n in expected.items()
            )
            return by if done else None

        by = wait_for(settled, 45, "every row to be finished", proc)
        elapsed = time.monotonic() - t0
        proc.send_signal(signal.SIGTERM)  # a graceful stop: the worker flushes and exits
        proc.wait(20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # a worker process left behind
        log.close()
        client.close()
    print(f"dramatiq worker: every scenario settled in {elapsed:.1f} s")

    def rows(message: Message) -> list[dict[str, Any]]:
        trace = message.message_id.replace("-", "")
        return sorted(
            (r for rs in by.values() for r in rs if r["trace_id"] == trace),
            key=lambda r: r["attempt"],
        )

    # A success: the message id is the trace, arguments and result captured.
    (row,) = rows(ok)
    assert row["status"] == "success" and row["attempt"] == 1 and row["retry_of"] is None
    assert row["task_slug"] == row["task_id"] == "ok"
    assert row["span_id"] == derive_span_id(ok.message_id, 1)
    attrs = row["attributes"]
    assert attrs["args"] == [21] and attrs["result"] == 42 and attrs["queue"] == "default"
    assert attrs["dramatiq_message_id"] == ok.message_id
    assert row["scheduled_at"] is None and row["parent_span_id"] is None

    # A failure: the exception, its stack, the actor's own log lines (not Dramatiq's).
    (row,) = rows(boom)
    assert row["status"] == "failed" and row["error_type"] == "ValueError"
    assert row["error_message"] == "boom" and "raise ValueError" in row["stack_trace"]
    assert row["attributes"]["log_tail"] == ["WARNING te_dramatiq_app: about to fail"]

    # max_retries=2, failing twice: three attempts, one trace, retry_of chained, each retry's
    # backoff eta as its scheduled_at.
    attempts = rows(flaky)
    assert [r["attempt"] for r in attempts] == [1, 2, 3]
    assert [r["status"] for r in attempts] == ["failed", "failed", "success"]
    assert [r["error_message"] for r in attempts] == ["flaky 1", "flaky 2", None]
    assert attempts[0]["retry_of"] is None
    assert attempts[1]["retry_of"] == attempts[0]["span_id"] == derive_span_id(flaky.message_id, 1)
    assert attempts[2]["retry_of"] == attempts[1]["span_id"]
    assert attempts[0]["scheduled_at"] is None
    for previous, retry in zip(attempts, attempts[1:], strict=False):
        due = parse_ts(retry["scheduled_at"])
        assert 0.05 <= (due - parse_ts(previous["ended_at"])).total_seconds() < 2
        assert parse_ts(retry["started_at"]) >= due - timedelta(milliseconds=20)

    # The time limit.
    (row,) = rows(slow)
    assert row["status"] == "timeout"
    assert row["error_type"] == "dramatiq.middleware.time_limit.TimeLimitExceeded"
    assert 0.4 <= row["duration_ms"] / 1000 < 5

    # A delayed message: its eta is scheduled_at, and it did not start before.
    (row,) = rows(later)
    scheduled = parse_ts(row["scheduled_at"])
    assert abs((scheduled - sent_at).total_seconds() - 1.5) < 0.5
    assert parse_ts(row["started_at"]) >= scheduled - timedelta(milliseconds=20)

    # A message AgeLimit skipped: cancelled, with the reason.
    (row,) = rows(skipped)
    assert row["status"] == "cancelled" and "age limit" in row["error_message"]

    # An actor sending a message: the child names the sender's attempt as its parent.
    (sender,) = rows(parent)
    (child,) = [r for r in by["ok"] if r["attributes"]["args"] == [100]]
    assert child["parent_span_id"] == sender["span_id"] and child["status"] == "success"

    spans = [r["span_id"] for rs in by.values() for r in rs]
    assert len(spans) == len(set(spans))


def test_middleware_is_lazy(tmp_path: Path):
    """Importing the module does not import Dramatiq; ``Middleware`` is a real Dramatiq
    middleware, and one that finds no recorder opens ``$TASKEXEC_DB`` on first use."""
    code = textwrap.dedent(
        """
        import sys
        import taskexec.integrations.dramatiq as te
        assert "dramatiq" not in sys.modules, "importing the integration loaded dramatiq"
        import dramatiq
        m = te.Middleware()
        assert isinstance(m, dramatiq.Middleware) and te.Middleware is type(m)
        assert m.recorder.path == sys.argv[1]
        """
    )
    db = tmp_path / "lazy.db"
    env = {**os.environ, "TASKEXEC_DB": str(db), "TASKEXEC_SPOOL_DIR": str(tmp_path / "spool")}
    subprocess.run([sys.executable, "-c", code, str(db)], check=True, cwd=ROOT, env=env, timeout=60)
