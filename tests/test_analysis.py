"""analysis and plots on small hand-built databases whose answers are known by construction;
empty and success-only databases give readable "no data", never exceptions."""

from __future__ import annotations

import io
import math
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure

from taskexec.config import WINDOW_ENV
from taskexec.db import Store, awareness
from taskexec.errors import BadInput, DatabaseError, InvalidRecord
from taskexec.faces.jupyter import analysis, plots
from taskexec.model import TaskExecution, new_span_id, new_trace_id

DAY = datetime(2026, 11, 20, tzinfo=UTC)
SINCE = "2026-11-01T00:00:00Z"


def attempt(
    slug: str = "alpha",
    at: timedelta = timedelta(0),
    *,
    status: str = "success",
    duration: float = 100.0,
    **fields,
) -> TaskExecution:
    """One attempt ``at`` after midnight of DAY; failures carry an error so they get a group."""
    if status != "success" and "error_type" not in fields:
        fields.update(error_type="ValueError", error_message="bad value")
    return TaskExecution(
        task_slug=slug, started_at=DAY + at, status=status, duration_ms=duration, **fields
    )


def build(path: Path, records: list[TaskExecution]) -> Store:
    with Store(path) as store:
        if records:
            store.append_many(records)
    return Store.open_readonly(path)


@pytest.fixture
def open_store(tmp_path):
    opened: list[Store] = []

    def make(records: list[TaskExecution]) -> Store:
        store = build(tmp_path / f"db{len(opened)}.db", records)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def texts(fig: Figure) -> str:
    """The words a "no data" figure shows (it has only a hidden axes with one text)."""
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts)


def is_chart(fig: Figure) -> bool:
    return any(ax.axison for ax in fig.axes)


def render(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=40)  # layout and drawing errors surface here
    return buffer.getvalue()


# -- failure rates -------------------------------------------------------------------------------


def test_three_failures_in_ten_runs_is_point_three(open_store):
    records = [
        attempt("alpha", timedelta(hours=1, minutes=i), status="failed" if i < 3 else "success")
        for i in range(10)
    ]
    records += [attempt("beta", timedelta(hours=2, minutes=i)) for i in range(4)]
    store = open_store(records)
    rates = analysis.failure_rate(store, SINCE)
    alpha = rates[rates["task_slug"] == "alpha"].iloc[0]
    assert (alpha["attempts"], alpha["failures"], alpha["failure_rate"]) == (10, 3, 0.3)
    assert rates[rates["task_slug"] == "beta"]["failure_rate"].tolist() == [0.0]
    assert analysis.baseline(rates) == pytest.approx(3 / 14)
    overall = analysis.overall_failure_rate(rates)
    assert overall["failure_rate"].tolist() == pytest.approx([3 / 14])
    assert str(rates["period"].dtype) == "datetime64[ns, UTC]"
    assert rates["period"].iloc[0] == pd.Timestamp("2026-11-20", tz="UTC")
    assert isinstance(rates["task_slug"].dtype, pd.CategoricalDtype)


def test_hourly_failure_rate_splits_by_hour(open_store):
    records = [attempt(at=timedelta(hours=3, minutes=i), status="failed") for i in range(2)]
    records += [attempt(at=timedelta(hours=3, minutes=10 + i)) for i in range(2)]
    records += [attempt(at=timedelta(hours=4, minutes=i)) for i in range(5)]
    hourly = analysis.failure_rate(open_store(records), SINCE, period="hour")
    assert hourly["period"].dt.hour.tolist() == [3, 4]
    assert hourly["failure_rate"].tolist() == [0.5, 0.0]
    assert hourly["attempts"].tolist() == [4, 5]


def test_timeouts_and_abandoned_count_as_failures_running_does_not(open_store):
    records = [
        attempt(at=timedelta(minutes=1), status="timeout", error_type="TimeoutError"),
        attempt(at=timedelta(minutes=2), status="abandoned", duration=None),
        attempt(at=timedelta(minutes=3), status="cancelled"),
        attempt(at=timedelta(minutes=4)),
        attempt(at=timedelta(minutes=5), status="running", duration=None),
    ]
    rates = analysis.failure_rate(open_store(records), SINCE)
    assert rates[["attempts", "failures"]].values.tolist() == [[4, 2]]


# -- durations -----------------------------------------------------------------------------------


def test_duration_percentiles_are_nearest_rank_within_one_percent(open_store):
    records = [attempt(at=timedelta(minutes=i), duration=float(i + 1)) for i in range(100)]
    # A second day with four attempts: nearest-rank p50 is the 2nd value, p95 and p99 the 4th.
    records += [
        attempt(at=timedelta(days=1, minutes=i), duration=d)
        for i, d in enumerate([40.0, 10.0, 30.0, 20.0])
    ]
    trend = analysis.duration_percentiles(open_store(records), SINCE)
    first, second = trend.to_dict("records")
    # Percentiles come from the rollups' histogram: within 1% of the nearest-rank value.
    assert (first["runs"], first["max_ms"]) == (100, 100.0)
    got = (first["p50_ms"], first["p95_ms"], first["p99_ms"], second["p50_ms"], second["p95_ms"])
    for value, want in zip(got, (50.0, 95.0, 99.0, 20.0, 40.0), strict=True):
        assert value == pytest.approx(want, rel=0.01)
    assert second["p99_ms"] == 40.0  # the max caps the top bin
    assert second["period"] - first["period"] == pd.Timedelta(days=1)


def test_duration_summary_and_slowest_runs(open_store):
    records = [attempt("fast", timedelta(minutes=i), duration=float(i)) for i in range(1, 11)]
    records += [attempt("slow", timedelta(hours=1), duration=5000.0)]
    store = open_store(records)
    summary = analysis.duration_summary(store, SINCE).set_index("task_slug")
    assert summary.loc["fast", "p50_ms"] == pytest.approx(5.0, rel=0.01)
    assert summary.loc["fast", "max_ms"] == 10.0
    slow = analysis.slowest_runs(store, SINCE, limit=3)
    assert slow["duration_ms"].tolist() == [5000.0, 10.0, 9.0]
    assert str(slow["started_at"].dtype) == "datetime64[ns, UTC]"


def test_load_executions_types_and_bounded_deterministic_sample(open_store):
    records = [attempt(at=timedelta(minutes=i), memories_retrieved=i % 4) for i in range(30)]
    records.append(attempt(at=timedelta(hours=2), status="running", duration=None))
    store = open_store(records)
    everything = analysis.load_executions(store, SINCE)
    assert len(everything) == 30  # the running attempt is not a finished one
    assert str(everything["started_at"].dtype) == "datetime64[ns, UTC]"
    assert isinstance(everything["status"].dtype, pd.CategoricalDtype)
    assert everything["memories_retrieved"].dtype == "float64"
    sample = analysis.load_executions(store, SINCE, limit=10)
    assert 5 <= len(sample) <= 10
    assert sample["id"].tolist() == analysis.load_executions(store, SINCE, limit=10)["id"].tolist()


# -- retries and errors --------------------------------------------------------------------------


def retried(slug: str, outcomes: list[str], at: timedelta) -> list[TaskExecution]:
    """The attempts of one run (one trace) with the given statuses, each retrying the last."""
    trace, previous, out = new_trace_id(), None, []
    for number, status in enumerate(outcomes, start=1):
        span = new_span_id()
        out.append(
            attempt(
                slug,
                at + timedelta(minutes=number),
                status=status,
                trace_id=trace,
                span_id=span,
                attempt=number,
                retry_of=previous,
            )
        )
        previous = span
    return out


def test_retry_recovery(open_store):
    records = (
        retried("alpha", ["failed", "success"], timedelta(hours=1))  # recovered
        + retried("alpha", ["failed", "failed"], timedelta(hours=2))  # never succeeded
        + retried("alpha", ["success"], timedelta(hours=3))  # no retry needed
        + retried("alpha", ["failed"], timedelta(hours=4))  # failed, not retried
        + retried("beta", ["timeout", "failed", "success"], timedelta(hours=5))
    )
    retries = analysis.retry_outcomes(open_store(records), SINCE).set_index("task_slug")
    alpha = retries.loc["alpha"]
    assert (alpha["runs"], alpha["retried_runs"], alpha["succeeded_after_retry"]) == (4, 2, 1)
    assert alpha["retried_never_succeeded"] == 1 and alpha["retry_recovery_rate"] == 0.5
    assert retries.loc["beta", "retry_recovery_rate"] == 1.0
    assert analysis.overall_recovery(retries) == pytest.approx(2 / 3)


def test_error_trend_top_groups_and_new_patterns(open_store):
    old = [
        attempt(at=timedelta(hours=i), status="failed", error_type="KeyError", error_message="'x'")
        for i in range(3)
    ]
    new = [
        attempt(
            at=timedelta(days=2, hours=i),
            status="failed",
            error_type="OSError",
            error_message="disk full",
        )
        for i in range(2)
    ]
    store = open_store(old + new)
    trend = analysis.error_trend(store, SINCE)
    assert trend.groupby("error_group", observed=True)["failures"].sum().sort_values().tolist() == [
        2,
        3,
    ]
    top = analysis.top_error_groups(store, SINCE)
    assert top["error_type"].tolist() == ["KeyError", "OSError"]
    fresh = analysis.new_error_patterns(store, "2026-11-21T00:00:00Z")
    assert fresh["error_type"].tolist() == ["OSError"] and fresh["occurrences"].tolist() == [2]
    assert str(fresh["first_seen"].dtype) == "datetime64[ns, UTC]"


# -- windows and opening -------------------------------------------------------------------------


def test_data_window_counts_back_from_the_newest_row(open_store, monkeypatch):
    monkeypatch.delenv(WINDOW_ENV, raising=False)
    store = open_store([attempt(at=timedelta(hours=5)), attempt(at=timedelta(hours=-30))])
    assert analysis.data_window(store, "1d") == "2026-11-19T00:00:00.000000Z"
    assert analysis.data_window(store) == "2026-11-06T00:00:00.000000Z"  # default 14d
    monkeypatch.setenv(WINDOW_ENV, "2d")
    assert analysis.data_window(store) == "2026-11-18T00:00:00.000000Z"


def test_bad_arguments_are_domain_errors(open_store):
    store = open_store([attempt()])
    with pytest.raises(BadInput, match="period"):
        analysis.failure_rate(store, SINCE, period="week")  # type: ignore[arg-type]
    with pytest.raises(InvalidRecord, match="since"):
        analysis.failure_rate(store, "last tuesday")
    assert len(analysis.failure_rate(store, datetime(2026, 11, 1, tzinfo=UTC))) == 1


def test_open_db_env_and_demo(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKEXEC_DB", str(tmp_path / "missing.db"))
    with pytest.raises(DatabaseError, match="no database"):
        analysis.open_db()
    demo = analysis.create_demo_db(tmp_path / "sub" / "demo.db", runs=40, days=2)
    assert sorted(p.name for p in demo.parent.iterdir()) == ["demo.db"]  # no temp files left
    monkeypatch.setenv("TASKEXEC_DB", str(demo))
    with analysis.open_db() as store:
        assert store.readonly and analysis.data_range(store).attempts >= 40
    assert analysis.demo_path().name == "demo.db"


# -- no data -------------------------------------------------------------------------------------


def every_frame(store: Store) -> dict[str, pd.DataFrame]:
    return {
        "daily": analysis.failure_rate(store, SINCE),
        "hourly": analysis.failure_rate(store, SINCE, period="hour"),
        "percentiles": analysis.duration_percentiles(store, SINCE),
        "sample": analysis.load_executions(store, SINCE),
        "slowest": analysis.slowest_runs(store, SINCE),
        "retries": analysis.retry_outcomes(store, SINCE),
        "errors": analysis.error_trend(store, SINCE),
        "new": analysis.new_error_patterns(store, SINCE),
    }


def charts(frames: dict[str, pd.DataFrame]) -> dict[str, Figure]:
    return {
        "daily": plots.failure_rate_over_time(frames["daily"]),
        "hourly": plots.failure_heatmap(frames["hourly"]),
        "percentiles": plots.percentiles_over_time(frames["percentiles"]),
        "distribution": plots.duration_distribution(frames["sample"]),
        "memories": plots.duration_vs_memories(frames["sample"]),
        "slowest": plots.slowest_runs(frames["slowest"]),
        "retries": plots.retry_recovery(frames["retries"]),
        "errors": plots.error_groups_stacked(frames["errors"]),
        "new": plots.new_error_patterns(frames["new"]),
    }


def test_empty_database_gives_empty_frames_and_no_data_figures(open_store):
    store = open_store([])
    frames = every_frame(store)
    assert all(frame.empty and len(frame.columns) for frame in frames.values())
    assert analysis.summary(store, SINCE).startswith(analysis.NO_DATA)
    message = analysis.table(frames["slowest"], "Nothing slow.")
    assert isinstance(message, analysis.Message) and message._repr_markdown_() == "*Nothing slow.*"
    for name, fig in charts(frames).items():
        assert not is_chart(fig) and texts(fig).startswith("No "), name
        assert render(fig).startswith(b"\x89PNG")
    assert math.isnan(analysis.baseline(frames["daily"]))
    assert math.isnan(analysis.overall_recovery(frames["retries"]))


def test_success_only_database_charts_rates_and_says_no_failures(open_store):
    records = [
        attempt(slug, timedelta(hours=h), duration=100.0 + h, memories_retrieved=h)
        for slug in ("alpha", "beta")
        for h in range(6)
    ]
    store = open_store(records)
    figures = charts(every_frame(store))
    assert texts(figures["errors"]) == "No failures in this window"
    assert texts(figures["retries"]) == "No retried runs in this window"
    assert texts(figures["new"]) == "No new error patterns in this window"
    for name in ("daily", "hourly", "percentiles", "distribution", "memories", "slowest"):
        assert is_chart(figures[name]), name
    assert analysis.summary(store, SINCE).endswith("0 failed (0.0%).")
    for fig in figures.values():
        render(fig)


def test_every_chart_draws_on_mixed_data(open_store):
    records = [
        attempt(
            slug,
            timedelta(days=d, hours=h),
            duration=50.0 * (h + 1),
            memories_retrieved=h,
            status="failed" if (d + h) % 5 == 0 else "success",
        )
        for slug in ("alpha", "beta", "gamma")
        for d in range(3)
        for h in range(0, 24, 3)
    ]
    records += retried("alpha", ["failed", "success"], timedelta(days=1, minutes=7))
    for name, fig in charts(every_frame(open_store(records))).items():
        assert is_chart(fig), name
        assert len(render(fig)) > 1000, name


# -- alerts --------------------------------------------------------------------------------------


def test_alert_history_counts_per_day_and_kind_and_charts_it(tmp_path):
    def found(kind: str, task: str, key: str) -> dict:
        return {"kind": kind, "task_slug": task, "alert_key": key, "title": f"{kind} {task}"}

    path = tmp_path / "alerts.db"
    day1, day2 = "2026-11-18T10:00:00.000000Z", "2026-11-19T09:00:00.000000Z"
    with Store(path) as store:
        awareness.apply_findings(store, [found("late", "a", "1"), found("late", "b", "2")], day1)
        # The next day the late starts are gone (resolved); a missed run and a new error open.
        awareness.apply_findings(
            store, [found("missed", "a", "s"), found("new_error", "a", "h")], day2
        )
    with Store.open_readonly(path) as store:
        history = analysis.alert_history(store, SINCE)
        later = analysis.alert_history(store, "2026-11-19T00:00:00Z")
        assert str(history["day"].dtype) == "datetime64[ns, UTC]"
        got = {
            (r.day.strftime("%m-%d"), r.kind, r.opened, r.tasks, r.still_open)
            for r in history.itertuples(index=False)
        }
        assert got == {
            ("11-18", "late", 2, 2, 0),
            ("11-19", "missed", 1, 1, 1),
            ("11-19", "new_error", 1, 1, 1),
        }
        assert set(later["kind"]) == {"missed", "new_error"}
        fig = plots.alerts_per_day(history)
        assert is_chart(fig) and len(render(fig)) > 1000
        assert "4 in the window" in fig.axes[0].get_title()
        labels = [t.get_text() for t in fig.axes[0].texts]
        assert labels == ["2 open"]  # day 2: both still open; day 1: none


def test_no_alerts_is_an_empty_frame_and_a_no_alerts_figure(open_store, tmp_path):
    columns = ["day", "kind", "opened", "tasks", "still_open"]
    empty = analysis.alert_history(open_store([attempt()]), SINCE)
    assert empty.empty and list(empty.columns) == columns
    fig = plots.alerts_per_day(empty)
    assert not is_chart(fig) and texts(fig) == "No alerts in this window"
    assert render(fig).startswith(b"\x89PNG")
    old = tmp_path / "old.db"  # written before alerts existed: no alerts table
    Store(old).close()
    with sqlite3.connect(old) as conn:
        conn.execute("DROP TABLE alerts")
    with Store.open_readonly(old) as store:
        before = analysis.alert_history(store, SINCE)
    assert before.empty and list(before.columns) == columns
