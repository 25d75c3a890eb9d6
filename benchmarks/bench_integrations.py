"""What taskexec costs a real worker: no-op tasks/s with and without it connected.

    python benchmarks/bench_integrations.py [FRAMEWORK ...] [--tasks 10000] [--rounds 3]

One function per framework (``FRAMEWORKS`` below; each takes the options and a redis URL and
returns the throughputs of its rounds). Every round runs the worker twice, without and with
taskexec, in alternating order, on the same queue of no-op tasks, so the machine's noise hits
both sides alike; the result is the ratio with/without per round and its median (target: taskexec
costs at most 5% of a worker's throughput, a ratio >= 0.95). A worker's throughput is timed
inside the worker, from the start of a first marker task to the end of a last one, so neither
start-up nor publishing is counted. A throwaway redis-server on a free loopback port is the
broker. Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 0.95


@dataclass
class Rounds:
    """Tasks/s of each round, without (off) and with (on) taskexec connected, and the worker's
    CPU milliseconds per task (all its processes; empty when the framework cannot tell)."""

    off: list[float] = field(default_factory=list)
    on: list[float] = field(default_factory=list)
    cpu_off: list[float] = field(default_factory=list)
    cpu_on: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        return [on / off for off, on in zip(self.off, self.on, strict=True)]

    @property
    def cpu_ratios(self) -> list[float]:
        return [on / off for off, on in zip(self.cpu_off, self.cpu_on, strict=True)]


# -- shared helpers --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server (no persistence) on a free loopback port: ``redis://...``."""
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server is not installed (bash scripts/test.sh installs it)")
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        proc = subprocess.Popen(
            [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", folder],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 10
            while True:
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn,
                ):
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("redis-server did not start")
                time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(5)


def stop(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """TERM the worker's process group (a warm shutdown), KILL it if it does not end."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def worker_env(folder: Path, **extra: str) -> dict[str, str]:
    paths = [str(folder), str(ROOT), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p), **extra}


# -- Celery ----------------------------------------------------------------------------------

CELERY_APP = textwrap.dedent(
    """
    import os
    import time

    import redis
    from celery import Celery

    URL = os.environ["BENCH_BROKER"]
    app = Celery("bench_app", broker=URL)
    app.conf.update(broker_connection_retry_on_startup=True, task_ignore_result=True)
    if os.environ.get("BENCH_TASKEXEC") == "1":
        from taskexec import Recorder
        from taskexec.integrations.celery import connect

        interval = float(os.environ.get("BENCH_FLUSH_INTERVAL") or 0.02)
        connect(Recorder(os.environ["TASKEXEC_DB"], flush_interval=interval), app)


    @app.task(name="noop")
    def noop():
        return None


    def group_cpu():
        # CPU seconds used so far by the worker: every process of its process group
        group, total = os.getpgid(0), 0
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        stat = f.read()
                except OSError:
                    continue
                fields = stat[stat.rindex(")") + 2 :].split()
                if int(fields[2]) == group:
                    total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")


    @app.task(name="mark")
    def mark(key):
        redis.Redis.from_url(URL).set(key, f"{time.time()!r} {group_cpu()!r}")
    """
)


def _stop_celery(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """A warm shutdown as Celery documents it: TERM to the main process only (it stops its pool
    processes itself; systemd: ``KillMode=mixed``), KILL to the group if it hangs."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
    stop(proc, timeout=5.0)


def celery(args: argparse.Namespace, url: str) -> Rounds:
    """No-op tasks through ``celery worker --pool=prefork --concurrency=N``, redis broker."""
    import redis
    from celery import Celery

    result = Rounds()
    folder = Path(tempfile.mkdtemp(prefix="bench-celery-"))
    (folder / "bench_celery_app.py").write_text(CELERY_APP)
    client = Celery("bench_client", broker=url)
    client.conf.broker_connection_retry_on_startup = True
    conn = redis.Redis.from_url(url)
    try:
        for number in range(args.rounds):
            order = (False, True) if number % 2 == 0 else (True, False)
            for enabled in order:
                conn.flushdb()
                db = folder / f"round{number}.db"
                with client.producer_or_acquire() as producer:
                    client.send_task("mark", args=("start",), producer=producer)
                    for _ in range(args.tasks):
                        client.send_task("noop", producer=producer)
                    client.send_task("mark", args=("end",), producer=producer)
                env = worker_env(
                    folder,
                    BENCH_BROKER=url,
                    BENCH_TASKEXEC="1" if enabled else "0",
                    TASKEXEC_DB=str(db),
                    TASKEXEC_SPOOL_DIR=str(folder / "spool"),
                    BENCH_FLUSH_INTERVAL=str(args.flush_interval),
                )
                cmd = [
                    sys.executable, "-m", "celery", "-A", "bench_celery_app", "worker",
                    "--pool=prefork", f"--concurrency={args.concurrency}", "-l", "warning",
                    "--without-gossip", "--without-mingle", "--without-heartbeat",
                ]  # fmt: skip
                proc = subprocess.Popen(
                    cmd,
                    cwd=folder,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
                try:
                    deadline = time.monotonic() + args.timeout
                    while conn.get("end") is None:
                        if proc.poll() is not None or time.monotonic() > deadline:
                            raise SystemExit(f"the celery worker did not finish (round {number})")
                        time.sleep(0.05)
                finally:
                    _stop_celery(proc)
                (t0, cpu0), (t1, cpu1) = (
                    map(float, (conn.get(key) or b"0 0").split()) for key in ("start", "end")
                )
                rate = args.tasks / (t1 - t0)
                cpu_ms = (cpu1 - cpu0) * 1000 / args.tasks
                (result.on if enabled else result.off).append(rate)
                (result.cpu_on if enabled else result.cpu_off).append(cpu_ms)
                print(
                    f"  round {number + 1} {'with' if enabled else 'without':7} taskexec: "
                    f"{rate:8,.0f} tasks/s ({t1 - t0:.2f} s), worker CPU {cpu_ms:.3f} ms/task",
                    flush=True,
                )
                if enabled:
                    from taskexec.db.store import Store

                    with Store(db) as store:
                        rows = store.count_executions()
                    if rows != args.tasks + 2:
                        result.notes.append(
                            f"round {number + 1}: {rows} rows, not {args.tasks + 2}"
                        )
    finally:
        client.close()
        shutil.rmtree(folder, ignore_errors=True)
    return result


# -- Huey, arq, APScheduler ------------------------------------------------------------------

#: The worker's CPU seconds so far, every process of its process group (as in CELERY_APP).
_GROUP_CPU = """
def group_cpu():
    group, total = os.getpgid(0), 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == group:
                total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")
"""

HUEY_APP = (
    textwrap.dedent(
        """
        import os
        import time

        import redis
        from huey import RedisHuey

        URL = os.environ["BENCH_BROKER"]
        huey = RedisHuey("bench-huey", url=URL)
        if os.environ.get("BENCH_TASKEXEC") == "1":
            from taskexec import Recorder
            from taskexec.integrations.huey import connect

            interval = float(os.environ.get("BENCH_FLUSH_INTERVAL") or 0.02)
            connect(huey, Recorder(os.environ["TASKEXEC_DB"], flush_interval=interval))


        @huey.task()
        def noop():
            return None


        @huey.task()
        def mark(key):
            redis.Redis.from_url(URL).set(key, f"{time.time()!r} {group_cpu()!r}")
        """
    )
    + _GROUP_CPU
)

ARQ_APP = (
    textwrap.dedent(
        """
        import os
        import time

        from arq.connections import RedisSettings

        URL = os.environ["BENCH_BROKER"]


        async def noop(ctx):
            return None


        async def mark(ctx, key):
            await ctx["redis"].set(key, f"{time.time()!r} {group_cpu()!r}")


        class WorkerSettings:
            functions = [noop, mark]
            redis_settings = RedisSettings.from_dsn(URL)
            poll_delay = 0.05


        if os.environ.get("BENCH_TASKEXEC") == "1":
            from taskexec import Recorder
            from taskexec.integrations.arq import connect

            interval = float(os.environ.get("BENCH_FLUSH_INTERVAL") or 0.02)
            connect(WorkerSettings, Recorder(os.environ["TASKEXEC_DB"], flush_interval=interval))
        """
    )
    + _GROUP_CPU
)


def _stop_group(proc: subprocess.Popen[bytes], sig: int, timeout: float = 20.0) -> None:
    """Send ``sig`` to the worker's process group (its graceful stop), then KILL what is left."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
    stop(proc)


def _worker_rounds(
    name: str,
    args: argparse.Namespace,
    url: str,
    folder: Path,
    enqueue: Callable[[], None],
    command: list[str],
    graceful: int,
) -> Rounds:
    """Rounds of (without, with) for a worker command that drains what ``enqueue`` queued:
    marker tasks ``start`` and ``end`` around ``args.tasks`` no-op tasks."""
    import redis

    result = Rounds()
    conn = redis.Redis.from_url(url)
    for number in range(args.rounds):
        order = (False, True) if number % 2 == 0 else (True, False)
        for enabled in order:
            conn.flushdb()
            db = folder / f"{name}-round{number}.db"
            enqueue()
            env = worker_env(
                folder,
                BENCH_BROKER=url,
                BENCH_TASKEXEC="1" if enabled else "0",
                BENCH_FLUSH_INTERVAL=str(getattr(args, "flush_interval", 0.02)),
                TASKEXEC_DB=str(db),
                TASKEXEC_SPOOL_DIR=str(folder / "spool"),
            )
            proc = subprocess.Popen(
                command,
                cwd=folder,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                deadline = time.monotonic() + args.timeout
                while conn.get("end") is None:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"the {name} worker did not finish (round {number})")
                    time.sleep(0.05)
            finally:
                _stop_group(proc, graceful)
            (t0, cpu0), (t1, cpu1) = (
                map(float, (conn.get(key) or b"0 0").split()) for key in ("start", "end")
            )
            rate = args.tasks / (t1 - t0)
            cpu_ms = (cpu1 - cpu0) * 1000 / args.tasks
            (result.on if enabled else result.off).append(rate)
            (result.cpu_on if enabled else result.cpu_off).append(cpu_ms)
            print(
                f"  round {number + 1} {'with' if enabled else 'without':7} taskexec: "
                f"{rate:8,.0f} tasks/s ({t1 - t0:.2f} s), worker CPU {cpu_ms:.3f} ms/task",
                flush=True,
            )
            if enabled:
                from taskexec.db.store import Store

                with Store(db) as store:
                    rows = store.count_executions()
                if rows != args.tasks + 2:
                    result.notes.append(f"round {number + 1}: {rows} rows, not {args.tasks + 2}")
    return result


def huey(args: argparse.Namespace, url: str) -> Rounds:
    """No-op tasks through ``huey_consumer -k thread -w N`` (Huey's default worker model),
    a ``RedisHuey``; no-op results are not stored (Huey's default for None)."""
    import importlib

    folder = Path(tempfile.mkdtemp(prefix="bench-huey-"))
    (folder / "bench_huey_app.py").write_text(HUEY_APP)
    os.environ["BENCH_BROKER"] = url
    os.environ.pop("BENCH_TASKEXEC", None)
    sys.path.insert(0, str(folder))
    try:
        app = importlib.import_module("bench_huey_app")

        def enqueue() -> None:
            app.mark("start")
            for _ in range(args.tasks):
                app.noop()
            app.mark("end")

        cmd = [
            sys.executable, "-m", "huey.bin.huey_consumer", "bench_huey_app.huey",
            "-k", "thread", "-w", str(args.concurrency), "-d", "0.01", "-m", "0.1", "-C", "-q",
        ]  # fmt: skip
        return _worker_rounds("huey", args, url, folder, enqueue, cmd, signal.SIGINT)
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("bench_huey_app", None)
        shutil.rmtree(folder, ignore_errors=True)


def arq(args: argparse.Namespace, url: str) -> Rounds:
    """No-op jobs through ``arq WorkerSettings`` (one asyncio process, arq's defaults:
    ``max_jobs=10``, results kept for an hour)."""
    import asyncio

    from arq import create_pool
    from arq.connections import RedisSettings

    folder = Path(tempfile.mkdtemp(prefix="bench-arq-"))
    (folder / "bench_arq_app.py").write_text(ARQ_APP)

    async def publish() -> None:
        pool = await create_pool(RedisSettings.from_dsn(url))
        try:
            await pool.enqueue_job("mark", "start")
            for first in range(0, args.tasks, 500):
                count = min(500, args.tasks - first)
                await asyncio.gather(*(pool.enqueue_job("noop") for _ in range(count)))
            await asyncio.sleep(0.002)  # a later score than the last no-op's
            await pool.enqueue_job("mark", "end")
        finally:
            await pool.aclose()

    try:
        cmd = [sys.executable, "-m", "arq", "bench_arq_app.WorkerSettings"]
        return _worker_rounds(
            "arq", args, url, folder, lambda: asyncio.run(publish()), cmd, signal.SIGTERM
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class _Counter:
    """An APScheduler listener that sets ``done`` once it saw ``total`` events of each code."""

    def __init__(self, total: int, codes: tuple[int, ...]) -> None:
        import threading

        self.total, self.counts = total, dict.fromkeys(codes, 0)
        self.lock, self.done = threading.Lock(), threading.Event()

    def __call__(self, event: object) -> None:
        with self.lock:
            self.counts[getattr(event, "code", 0)] += 1
            if all(n == self.total for n in self.counts.values()):
                self.done.set()


def apscheduler(args: argparse.Namespace, url: str) -> Rounds:
    """``args.tasks`` no-op date jobs due at the same moment in a ``BackgroundScheduler`` of
    this process (APScheduler's default thread pool of 10): runs/s from their due time until
    APScheduler announced every end (to taskexec's listener first, when connected). CPU is
    this process's."""
    from datetime import UTC, datetime, timedelta

    from apscheduler.events import EVENT_JOB_EXECUTED, EVENT_JOB_SUBMITTED
    from apscheduler.schedulers.background import BackgroundScheduler

    from taskexec import Recorder
    from taskexec.db.store import Store
    from taskexec.integrations.apscheduler import connect

    result = Rounds()
    folder = Path(tempfile.mkdtemp(prefix="bench-apscheduler-"))
    os.environ["TASKEXEC_SPOOL_DIR"] = str(folder / "spool")

    def noop() -> None:
        return None

    try:
        for number in range(args.rounds):
            order = (False, True) if number % 2 == 0 else (True, False)
            for enabled in order:
                db = folder / f"round{number}.db"
                scheduler = BackgroundScheduler(timezone=UTC)
                interval = getattr(args, "flush_interval", 0.02)
                rec = Recorder(db, flush_interval=interval) if enabled else None
                if rec is not None:
                    connect(scheduler, rec)
                counter = _Counter(args.tasks, (EVENT_JOB_SUBMITTED, EVENT_JOB_EXECUTED))
                scheduler.add_listener(counter, EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED)
                due = datetime.now(UTC) + timedelta(seconds=1 + args.tasks / 20_000)
                for i in range(args.tasks):
                    scheduler.add_job(
                        noop, "date", run_date=due, id=f"j{i}", misfire_grace_time=None
                    )
                scheduler.start()
                wait = (due - datetime.now(UTC)).total_seconds()
                time.sleep(max(0.0, wait - 0.05))
                cpu0, t0 = time.process_time(), due.timestamp()
                finished = counter.done.wait(args.timeout)
                t1, cpu1 = time.time(), time.process_time()
                scheduler.shutdown(wait=True)
                if not finished:
                    raise SystemExit(f"the scheduler did not finish (round {number})")
                rate = args.tasks / (t1 - t0)
                cpu_ms = (cpu1 - cpu0) * 1000 / args.tasks
                (result.on if enabled else result.off).append(rate)
                (result.cpu_on if enabled else result.cpu_off).append(cpu_ms)
                print(
                    f"  round {number + 1} {'with' if enabled else 'without':7} taskexec: "
                    f"{rate:8,.0f} runs/s ({t1 - t0:.2f} s), CPU {cpu_ms:.3f} ms/run",
                    flush=True,
                )
                if rec is not None:
                    rec.close()
                    with Store(db) as store:
                        rows = store.count_executions()
                        running = store.count_executions(status="running")
                    if rows != args.tasks or running:
                        result.notes.append(
                            f"round {number + 1}: {rows} rows ({running} running), "
                            f"not {args.tasks} finished"
                        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return result


# -- RQ --------------------------------------------------------------------------------------

RQ_JOBS = textwrap.dedent(
    """
    import os
    import time

    import redis


    def noop():
        return None


    def worker_cpu():
        # CPU seconds of the worker process and of the work horses it has waited for
        pid = os.getppid() if os.environ.get("BENCH_HORSE") == "1" else os.getpid()
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        fields = stat[stat.rindex(")") + 2 :].split()
        return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


    def mark(key):
        url = os.environ["BENCH_BROKER"]
        redis.Redis.from_url(url).set(key, f"{time.time()!r} {worker_cpu()!r}")
    """
)


#: Recording worker classes with a Recorder of the chosen flush interval (the CLI's default
#: classes open ``$TASKEXEC_DB`` with the default one).
RQ_WORKERS = textwrap.dedent(
    """
    import os

    from taskexec import Recorder
    from taskexec.integrations import rq

    interval = float(os.environ["BENCH_FLUSH_INTERVAL"])
    rq.connect(Recorder(os.environ["TASKEXEC_DB"], flush_interval=interval))
    Worker, SimpleWorker = rq.Worker, rq.SimpleWorker
    """
)


def _rq_rounds(args: argparse.Namespace, url: str, classes: tuple[str, str], horse: bool) -> Rounds:
    """No-op jobs through ``rq worker --burst --worker-class CLASS`` (without taskexec: RQ's own
    class; with: taskexec's), results discarded, RQ's per-job logging off (``-q``)."""
    import redis
    from rq import Queue

    rq_cli = Path(sys.executable).with_name("rq")
    result = Rounds()
    folder = Path(tempfile.mkdtemp(prefix="bench-rq-"))
    (folder / "bench_rq_jobs.py").write_text(RQ_JOBS)
    (folder / "bench_rq_workers.py").write_text(RQ_WORKERS)
    if args.flush_interval != 0.02:  # not the default: a Recorder made with it
        classes = (classes[0], "bench_rq_workers." + classes[1].rsplit(".", 1)[1])
    conn = redis.Redis.from_url(url)
    try:
        for number in range(args.rounds):
            order = (False, True) if number % 2 == 0 else (True, False)
            for enabled in order:
                conn.flushdb()
                db = folder / f"round{number}.db"
                queue = Queue("bench", connection=conn)
                noop = Queue.prepare_data("bench_rq_jobs.noop", result_ttl=0)
                jobs = [Queue.prepare_data("bench_rq_jobs.mark", ("start",), result_ttl=0)]
                jobs += [noop] * args.tasks  # each is a new job (and id) when enqueued
                jobs.append(Queue.prepare_data("bench_rq_jobs.mark", ("end",), result_ttl=0))
                for start in range(0, len(jobs), 1000):
                    queue.enqueue_many(jobs[start : start + 1000])
                env = worker_env(
                    folder,
                    BENCH_BROKER=url,
                    BENCH_HORSE="1" if horse else "0",
                    BENCH_FLUSH_INTERVAL=str(args.flush_interval),
                    TASKEXEC_DB=str(db),
                    TASKEXEC_SPOOL_DIR=str(folder / "spool"),
                )
                cmd = [
                    str(rq_cli), "worker", "--burst", "-q", "--disable-job-desc-logging",
                    "--worker-class", classes[enabled], "--url", url, "bench",
                ]  # fmt: skip
                proc = subprocess.Popen(
                    cmd,
                    cwd=folder,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
                try:
                    proc.wait(args.timeout)
                except subprocess.TimeoutExpired:
                    raise SystemExit(f"the rq worker did not finish (round {number})") from None
                finally:
                    stop(proc)
                if conn.get("end") is None:
                    raise SystemExit(f"the rq worker did not run every job (round {number})")
                (t0, cpu0), (t1, cpu1) = (
                    map(float, (conn.get(key) or b"0 0").split()) for key in ("start", "end")
                )
                rate = args.tasks / (t1 - t0)
                cpu_ms = (cpu1 - cpu0) * 1000 / args.tasks
                (result.on if enabled else result.off).append(rate)
                (result.cpu_on if enabled else result.cpu_off).append(cpu_ms)
                print(
                    f"  round {number + 1} {'with' if enabled else 'without':7} taskexec: "
                    f"{rate:8,.0f} jobs/s ({t1 - t0:.2f} s), worker CPU {cpu_ms:.3f} ms/job",
                    flush=True,
                )
                if enabled:
                    from taskexec.db.store import Store

                    with Store(db) as store:
                        rows = store.count_executions()
                    if rows != args.tasks + 2:
                        result.notes.append(
                            f"round {number + 1}: {rows} rows, not {args.tasks + 2}"
                        )
    finally:
        conn.close()
        shutil.rmtree(folder, ignore_errors=True)
    return result


def rq(args: argparse.Namespace, url: str) -> Rounds:
    """No-op jobs through ``rq worker`` (a forked work horse per job), redis."""
    return _rq_rounds(
        args, url, ("rq.worker.Worker", "taskexec.integrations.rq.Worker"), horse=True
    )


def rq_simple(args: argparse.Namespace, url: str) -> Rounds:
    """No-op jobs through ``rq worker --worker-class SimpleWorker`` (jobs run in the worker)."""
    return _rq_rounds(
        args,
        url,
        ("rq.worker.SimpleWorker", "taskexec.integrations.rq.SimpleWorker"),
        horse=False,
    )


# -- Dramatiq --------------------------------------------------------------------------------

DRAMATIQ_APP = textwrap.dedent(
    """
    import os
    import time

    import dramatiq
    import redis
    from dramatiq.brokers.redis import RedisBroker

    URL = os.environ["BENCH_BROKER"]
    broker = RedisBroker(url=URL)
    if os.environ.get("BENCH_TASKEXEC") == "1":
        from taskexec import Recorder
        from taskexec.integrations.dramatiq import Middleware

        interval = float(os.environ.get("BENCH_FLUSH_INTERVAL") or 0.02)
        recorder = Recorder(os.environ["TASKEXEC_DB"], flush_interval=interval)
        broker.add_middleware(Middleware(recorder))
    dramatiq.set_broker(broker)


    @dramatiq.actor(actor_name="noop", max_retries=0)
    def noop():
        return None


    def group_cpu():
        # CPU seconds used so far by the worker: every process of its process group
        group, total = os.getpgid(0), 0
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        stat = f.read()
                except OSError:
                    continue
                fields = stat[stat.rindex(")") + 2 :].split()
                if int(fields[2]) == group:
                    total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")


    @dramatiq.actor(actor_name="mark", max_retries=0)
    def mark(key):
        redis.Redis.from_url(URL).set(key, f"{time.time()!r} {group_cpu()!r}")
    """
)


def dramatiq(args: argparse.Namespace, url: str) -> Rounds:
    """No-op messages through ``dramatiq MODULE --processes 1 --threads N``, Redis broker."""
    import redis
    from dramatiq import Message
    from dramatiq.brokers.redis import RedisBroker

    result = Rounds()
    folder = Path(tempfile.mkdtemp(prefix="bench-dramatiq-"))
    (folder / "bench_dramatiq_app.py").write_text(DRAMATIQ_APP)
    conn = redis.Redis.from_url(url)
    client = RedisBroker(url=url)
    client.declare_queue("default")

    def message(actor: str, *args: object) -> Message:
        return Message(queue_name="default", actor_name=actor, args=args, kwargs={}, options={})

    try:
        for number in range(args.rounds):
            order = (False, True) if number % 2 == 0 else (True, False)
            for enabled in order:
                conn.flushdb()
                db = folder / f"round{number}.db"
                client.enqueue(message("mark", "start"))
                for _ in range(args.tasks):
                    client.enqueue(message("noop"))
                client.enqueue(message("mark", "end"))
                env = worker_env(
                    folder,
                    BENCH_BROKER=url,
                    BENCH_TASKEXEC="1" if enabled else "0",
                    BENCH_FLUSH_INTERVAL=str(args.flush_interval),
                    TASKEXEC_DB=str(db),
                    TASKEXEC_SPOOL_DIR=str(folder / "spool"),
                )
                cmd = [
                    sys.executable, "-m", "dramatiq", "bench_dramatiq_app",
                    "--processes", "1", "--threads", str(args.concurrency),
                ]  # fmt: skip
                proc = subprocess.Popen(
                    cmd,
                    cwd=folder,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
                try:
                    deadline = time.monotonic() + args.timeout
                    while conn.get("end") is None:
                        if proc.poll() is not None or time.monotonic() > deadline:
                            raise SystemExit(f"the dramatiq worker did not finish (round {number})")
                        time.sleep(0.05)
                finally:
                    stop(proc)
                (t0, cpu0), (t1, cpu1) = (
                    map(float, (conn.get(key) or b"0 0").split()) for key in ("start", "end")
                )
                rate = args.tasks / (t1 - t0)
                cpu_ms = (cpu1 - cpu0) * 1000 / args.tasks
                (result.on if enabled else result.off).append(rate)
                (result.cpu_on if enabled else result.cpu_off).append(cpu_ms)
                print(
                    f"  round {number + 1} {'with' if enabled else 'without':7} taskexec: "
                    f"{rate:8,.0f} messages/s ({t1 - t0:.2f} s), worker CPU {cpu_ms:.3f} ms/msg",
                    flush=True,
                )
                if enabled:
                    from taskexec.db.store import Store

                    with Store(db) as store:
                        rows = store.count_executions()
                    # With several threads the end marker can finish while a few prefetched
                    # messages wait; the stop requeues those (their bodies stay until acked).
                    left = int(conn.hlen("dramatiq:default.msgs"))
                    if rows != args.tasks + 2 - left:
                        result.notes.append(
                            f"round {number + 1}: {rows} rows, not {args.tasks + 2 - left} "
                            f"({left} messages were not processed)"
                        )
    finally:
        client.close()
        conn.close()
        shutil.rmtree(folder, ignore_errors=True)
    return result


FRAMEWORKS: dict[str, Callable[[argparse.Namespace, str], Rounds]] = {
    "celery": celery,
    "huey": huey,
    "arq": arq,
    "apscheduler": apscheduler,
    "rq": rq,
    "rq-simple": rq_simple,
    "dramatiq": dramatiq,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("frameworks", nargs="*", help=f"any of {', '.join(FRAMEWORKS)} (all)")
    parser.add_argument("--tasks", type=int, default=10_000, help="no-op tasks per worker run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (without, with)")
    parser.add_argument("--concurrency", type=int, default=2, help="pool processes")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per worker run")
    parser.add_argument(
        "--flush-interval", type=float, default=0.02, help="the Recorder's flush_interval (s)"
    )
    args = parser.parse_args()
    names = args.frameworks or list(FRAMEWORKS)
    unknown = sorted(set(names) - set(FRAMEWORKS))
    if unknown:
        parser.error(f"unknown framework(s) {unknown}; known: {', '.join(FRAMEWORKS)}")
    summary = []
    with redis_server() as url:
        for name in names:
            print(
                f"{name}: {args.tasks:,} no-op tasks per run, {args.rounds} rounds, "
                f"flush_interval {args.flush_interval} s",
                flush=True,
            )
            rounds = FRAMEWORKS[name](args, url)
            ratios = rounds.ratios
            median = statistics.median(ratios)
            summary.append((name, rounds, median))
            print(
                f"  throughput ratio with/without per round: "
                f"{', '.join(f'{r:.3f}' for r in ratios)}; median {median:.3f} "
                f"(cost {1 - median:.1%})",
                flush=True,
            )
            if rounds.cpu_ratios:
                cpu = statistics.median(rounds.cpu_ratios)
                extra = statistics.median(
                    on - off for off, on in zip(rounds.cpu_off, rounds.cpu_on, strict=True)
                )
                print(
                    f"  worker CPU per task with/without per round: "
                    f"{', '.join(f'{r:.3f}' for r in rounds.cpu_ratios)}; median {cpu:.3f} "
                    f"(+{extra * 1000:.0f} µs per task)",
                    flush=True,
                )
            for note in rounds.notes:
                print("  note:", note)
    print()
    print("| framework | tasks/s without, with (medians) | ratio | worker CPU ms/task | target |")
    print("| --- | --- | --- | --- | --- |")
    for name, rounds, median in summary:
        verdict = "met" if median >= TARGET_RATIO else "not met"
        cpu = (
            f"{statistics.median(rounds.cpu_off):.3f}, {statistics.median(rounds.cpu_on):.3f}"
            if rounds.cpu_off
            else "-"
        )
        print(
            f"| {name} | {statistics.median(rounds.off):,.0f}, "
            f"{statistics.median(rounds.on):,.0f} | {median:.3f} | {cpu} "
            f"| ratio >= {TARGET_RATIO}: {verdict} |"
        )


if __name__ == "__main__":
    main()
