"""Bulk loads into an empty table: the parallel way gives exactly what the in-process way gives."""

from __future__ import annotations

import dataclasses
import sqlite3
import warnings
from datetime import UTC, datetime
from pathlib import Path

import pytest

from taskexec import Store
from taskexec.db.bulkload import forkable, load_direct, load_parallel
from taskexec.ingest.demo import generate

END = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def records():
    return list(generate(runs=4000, days=10, seed=11, end=END))


@pytest.fixture(autouse=True)
def _can_fork():
    # Workers are forked only when no other thread runs; a leftover thread would hide the path.
    import threading

    others = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    assert forkable(), f"threads running in the test process, so nothing would be forked: {others}"


def dump(path: Path) -> dict[str, list[tuple]]:
    """Everything a load writes, in a comparable form (created_at differs by a clock tick)."""
    conn = sqlite3.connect(path)
    out = {
        "rows": conn.execute("SELECT * FROM task_executions ORDER BY id").fetchall(),
        "groups": conn.execute("SELECT * FROM error_groups ORDER BY stack_hash").fetchall(),
        "search": conn.execute(
            "SELECT rowid FROM task_executions_fts WHERE task_executions_fts MATCH 'timeout' "
            "ORDER BY rowid"
        ).fetchall(),
        "schema": conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_stat%' "
            "ORDER BY name"
        ).fetchall(),
    }
    created = [c[1] for c in conn.execute("PRAGMA table_info(task_executions)")].index("created_at")
    out["rows"] = [r[:created] + r[created + 1 :] for r in out["rows"]]
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.execute("INSERT INTO task_executions_fts (task_executions_fts) VALUES ('integrity-check')")
    conn.close()
    return out


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".load-" in p.name)


@pytest.mark.parametrize("workers", [2, 3])
def test_parallel_load_matches_the_in_process_load(tmp_path, records, workers):
    with Store(tmp_path / "one.db") as one, Store(tmp_path / "many.db") as many:
        a = one.append_many(records, workers=1)
        b = many.append_many(records, workers=workers)
    assert a == b and a.inserted == len(records) and a.duplicates == 0
    expected, got = dump(tmp_path / "one.db"), dump(tmp_path / "many.db")
    assert got["rows"] == expected["rows"]
    assert [
        r[0]
        for r in sqlite3.connect(tmp_path / "many.db").execute(
            "SELECT id FROM task_executions ORDER BY id"
        )
    ] == list(range(1, len(records) + 1))
    assert got == expected
    assert got["groups"] and got["search"]  # the comparison is not between two empty results
    assert leftovers(tmp_path) == []
    with Store(tmp_path / "many.db") as again:  # and a rerun adds nothing
        assert again.append_many(records, workers=workers).inserted == 0


def test_duplicates_across_parts_count_once_and_the_first_wins(tmp_path, records):
    first_half = records[: len(records) // 2]
    # A record of the first part repeated at the end (the worker's part), plus an in-part repeat.
    again = dataclasses.replace(first_half[5], content="a later copy")
    batch = [*records, again, records[-1]]
    with Store(tmp_path / "d.db") as store:
        result = store.append_many(tuple(batch), workers=2)
        assert (result.inserted, result.duplicates) == (len(records), 2)
        row = store.conn.execute(
            "SELECT content FROM task_executions WHERE span_id = ?", (again.span_id,)
        ).fetchone()
        assert row[0] == first_half[5].content


def test_a_failing_worker_is_reported_and_the_load_is_all_or_nothing(tmp_path, records):
    bad = dataclasses.replace(records[-1])
    object.__setattr__(bad, "started_at", "not a datetime")  # broken after validation
    batch = [*records[:-1], bad]  # the last record falls in the worker's part
    with Store(tmp_path / "bad.db") as store:
        with pytest.raises(AttributeError), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            store.append_many(batch, workers=2)
        assert any("worker failed" in str(w.message) for w in caught)
        assert store.count_executions() == 0
        names = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master")}
        assert {"ux_te_span_id", "te_fts_ai"} <= names  # the dropped indexes came back
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.append_many(batch[:100], workers=2).inserted == 100  # usable afterwards
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("load", ["parallel", "direct"])
def test_a_table_that_filled_meanwhile_gets_rows_by_value(tmp_path, records, load):
    # The empty check and the load's transaction are apart; another writer may get in between.
    # The load functions are called on a non-empty table to take that path.
    with Store(tmp_path / "race.db") as store:
        store.append_many(records[:500], workers=1)
        if load == "parallel":
            result = load_parallel(store._db, records, 2)
        else:
            result = load_direct(store._db, records)
        assert (result.inserted, result.duplicates) == (len(records) - 500, 500)
        assert store.count_executions() == len(records)
    with Store(tmp_path / "ref.db") as ref:
        ref.append_many(records, workers=1)
    got, expected = dump(tmp_path / "race.db"), dump(tmp_path / "ref.db")
    assert sorted(r[1:] for r in got["rows"]) == sorted(r[1:] for r in expected["rows"])
    assert got["groups"] == expected["groups"]
    assert len(got["search"]) == len(expected["search"])
