"""The arq integration against a real worker: ``arq te_arq_app.WorkerSettings`` as a
subprocess on a real redis-server, the settings module written to a temporary folder and
connected the way docs/integrations.md says (with hooks of its own, which must still run).

One worker runs: a success, a failure, a job raising ``Retry`` then succeeding (linked tries),
a timeout, a deferred job, an aborted job; then it is stopped with SIGTERM mid-job (cancelled),
and a second worker runs that job's next try, linked to the cancelled one. A last test checks
that importing the integration loads nothing and that ``connect`` is idempotent.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import subprocess
import sys
import textwrap
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("arq")

from taskexec.integrations.arq import trace_id_for  # noqa: E402
from taskexec.model import parse_ts  # noqa: E402

from ._workers import rows_of, stop, wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

APP = textwrap.dedent(
    """
    import asyncio
    import logging
    import os

    from arq import Retry
    from arq.connections import RedisSettings
    from arq.worker import func

    URL = os.environ["TE_BROKER"]
    log = logging.getLogger("te_arq_app")


    async def ok(ctx, x):
        return x * 2


    async def boom(ctx):
        log.warning("about to fail")
        raise ValueError("boom")


    async def flaky(ctx):
        if ctx["job_try"] < 3:
            raise Retry(defer=0.2)
        return "done"


    async def slow(ctx):
        await asyncio.sleep(10)


    async def sleeper(ctx, seconds):
        if ctx["job_try"] == 1:  # a try after a shutdown returns at once
            await asyncio.sleep(seconds)
        return ctx["job_try"]


    async def user_start(ctx):
        await ctx["redis"].incr("user-start")


    async def user_end(ctx):
        await ctx["redis"].incr("user-end")


    class WorkerSettings:
        functions = [ok, boom, flaky, func(slow, timeout=0.5), sleeper]
        redis_settings = RedisSettings.from_dsn(URL)
        on_job_start = user_start
        on_job_end = user_end
        poll_delay = 0.05
        max_tries = 4
        allow_abort_jobs = True
        keep_result = 120


    if os.environ.get("TASKEXEC_DB"):  # the worker; the test process only enqueues
        from taskexec import Recorder
        from taskexec.integrations.arq import connect

        connect(WorkerSettings, Recorder(os.environ["TASKEXEC_DB"]), capture_args=True,
                capture_logs=5)
    """
)


def by_slug(db: Path) -> dict[str, list[dict[str, Any]]]:
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows_of(db):
        by[row["task_slug"]].append(row)
    return by


def running(db: Path, job_id: str) -> Callable[[], bool]:
    return lambda: any(r["trace_id"] == job_id and r["status"] == "running" for r in rows_of(db))


@pytest.fixture
def app(tmp_path: Path, redis_db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    (tmp_path / "te_arq_app.py").write_text(APP)
    monkeypatch.setenv("TE_BROKER", redis_db)
    monkeypatch.delenv("TASKEXEC_DB", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("te_arq_app", None)
    module = importlib.import_module("te_arq_app")
    try:
        yield module
    finally:
        sys.modules.pop("te_arq_app", None)


def worker(tmp_path: Path, redis_db: str, number: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "TE_BROKER": redis_db,
        "TASKEXEC_DB": str(tmp_path / "tasks.db"),
        "TASKEXEC_SPOOL_DIR": str(tmp_path / "spool"),
        "TASKEXEC_SCRUB_ALLOW_KEYS": "arq_job_id",  # keep a custom job id readable
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(tmp_path), str(ROOT), os.environ.get("PYTHONPATH")) if p
        ),
    }
    log = (tmp_path / f"worker{number}.log").open("wb")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "arq", "te_arq_app.WorkerSettings"],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()


def test_arq_worker_records_every_try(tmp_path: Path, redis_db: str, app: Any):
    from arq import create_pool

    db = tmp_path / "tasks.db"
    proc = worker(tmp_path, redis_db, 1)
    second: subprocess.Popen | None = None

    async def client() -> dict[str, Any]:
        pool = await create_pool(app.WorkerSettings.redis_settings)
        try:
            jobs = {
                "ok": await pool.enqueue_job("ok", 21),
                "boom": await pool.enqueue_job("boom"),
                "flaky": await pool.enqueue_job("flaky"),
                "slow": await pool.enqueue_job("slow"),
            }
            sent = datetime.now(UTC)
            jobs["later"] = await pool.enqueue_job("ok", 5, _defer_by=timedelta(seconds=1))
            jobs["custom"] = await pool.enqueue_job("ok", 7, _job_id="report:2026-11-30")
            jobs["aborted"] = await pool.enqueue_job("sleeper", 30)
            assert await jobs["ok"].result(timeout=30) == 42
            with pytest.raises(ValueError, match="boom"):
                await jobs["boom"].result(timeout=30)
            assert await jobs["flaky"].result(timeout=30) == "done"
            with pytest.raises(asyncio.TimeoutError):
                await jobs["slow"].result(timeout=30)
            assert await jobs["later"].result(timeout=30) == 10
            assert await jobs["custom"].result(timeout=30) == 14
            await asyncio.to_thread(
                wait_for, running(db, jobs["aborted"].job_id), 20, "the sleeper", proc
            )
            assert await jobs["aborted"].abort(timeout=20)
            return {"jobs": jobs, "sent": sent, "user": await pool.mget("user-start", "user-end")}
        finally:
            await pool.aclose()

    try:
        t0 = time.monotonic()
        out = asyncio.run(client())
        jobs = {name: job.job_id for name, job in out["jobs"].items()}
        expected = {"ok": 3, "boom": 1, "flaky": 3, "slow": 1, "sleeper": 1}
        by = wait_for(
            lambda: (
                (b := by_slug(db))
                and all(
                    len(b[s]) == n and all(r["status"] != "running" for r in b[s])
                    for s, n in expected.items()
                )
                and b
            ),
            20,
            "every row to be finished",
            proc,
        )
        phase_one = time.monotonic() - t0

        # Your own hooks still run, once per try (9 so far).
        assert [int(v) for v in out["user"]] == [9, 9]

        # A success: trace = the job id, attempt = job_try, arguments and result kept.
        (row,) = [r for r in by["ok"] if r["trace_id"] == jobs["ok"]]
        assert row["status"] == "success" and row["attempt"] == 1 and row["retry_of"] is None
        assert row["task_id"] == "ok" and row["attributes"]["args"] == [21]
        assert row["attributes"]["result"] == 42
        assert "arq_job_id" not in row["attributes"]  # 32 hex digits: the trace id says it
        assert "queue" not in row["attributes"]  # arq's default queue
        assert row["scheduled_at"] is not None  # the score: its enqueue time
        assert parse_ts(row["scheduled_at"]) <= parse_ts(row["started_at"])

        # A custom job id: the trace id is its hash, the id is kept in the attributes.
        (row,) = [r for r in by["ok"] if r["attributes"].get("args") == [7]]
        assert row["attributes"]["arq_job_id"] == "report:2026-11-30"
        assert row["trace_id"] == trace_id_for("report:2026-11-30")

        # A failure: the exception, its stack and the job's log line.
        (row,) = by["boom"]
        assert row["status"] == "failed" and row["error_type"] == "ValueError"
        assert 'raise ValueError("boom")' in row["stack_trace"]
        assert any("about to fail" in line for line in row["attributes"]["log_tail"])

        # Retry twice, then success: three tries, one trace, linked; the retries' defer.
        tries = sorted(by["flaky"], key=lambda r: r["attempt"])
        assert [r["attempt"] for r in tries] == [1, 2, 3]
        assert [r["status"] for r in tries] == ["failed", "failed", "success"]
        assert {r["trace_id"] for r in tries} == {jobs["flaky"]}
        assert tries[0]["retry_of"] is None
        assert tries[1]["retry_of"] == tries[0]["span_id"]
        assert tries[2]["retry_of"] == tries[1]["span_id"]
        for row in tries[:2]:
            assert row["error_type"] == "arq.worker.Retry"
            assert row["attributes"]["retry_defer_s"] == 0.2
        # A deferred retry is due 0.2 s after the try that asked for it ended.
        for before, after in zip(tries, tries[1:], strict=False):
            due = parse_ts(after["scheduled_at"])
            assert due >= parse_ts(before["ended_at"]) + timedelta(milliseconds=150)
            assert parse_ts(after["started_at"]) >= due - timedelta(milliseconds=50)

        # The timeout: status timeout after about 0.5 s.
        (row,) = by["slow"]
        assert row["status"] == "timeout" and row["error_type"] == "TimeoutError"
        assert 450 <= row["duration_ms"] < 5000

        # _defer_by=1: scheduled_at one second after it was sent, and it waited for it.
        (row,) = [r for r in by["ok"] if r["trace_id"] == jobs["later"]]
        due = parse_ts(row["scheduled_at"])
        assert abs((due - out["sent"]).total_seconds() - 1) < 0.5
        assert parse_ts(row["started_at"]) >= due - timedelta(milliseconds=50)
        assert "enqueued_at" in row["attributes"]

        # Job.abort() while running: cancelled.
        (row,) = by["sleeper"]
        assert row["status"] == "cancelled" and "aborted" in row["error_message"]
        assert row["duration_ms"] < 20_000

        # SIGTERM mid-job: cancelled ("shutting down"); the next worker's try is linked to it.
        async def enqueue_victim() -> str:
            pool = await create_pool(app.WorkerSettings.redis_settings)
            try:
                return (await pool.enqueue_job("sleeper", 30)).job_id
            finally:
                await pool.aclose()

        victim = asyncio.run(enqueue_victim())
        wait_for(running(db, victim), 20, "the second sleeper", proc)
        stop(proc)
        (row,) = [r for r in rows_of(db) if r["trace_id"] == victim]
        assert row["status"] == "cancelled" and "shutting down" in row["error_message"]
        second = worker(tmp_path, redis_db, 2)
        rows = wait_for(
            lambda: [r for r in rows_of(db) if r["trace_id"] == victim and r["attempt"] == 2],
            30,
            "the victim's second try",
            second,
        )
        (retry,) = rows
        assert retry["retry_of"] == row["span_id"]
        wait_for(
            lambda: (
                [r for r in rows_of(db) if r["span_id"] == retry["span_id"]][0]["status"]
                == "success"
            ),
            10,
            "the second try to end",
            second,
        )
        spans = [r["span_id"] for r in rows_of(db)]
        assert len(spans) == len(set(spans))
        print(f"arq worker: every scenario settled in {phase_one:.1f} s")
    finally:
        stop(proc)
        if second is not None:
            stop(second)


def test_connect_is_lazy_and_idempotent(tmp_path: Path):
    code = textwrap.dedent(
        """
        import asyncio, sys
        import taskexec.integrations.arq as te
        assert "arq" not in sys.modules, "importing the integration loaded arq"
        from taskexec import Recorder

        calls = []

        async def job(ctx):
            return 1

        async def mine(ctx):
            calls.append(ctx["job_id"])

        settings = {"functions": [job], "on_job_start": mine}
        rec = Recorder(sys.argv[1])
        first = te.connect(settings, rec)
        wrapped = settings["functions"][0]
        assert wrapped.name == "job"  # arq's name for it is kept
        assert te.connect(settings, rec, capture_args=True) is first and first.capture_args
        assert settings["functions"][0].coroutine.__taskexec_arq__ is job  # wrapped once

        async def one():
            ctx = {"job_id": "a" * 32, "job_try": 1, "score": 1}
            await settings["on_job_start"](ctx)
            assert await settings["functions"][0].coroutine(ctx) == 1
            await settings["on_job_end"](ctx)

        asyncio.run(one())
        assert calls == ["a" * 32]  # the user's hook is called once, not twice
        (row,) = rec.store.iter_executions()
        assert row["status"] == "success" and row["trace_id"] == "a" * 32
        """
    )
    db = tmp_path / "lazy.db"
    subprocess.run([sys.executable, "-c", code, str(db)], check=True, cwd=ROOT, timeout=60)
