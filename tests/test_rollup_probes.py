"""The rollup-backed probes give what exact SQL over the raw rows gives: counts equal,
percentiles within 1% (the histogram's bound), for aligned, unaligned and open windows."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest

from taskexec import Store

EXACT = Path(__file__).parent / "exact_sql"
#: Windows: a whole day, a start inside an hour, one inside the last day, everything.
WINDOWS = ["2026-11-10T00:00:00Z", "2026-11-13T07:41:13.5Z", "2026-11-19T22:05:00Z", "all"]
PERCENTILES = ("p50_ms", "p95_ms", "p99_ms")


def exact(db: Path, name: str, **params) -> list[dict]:
    """The old probe over the raw rows (it takes an ISO since; 'all' is the year 1)."""
    sql = (EXACT / f"{name}.sql").read_text()
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    if params.get("since") == "all":
        params["since"] = "0001-01-01T00:00:00Z"
    names = {p for p in ("since", "task_slug", "period", "top", "limit") if f":{p}" in sql}
    bound = {p: params.get(p) for p in names}
    return [dict(r) for r in conn.execute(sql, bound)]


def ours(db: Path, name: str, **params) -> list[dict]:
    with Store.open_readonly(db) as store:
        result = store.run_probe(name, params)
    return [dict(zip(result.columns, r, strict=True)) for r in result.rows]


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= 0.01 * abs(b) + 1e-9


def keyed(rows: list[dict], *key: str) -> dict[tuple, dict]:
    return {tuple(r[k] for k in key): r for r in rows}


def compare(got: list[dict], want: list[dict], key: tuple[str, ...], same: tuple[str, ...]):
    g, w = keyed(got, *key), keyed(want, *key)
    assert set(g) == set(w)
    assert g, "the window should hold rows"
    for k, row in w.items():
        for column in same:
            if column in PERCENTILES:
                assert close(g[k][column], row[column]), (k, column, g[k][column], row[column])
            elif isinstance(row[column], float):
                assert g[k][column] == pytest.approx(row[column], rel=1e-9, abs=1e-9), (k, column)
            elif row[column] is None:  # the old SQL's sum() of nothing; the rollup says 0
                assert g[k][column] in (None, 0), (k, column, g[k][column])
            else:
                assert g[k][column] == row[column], (k, column, g[k][column], row[column])


@pytest.mark.parametrize("since", WINDOWS)
def test_counts_and_percentiles_match_the_raw_rows(demo_db: Path, since: str) -> None:
    compare(
        ours(demo_db, "failure_rates", since=since),
        exact(demo_db, "failure_rates", since=since),
        ("task_slug",),
        ("attempts", "successes", "failures", "cancelled", "failure_rate"),
    )
    compare(
        ours(demo_db, "hourly_failure_rate", since=since),
        exact(demo_db, "hourly_failure_rate", since=since),
        ("hour", "task_slug"),
        ("attempts", "failures", "failure_rate"),
    )
    compare(
        ours(demo_db, "daily_trend", since=since),
        exact(demo_db, "daily_trend", since=since),
        ("day", "task_slug"),
        ("attempts", "failures", "failure_rate", "p50_ms", "p95_ms"),
    )
    compare(
        ours(demo_db, "duration_stats", since=since),
        exact(demo_db, "duration_stats", since=since),
        ("task_slug",),
        ("runs", "mean_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms"),
    )
    for period in ("day", "hour"):
        compare(
            ours(demo_db, "duration_trend", since=since, period=period),
            exact(demo_db, "duration_trend", since=since, period=period),
            ("period", "task_slug"),
            ("runs", "p50_ms", "p95_ms", "p99_ms", "max_ms"),
        )
    compare(
        ours(demo_db, "retrieval_stats", since=since),
        exact(demo_db, "retrieval_stats", since=since),
        ("task_slug",),
        ("runs", "runs_with_retrieval", "mean_memories", "max_memories"),
    )
    compare(
        ours(demo_db, "headline", since=since),
        exact(demo_db, "headline", since=since),
        (),
        ("attempts", "failures", "failure_rate", "new_error_patterns", "running_now", "abandoned"),
    )
    patterns = ours(demo_db, "error_patterns", since=since, limit="500")
    expected = exact(demo_db, "error_patterns", since=since, limit="500")
    compare(
        patterns,
        expected,
        ("stack_hash",),
        ("occurrences", "tasks_affected", "first_seen", "last_seen", "occurrences_all_time"),
    )
    tasks = {r["stack_hash"]: sorted(r["tasks"].split(",")) for r in expected}
    assert {r["stack_hash"]: r["tasks"].split(",") for r in patterns} == tasks  # listed A-Z
    got = ours(demo_db, "error_trend", since=since, top="50")
    want = exact(demo_db, "error_trend", since=since, top="50")
    compare(got, want, ("day", "stack_hash"), ("failures", "error_group"))


def test_sources_and_retries_match_the_raw_rows(demo_db: Path) -> None:
    since = WINDOWS[1]
    got = keyed(ours(demo_db, "retrieval_stats", since=since), "task_slug")
    for slug, row in keyed(exact(demo_db, "retrieval_stats", since=since), "task_slug").items():

        def parsed(text):
            return dict(p.split(": ") for p in text.split(", ")) if text else {}

        assert parsed(got[slug]["sources"]) == parsed(row["sources"])
    conn = sqlite3.connect(demo_db)
    start = "2026-11-13T07:41:13.500000Z"
    for row in ours(demo_db, "retry_analysis", since=since):
        runs, retried, recovered = conn.execute(
            "SELECT sum(attempt = 1), sum(attempt = 2), sum(status = 'success' AND attempt > 1) "
            "FROM task_executions WHERE task_slug = ? AND started_at >= ?",
            (row["task_slug"], start),
        ).fetchone()
        assert (row["runs"], row["retried_runs"], row["succeeded_after_retry"]) == (
            runs,
            retried,
            recovered,
        )
        assert row["retried_never_succeeded"] == max(retried - recovered, 0)
        assert row["retry_recovery_rate"] is None or 0 <= row["retry_recovery_rate"] <= 1


def test_percentiles_on_small_hand_built_databases(tmp_path: Path) -> None:
    """A handful of known durations: each percentile within 1% of the nearest-rank value."""
    from datetime import UTC, datetime, timedelta

    from taskexec import TaskExecution

    t0 = datetime(2026, 5, 4, 10, 30, tzinfo=UTC)
    durations = [0, 1, 2.5, 10, 99.9, 100, 101, 1000, 5000, 123456.789, 7, 7, 7]
    with Store(tmp_path / "small.db") as store:
        store.append_many(
            [
                TaskExecution(
                    task_slug="only",
                    task_id="only",
                    started_at=t0 + timedelta(minutes=37 * i),
                    ended_at=t0 + timedelta(minutes=37 * i, milliseconds=d),
                )
                for i, d in enumerate(durations)
            ]
        )
        got = store.run_probe("duration_stats", {"since": "2026-05-01T00:00:00Z"})
    (row,) = [dict(zip(got.columns, r, strict=True)) for r in got.rows]
    ordered = sorted(durations)
    for column, p in (("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)):
        want = ordered[math.ceil(p * len(ordered)) - 1]
        assert close(row[column], want) or (want == 0 and row[column] <= 0.001)
    assert row["max_ms"] == max(durations) and row["runs"] == len(durations)


@pytest.mark.parametrize("since", [*WINDOWS, "2026-11-19T23:30:00Z", "2026-11-20T05:00:00Z"])
@pytest.mark.parametrize("limit", ["5", "50"])
def test_slowest_runs_either_way_is_the_exact_top(demo_db: Path, since: str, limit: str) -> None:
    """Narrow windows read the window, wide ones each task's longest: the same top rows."""
    got = [r["id"] for r in ours(demo_db, "slowest_runs", since=since, limit=limit)]
    with Store.open_readonly(demo_db) as store:
        start = store.conn.execute("SELECT te_since(?, '7d')", (since,)).fetchone()[0]
        want = [
            r[0]
            for r in store.conn.execute(
                "SELECT id FROM task_executions WHERE started_at >= ? AND duration_ms IS NOT NULL "
                "AND status NOT IN ('cancelled', 'abandoned') ORDER BY duration_ms DESC, id "
                "LIMIT ?",
                (start, int(limit)),
            )
        ]
    assert got == want and got
