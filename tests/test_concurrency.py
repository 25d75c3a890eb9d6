"""Several processes writing one file lose nothing; a killed writer leaves a sound database."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

WRITER = textwrap.dedent(
    """
    import sys
    from taskexec import Recorder
    path, worker, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rec = Recorder(path, strict=True)
    for i in range(count):
        with rec.track("job", task_id=f"w{worker}") as run:
            run.set(i=i)
    rec.close()
    """
)

BULK_FOREVER = textwrap.dedent(
    """
    import sys, itertools
    from datetime import UTC, datetime, timedelta
    from taskexec import Store, TaskExecution
    path = sys.argv[1]
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    store = Store(path)
    print("ready", flush=True)
    for n in itertools.count():
        batch = [TaskExecution(task_slug="bulk", task_id="b",
                               started_at=t0 + timedelta(seconds=n * 1000 + i),
                               content="x" * 200) for i in range(1000)]
        store.append_many(batch)
    """
)


def test_four_processes_lose_nothing(db_path):
    # Create the schema first so the workers race on rows, not on migration.
    from taskexec import Store

    Store(db_path).close()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db_path), str(w), "2000"],
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(4)
    ]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
        assert "locked" not in err
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT count(*) FROM task_executions").fetchone()[0] == 8000
    assert (
        conn.execute("SELECT count(*) FROM task_executions WHERE status != 'success'").fetchone()[0]
        == 0
    )
    assert conn.execute("SELECT count(DISTINCT task_id) FROM task_executions").fetchone()[0] == 4
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_kill_9_mid_write_leaves_whole_transactions(db_path):
    from taskexec import Store

    Store(db_path).append_many([])  # create
    proc = subprocess.Popen(
        [sys.executable, "-c", BULK_FOREVER, str(db_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    time.sleep(1.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    count = conn.execute("SELECT count(*) FROM task_executions").fetchone()[0]
    assert count > 0 and count % 1000 == 0  # only whole batches
    conn.execute("INSERT INTO task_executions_fts (task_executions_fts) VALUES ('integrity-check')")
    # And the file is still writable by taskexec afterwards.
    with Store(db_path) as s:
        assert s.count_executions() == count


LOAD_EMPTY = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from taskexec import Store
    from taskexec.ingest.demo import generate
    store = Store(sys.argv[1])
    print("ready", flush=True)
    store.append_many(generate(runs=2_000_000, days=30, end=datetime(2026, 1, 1, tzinfo=UTC)))
    """
)


def test_kill_9_during_bulk_load_into_empty_file_is_all_or_nothing(db_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", LOAD_EMPTY, str(db_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    time.sleep(2.0)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    from taskexec import Store

    with Store(db_path) as s:  # reopening rolls back the hot journal
        assert s.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert s.count_executions() == 0
        names = {r[0] for r in s.conn.execute("SELECT name FROM sqlite_master")}
        assert {"ux_te_idempotency_key", "te_fts_ai"} <= names  # indexes and triggers are back
        assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


LOAD_LIST = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from taskexec import Store
    from taskexec.db.bulkload import default_workers
    from taskexec.ingest.demo import generate
    records = list(generate(runs=150_000, days=30, end=datetime(2026, 1, 1, tzinfo=UTC)))
    store = Store(sys.argv[1])
    print("ready", default_workers(), flush=True)
    store.append_many(records)
    """
)


def test_kill_9_during_a_parallel_bulk_load_is_all_or_nothing(db_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", LOAD_LIST, str(db_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    ready, workers = proc.stdout.readline().split()
    assert ready == "ready" and int(workers) > 1  # the load forks workers
    time.sleep(1.5)
    os.kill(proc.pid, signal.SIGKILL)  # the workers are orphaned and finish on their own
    proc.wait(timeout=10)
    from taskexec import Store

    with Store(db_path) as s:
        assert s.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert s.count_executions() == 0
        names = {r[0] for r in s.conn.execute("SELECT name FROM sqlite_master")}
        assert {"ux_te_idempotency_key", "te_fts_ai"} <= names
        assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
