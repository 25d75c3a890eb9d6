"""Shared fixtures: fresh database files and a small demo database built once per session."""

from __future__ import annotations

import itertools
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from taskexec.db.store import Store
from taskexec.ingest.demo import generate

#: A fixed anchor so demo rows (and the assertions on them) are the same on every run.
DEMO_END = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A path for a new database file (not created yet)."""
    return tmp_path / "tasks.db"


@pytest.fixture
def store(db_path: Path):
    """A fresh, migrated store; closed after the test."""
    s = Store(db_path)
    yield s
    s.close()


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo database with 3,000 runs over 14 days, shared read-only by many tests."""
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    with Store(path) as s:
        s.append_many(generate(runs=3000, days=14, seed=7, end=DEMO_END))
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def end(proc: subprocess.Popen[Any], timeout: float = 10) -> None:
    """Stop a server the test started: SIGTERM, then SIGKILL if it has not exited in time."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory):
    """A real ``redis-server`` (Debian's; ``scripts/test.sh`` installs it) on a free loopback
    port, no persistence, for the scheduler integrations' brokers. Yields ``redis://...``."""
    import shutil
    import socket
    import subprocess
    import time

    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is not installed: `bash scripts/test.sh` installs Debian's")
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [
            server,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(folder),
            "--protected-mode", "yes",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("redis-server did not start")
        time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}"
    finally:
        end(proc, 5)


@pytest.fixture
def redis_db(redis_url: str):
    """A redis URL with its own database number per test, flushed before use."""

    import redis

    number = next(_REDIS_DBS)
    url = f"{redis_url}/{number}"
    redis.Redis.from_url(url).flushdb()
    return url


_REDIS_DBS = itertools.cycle(range(1, 16))
