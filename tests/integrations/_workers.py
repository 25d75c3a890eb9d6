"""What every real-worker test needs: the rows a worker wrote, waiting for them, and stopping
the worker's whole process group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from taskexec.db.store import Store
from taskexec.errors import DatabaseError


def rows_of(db: Path) -> list[dict[str, Any]]:
    """Every row of ``db`` (none while the file does not exist or is being created)."""
    try:
        store = Store.open_readonly(db)
    except DatabaseError:
        return []
    try:
        return list(store.iter_executions())
    finally:
        store.close()


def wait_for(
    predicate: Callable[[], Any],
    timeout: float,
    what: str,
    proc: subprocess.Popen[Any] | None = None,
) -> Any:
    """Poll ``predicate`` until it is truthy; fail when ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the worker exited ({proc.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def stop(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` to the worker's process group, wait, then kill whatever is left of it (a
    scheduler, a work horse, a child process)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
