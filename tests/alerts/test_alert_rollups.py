"""The alert probes read rollups and narrow indexes instead of scanning the window's rows; each
must still find exactly what a plain reading of the raw rows finds.

One small database (random rows over three days, plus hand-made cases: hour boundaries, a
window inside one hour, late starts just over and under a minute, an error back after a long
streak with no failure before it) is judged at many moments and thresholds, and each probe's
answer is compared with the same definition computed here in Python from every row.
"""

from __future__ import annotations

import math
import random
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from taskexec import probes
from taskexec.alerts.schedules import Schedule
from taskexec.cli.alerts import save_schedule
from taskexec.db import Store, rollups, schema
from taskexec.model import TaskExecution, format_ts

T0 = datetime(2026, 11, 20, tzinfo=UTC)
HOUR, DAY = timedelta(hours=1), timedelta(days=1)
FAILED = ("failed", "timeout", "abandoned")
GROUPS = [f"{i:016x}" for i in range(1, 7)]


def _rows(rng: random.Random) -> Iterator[TaskExecution]:
    """Random attempts of five tasks over three days, some exactly on the hour."""
    for _ in range(2500):
        task = rng.choice("abcde")
        if rng.random() < 0.1:
            start = T0 + timedelta(hours=rng.randrange(72), minutes=rng.choice([0, 0, 30, 59]))
        else:
            start = T0 + timedelta(milliseconds=rng.randrange(3 * 86_400_000))
        roll = rng.random()
        status = (
            "success" if roll < 0.6 else "failed" if roll < 0.75 else "timeout" if roll < 0.8
            else "abandoned" if roll < 0.85 else "cancelled" if roll < 0.92 else "running"
        )  # fmt: skip
        duration = None
        if status != "running" and rng.random() < 0.95:
            duration = round(math.exp(rng.gauss(7 if task != "e" else 9, 1.2)), 3)
        scheduled = None
        if rng.random() < 0.85:
            late = rng.choice([0, 1, 29, 31, 59, 61, 119, 121, 299, 301, 599, 601, 3601])
            scheduled = start - timedelta(seconds=late)
        group = None
        if status in FAILED and rng.random() < 0.8:
            group = rng.choice(GROUPS[:5] if task != "d" else GROUPS)
        elif status != "success" and rng.random() < 0.05:  # a cancelled run has a stack too
            group = rng.choice(GROUPS)
        yield TaskExecution(
            task_slug=task,
            started_at=start,
            status=status,
            attempt=1 if rng.random() < 0.8 else rng.randint(2, 3),
            duration_ms=duration,
            scheduled_at=scheduled,
            stack_hash=group,
            error_type="KeyError" if group else None,
            error_message="'sku'" if group else None,
        )


def _cases() -> Iterator[TaskExecution]:
    """Hand-made cases the random rows may miss."""
    # "quiet" never failed before its 200 successes; the group it then fails with was last
    # seen in another task nine days before.
    group = "00000000000000aa"
    failure = {"status": "failed", "duration_ms": 5.0, "stack_hash": group, "error_type": "E"}
    yield TaskExecution(task_slug="noisy", started_at=T0 - 9 * DAY, **failure)
    for i in range(200):
        yield TaskExecution(task_slug="quiet", started_at=T0 + i * 15 * timedelta(minutes=1))
    yield TaskExecution(task_slug="quiet", started_at=T0 + 55 * HOUR, **failure)
    # "slow": 60 old slow successes, then 50 fast ones: its p95 is the fast runs'.
    for i in range(110):
        took = 100_000.0 if i < 60 else 1_000.0 + i
        yield TaskExecution(task_slug="slow", started_at=T0 + i * HOUR / 2, duration_ms=took)
    yield TaskExecution(task_slug="slow", started_at=T0 + 56 * HOUR, duration_ms=4_000.0)
    yield TaskExecution(task_slug="slow", started_at=T0 + 60 * HOUR, status="running")
    # "flaky" succeeds every half hour, then fails three times in four for two hours
    for i in range(144):
        yield TaskExecution(task_slug="flaky", started_at=T0 + i * HOUR / 2)
    for i in range(24):
        start = T0 + 49 * HOUR + i * 5 * timedelta(minutes=1) + timedelta(seconds=7)
        status = "success" if i % 4 == 0 else "failed"
        yield TaskExecution(task_slug="flaky", started_at=start, status=status)
    # late starts around the one-minute line, for a task allowed 30 s
    for i, late in enumerate((29, 31, 59, 61, 299, 301)):
        start = T0 + 50 * HOUR + i * 7 * timedelta(minutes=1)
        yield TaskExecution(
            task_slug="strict", started_at=start, scheduled_at=start - timedelta(seconds=late)
        )


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("alerts") / "alerts.db"
    with Store(path) as store:
        store.append_many([*_rows(random.Random(11)), *_cases()])
        for schedule in (
            Schedule(
                "a", every_seconds=3600, grace_seconds=0, thresholds={"factor": 2, "streak": 3}
            ),
            Schedule(
                "b",
                every_seconds=3600,
                grace_seconds=600,
                max_duration_seconds=20,
                thresholds={"quiet_days": 1},
            ),
            Schedule("strict", every_seconds=3600, grace_seconds=30),
        ):
            save_schedule(store, schedule)
    return path


@pytest.fixture(scope="module")
def raw(db: Path) -> dict[str, Any]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    rows = [dict(r) for r in conn.execute("SELECT * FROM task_executions ORDER BY started_at")]
    schedules = {r["task_slug"]: dict(r) for r in conn.execute("SELECT * FROM schedules")}
    conn.close()
    return {"rows": rows, "schedules": schedules}


@pytest.fixture(scope="module")
def reader(db: Path) -> Iterator[Store]:
    s = Store.open_readonly(db)
    yield s
    s.close()


#: Moments to judge at: on the hour, just after one, inside the data, past its end.
NOWS = [
    T0 + 26 * HOUR,
    T0 + 26 * HOUR + timedelta(milliseconds=1),
    T0 + 40 * HOUR + timedelta(minutes=30),
    T0 + 50 * HOUR + timedelta(minutes=17, seconds=3, milliseconds=250),
    T0 + 55 * HOUR + timedelta(minutes=59, seconds=59),
    T0 + 56 * HOUR + timedelta(minutes=30),
    T0 + 71 * HOUR + timedelta(minutes=5),
    T0 + 74 * HOUR,
]


def _ts(moment: datetime) -> str:
    return format_ts(moment)


def _round(x: float) -> int:
    """SQLite's round(): halves away from zero."""
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def _found(store: Store, probe: str, now: datetime, **params: Any) -> list[dict[str, Any]]:
    return store.run_probe(probe, {"now": now.isoformat(), **params}).dicts()


# -- failure-rate spikes -------------------------------------------------------------------------


def spikes(raw: dict[str, Any], now: datetime, window: int, baseline: int, least: int) -> set:
    since, start, end = _ts(now - timedelta(seconds=window)), _ts(now - timedelta(
        seconds=window + baseline)), _ts(now)  # fmt: skip
    tasks: dict[str, list[int]] = {}
    firsts: dict[str, str] = {}
    for r in raw["rows"]:
        if r["status"] == "running" or not start <= r["started_at"] <= end:
            continue
        t = tasks.setdefault(r["task_slug"], [0, 0, 0, 0])
        failed = r["status"] in FAILED
        if r["started_at"] >= since:
            t[0], t[1] = t[0] + 1, t[1] + failed
            if failed:
                firsts.setdefault(r["task_slug"], r["started_at"])
        else:
            t[2], t[3] = t[2] + 1, t[3] + failed
    out = set()
    for task, (n, f, bn, bf) in tasks.items():
        usual = bf / bn if bn else 0
        if n >= least and f / n >= 2 * usual and f / n >= usual + 0.2:
            title = (
                f"{task} fails {_round(100 * f / n)}% of attempts (usually {_round(100 * usual)}%)"
            )
            out.add((task, firsts.get(task), title, f"{f} of {n} attempts in the window failed"))
    return out


@pytest.mark.parametrize(
    ("window", "baseline", "least"),
    [(3600, 604800, 5), (1800, 604800, 1), (7200, 3600, 1), (600, 1000, 1), (86400, 36000, 2)],
)
def test_failure_spikes_match_the_raw_rows(reader, raw, window, baseline, least):
    seen = 0
    for now in NOWS:
        found = _found(reader, "alert_failure_spikes", now, window_seconds=window,
                       baseline_seconds=baseline, min_attempts=least)  # fmt: skip
        got = {(a["task_slug"], a["since"], a["title"], a["detail"]) for a in found}
        assert got == spikes(raw, now, window, baseline, least), now
        seen += len(got)
    assert seen  # the comparison is not vacuous


# -- late starts ---------------------------------------------------------------------------------


def late(raw: dict[str, Any], now: datetime, window: int, grace: float) -> set:
    since, end = _ts(now - timedelta(seconds=window)), _ts(now)
    out = set()
    for r in raw["rows"]:
        if r["attempt"] != 1 or r["scheduled_at"] is None:
            continue
        if not since <= r["started_at"] <= end:
            continue
        allowed = raw["schedules"].get(r["task_slug"], {}).get("grace_seconds", grace)
        lateness = datetime.fromisoformat(r["started_at"]) - datetime.fromisoformat(
            r["scheduled_at"]
        )
        if lateness.total_seconds() > allowed:
            out.add(r["span_id"])
    return out


@pytest.mark.parametrize(("window", "grace"), [(86400, 300), (86400, 30), (3600, 0), (200000, 90)])
def test_late_starts_match_the_raw_rows(reader, raw, window, grace):
    seen = 0
    for now in NOWS:
        found = _found(reader, "alert_late_starts", now, window_seconds=window, grace_seconds=grace)
        got = {a["alert_key"] for a in found}
        assert got == late(raw, now, window, grace), now
        seen += len(got)
    assert seen


def test_late_starts_under_a_minute_are_found_for_a_task_allowed_less(reader):
    found = _found(reader, "alert_late_starts", T0 + 51 * HOUR)
    titles = sorted(a["title"].split(" s after")[0] for a in found if a["task_slug"] == "strict")
    assert titles == [f"strict started {s}" for s in (299, 301, 31, 59, 61)]


# -- long runs -----------------------------------------------------------------------------------


def long_runs(raw: dict[str, Any], now: datetime, window: int, factor: float, history: int) -> set:
    since, end = _ts(now - timedelta(seconds=window)), _ts(now)
    limits: dict[str, float | None] = {}
    for task in {r["task_slug"] for r in raw["rows"]}:
        schedule = raw["schedules"].get(task, {})
        if schedule.get("max_duration_seconds") is not None:
            limits[task] = schedule["max_duration_seconds"] * 1000
            continue
        recent = [
            r["duration_ms"]
            for r in reversed(raw["rows"])
            if r["task_slug"] == task and r["status"] == "success" and r["duration_ms"] is not None
        ][:history]
        if len(recent) < 10:
            limits[task] = None
            continue
        ranked = sorted(recent)
        p95 = next(d for rank, d in enumerate(ranked, 1) if rank >= 0.95 * len(ranked))
        extra = {"a": 2}.get(task, factor)  # task a's schedule sets its factor
        limits[task] = extra * p95
    out = set()
    for r in raw["rows"]:
        if r["status"] not in ("running", "success", "failed", "timeout"):
            continue
        if not since <= r["started_at"] <= end or limits[r["task_slug"]] is None:
            continue
        took = r["duration_ms"]
        if took is None:
            took = (now - datetime.fromisoformat(r["started_at"])).total_seconds() * 1000
        if took > limits[r["task_slug"]]:
            out.add(r["span_id"])
    return out


@pytest.mark.parametrize(
    ("window", "factor", "history"),
    [(86400, 3, 50), (86400, 1, 10), (3600, 2, 20), (300000, 1.5, 100)],
)
def test_long_runs_match_the_raw_rows(reader, raw, window, factor, history):
    seen = 0
    for now in NOWS:
        found = _found(reader, "alert_long_runs", now, window_seconds=window, factor=factor,
                       history=history)  # fmt: skip
        got = {a["alert_key"] for a in found}
        assert got == long_runs(raw, now, window, factor, history), now
        seen += len(got)
    assert seen


def test_long_runs_p95_comes_from_the_last_successes_only(reader):
    # "slow"'s last 50 successes take about 1 s (its 60 older ones 100 s): 4 s is long
    (alert,) = [
        a for a in _found(reader, "alert_long_runs", T0 + 57 * HOUR) if a["task_slug"] == "slow"
    ]
    assert alert["title"] == "slow took 4 s"
    assert alert["detail"] == "longer than 3x its p95 of 1108 ms; status success"


# -- regressions ---------------------------------------------------------------------------------


def regressions(raw: dict[str, Any], now: datetime, window: int, quiet: float, streak: int) -> set:
    since, end = _ts(now - timedelta(seconds=window)), _ts(now)
    rows = raw["rows"]
    back: dict[str, str] = {}
    for r in rows:
        if r["stack_hash"] and since <= r["started_at"] <= end and not r["first_seen_error"]:
            back[r["stack_hash"]] = min(back.get(r["stack_hash"], r["started_at"]), r["started_at"])
    out = set()
    for group, at in back.items():
        previous = max(
            (r["started_at"] for r in rows if r["stack_hash"] == group and r["started_at"] < at),
            default=None,
        )
        for r in rows:
            if r["stack_hash"] != group or r["started_at"] != at:
                continue
            task = r["task_slug"]
            mine = [x for x in rows if x["task_slug"] == task and x["started_at"] < at]
            last_failure = max((x["started_at"] for x in mine if x["status"] in FAILED), default="")
            successes = sum(
                x["status"] == "success" and x["started_at"] > last_failure for x in mine
            )
            schedule = {"a": {"streak": 3}, "b": {"quiet_days": 1}}.get(task, {})
            days = schedule.get("quiet_days", quiet)
            bar = _ts(datetime.fromisoformat(at) - timedelta(days=days))
            if previous is not None and previous < bar:
                out.add((task, group, at, f"quiet since {previous}"))
            elif successes >= schedule.get("streak", streak):
                out.add((task, group, at, f"after {successes} successes in a row"))
    return out


@pytest.mark.parametrize(
    ("window", "quiet", "streak"), [(86400, 7, 20), (86400, 1, 3), (3600, 0.2, 1), (300000, 2, 5)]
)
def test_regressions_match_the_raw_rows(reader, raw, window, quiet, streak):
    seen = 0
    for now in NOWS:
        found = _found(reader, "alert_regressions", now, window_seconds=window, quiet_days=quiet,
                       streak=streak)  # fmt: skip
        got = {
            (a["task_slug"], a["alert_key"], a["since"], a["detail"].split("; ")[0]) for a in found
        }
        assert got == regressions(raw, now, window, quiet, streak), now
        seen += len(got)
    assert seen


def test_a_regression_after_a_streak_with_no_failure_before_it(reader):
    found = _found(reader, "alert_regressions", T0 + 56 * HOUR, quiet_days=30)
    (alert,) = [a for a in found if a["task_slug"] == "quiet"]
    assert alert["detail"] == "after 200 successes in a row; "


# -- the indexes ---------------------------------------------------------------------------------

ALERT_INDEXES = {
    "alert_late_starts": "ix_te_late_starts",
    "alert_long_runs": "ix_te_long_runs",
    "alert_regressions": "ix_te_stack_hash_started",
}


@pytest.mark.parametrize(("probe", "index"), ALERT_INDEXES.items())
def test_each_probe_reads_its_index(reader, probe, index):
    sql = reader.conn.execute(f"SELECT sql FROM sqlite_master WHERE name = '{index}'").fetchone()
    assert sql is not None  # made with the schema (m001 for a new file, else m006)
    found = probes.get(probe)
    bound = found.bind({"now": (T0 + 56 * HOUR).isoformat()})
    plan = " ".join(r[3] for r in reader.conn.execute("EXPLAIN QUERY PLAN " + found.sql, bound))
    assert index in plan


def test_the_answers_do_not_depend_on_the_indexes(db, reader, tmp_path):
    """A file that lacks them (made before they were) gets the same answers, only slower."""
    bare = tmp_path / "bare.db"
    source, target = sqlite3.connect(db), sqlite3.connect(bare)
    source.backup(target)
    for index in ALERT_INDEXES.values():
        target.execute(f"DROP INDEX {index}")
    target.commit()
    source.close()
    target.close()
    with Store.open_readonly(bare) as plain:
        for probe in ("alert_failure_spikes", *ALERT_INDEXES):
            for now in NOWS:
                params = {"min_attempts": 1} if probe == "alert_failure_spikes" else {}
                assert _found(plain, probe, now, **params) == _found(reader, probe, now, **params)


def test_the_rollup_migration_adds_them_to_an_older_file(tmp_path):
    path = tmp_path / "old.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    for index in ALERT_INDEXES.values():
        conn.execute(f"DROP INDEX {index}")
    for trigger in rollups.TRIGGERS:
        conn.execute(f"DROP TRIGGER {trigger}")
    for table in rollups.TABLES:
        conn.execute(f"DROP TABLE {table}")
    conn.execute(f"DELETE FROM {schema.MIGRATIONS_TABLE} WHERE name = 'm006_rollups'")
    conn.commit()
    conn.close()
    with Store(path) as store:
        names = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master")}
    assert set(ALERT_INDEXES.values()) <= names
