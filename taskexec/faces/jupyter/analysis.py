"""pandas helpers behind the notebooks: open a database, turn probe rows into typed frames.

Every question is answered by a probe (``taskexec/probes/*.sql``), so aggregation happens inside
SQLite and pandas only receives aggregated rows or a bounded sample. That is what keeps
``taskexec report`` on a million-row database within its time budget.

Frames carry proper dtypes: times as ``datetime64[ns, UTC]``, ``task_slug`` and ``status`` as
categories. Windows are in the grammar of every face (``7d``, ``2w``, ``1.5d``, ISO-8601,
``all``); :func:`data_window` takes them back from the database's newest row rather than from
now, so an old database still shows its charts.
An empty answer is an empty frame with the right columns, never an exception; :func:`table`
turns it into a readable :class:`Message`.
"""

from __future__ import annotations

import math
import os
import sqlite3
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from ...config import WINDOW_ENV, default_db
from ...db import DataRange, Store
from ...errors import BadInput
from ...ingest.demo import generate
from ...model import format_ts, parse_ts, utcnow, window_start
from .report import source_root

NO_DATA = "No executions in this window"
DEFAULT_WINDOW = "14d"
Period = Literal["day", "hour"]
_TIME_COLUMNS = ("day", "hour", "period", "started_at", "first_seen", "last_seen")
_CATEGORY_COLUMNS = ("task_slug", "status", "error_group")


class Message(str):
    """A short note (e.g. "no data") that Jupyter renders as markdown, plain text elsewhere."""

    def _repr_markdown_(self) -> str:
        return f"*{self}*"

    def __repr__(self) -> str:
        return str(self)


# -- opening -------------------------------------------------------------------------------------


def demo_path() -> Path:
    """Where the notebooks' fallback demo database lives: ``demo.db`` in the source checkout
    (next to ``notebooks/``), else in the current directory."""
    root = source_root()
    return (root if root is not None else Path.cwd()) / "demo.db"


def create_demo_db(path: str | os.PathLike[str], runs: int = 20_000, days: int = 30) -> Path:
    """Build a demo database at ``path`` (the same history as ``taskexec demo``).

    It is written to a temporary file and renamed into place, so two notebooks starting at
    once never see a half-built file.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".demo-", suffix=".db", dir=target.parent)
    os.close(fd)
    os.unlink(tmp)
    try:
        with Store(tmp) as store:
            store.append_many(generate(runs=runs, days=days))
        os.replace(tmp, target)
    finally:
        for leftover in (tmp, tmp + "-wal", tmp + "-shm"):
            if os.path.exists(leftover):
                os.unlink(leftover)
    return target


def open_db(path: str | os.PathLike[str] | None = None) -> Store:
    """Open the notebooks' database read-only: ``path``, else ``$TASKEXEC_DB``, else the demo
    database (:func:`demo_path`), which is created on first use."""
    if path:
        return Store.open_readonly(path)
    demo = str(demo_path())
    chosen = default_db(fallback=demo)
    if chosen == demo and not os.path.exists(demo):
        create_demo_db(demo)
    return Store.open_readonly(chosen)


# -- windows -------------------------------------------------------------------------------------


def _since(since: str | datetime) -> str:
    """A probe ``since`` parameter: a datetime, or any window of the one grammar
    (``model.WINDOW_FORMS``: ``7d``, ``24h``, ``2w``, ``1.5d``, ISO-8601, ``all``) counted back
    from now; anything else is an InvalidRecord naming the accepted forms."""
    if isinstance(since, datetime):
        return format_ts(since, "since")
    return window_start(since, name="since")


def data_range(store: Store) -> DataRange:
    """First and last ``started_at`` (ISO text, None when empty) and the number of attempts."""
    return store.data_range()


def data_window(store: Store, window: str | None = None) -> str:
    """Start (ISO) of ``window`` (default ``$TASKEXEC_WINDOW``, else 14d) back from the newest
    row, floored to midnight UTC so that every daily bucket but the last is a whole day.

    ``window`` is in the grammar of every face (``model.WINDOW_FORMS``): an ISO-8601 time or
    ``all`` is taken as it is. An empty database counts back from now: its charts say "no
    data" either way.
    """
    window = window or os.environ.get(WINDOW_ENV) or DEFAULT_WINDOW
    last = store.data_range().last_started_at
    end = parse_ts(last) if last else utcnow()
    start = parse_ts(window_start(window, name="window", now=end))
    return format_ts(start.replace(hour=0, minute=0, second=0, microsecond=0))


# -- frames --------------------------------------------------------------------------------------


def query(store: Store, probe: str, **params: Any) -> pd.DataFrame:
    """Run a probe and return its rows as a typed frame (columns kept even when empty)."""
    result = store.run_probe(probe, params)
    return typed(pd.DataFrame(result.rows, columns=list(result.columns)))


def typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Give well-known columns their dtypes: UTC datetimes and categories."""
    for column in frame.columns:
        if column in _TIME_COLUMNS:
            parsed = pd.to_datetime(frame[column], utc=True, format="ISO8601")
            frame[column] = parsed.astype("datetime64[ns, UTC]")
        elif column in _CATEGORY_COLUMNS:
            frame[column] = frame[column].astype("category")
    return frame


def load_executions(store: Store, since: str | datetime, limit: int = 20_000) -> pd.DataFrame:
    """Finished attempts since ``since``: an evenly spaced, deterministic sample of at most
    ``limit`` rows (the whole window when it is smaller), for distributions and scatters."""
    frame = query(store, "execution_sample", since=_since(since), limit=limit)
    for column in ("duration_ms", "memories_retrieved"):
        frame[column] = pd.to_numeric(frame[column]).astype("float64")
    return frame


def failure_rate(store: Store, since: str | datetime, period: Period = "day") -> pd.DataFrame:
    """Attempts, failures and failure rate per task per day or hour (column ``period``)."""
    if period == "day":
        frame = query(store, "daily_trend", since=_since(since)).rename(columns={"day": "period"})
    elif period == "hour":
        frame = query(store, "hourly_failure_rate", since=_since(since))
        frame = frame.rename(columns={"hour": "period"})
    else:
        raise BadInput("period", f"expected 'day' or 'hour', got {period!r}")
    return frame[["period", "task_slug", "attempts", "failures", "failure_rate"]]


def overall_failure_rate(rates: pd.DataFrame) -> pd.DataFrame:
    """All tasks together, per period: attempts, failures and failure rate (from
    :func:`failure_rate`'s frame, so it costs no second query)."""
    grouped = rates.groupby("period", observed=True)[["attempts", "failures"]].sum()
    grouped["failure_rate"] = grouped["failures"] / grouped["attempts"]
    return grouped.reset_index()


def baseline(rates: pd.DataFrame) -> float:
    """The window's overall failure rate (failures / finished attempts); NaN without data."""
    attempts = int(rates["attempts"].sum())
    return float(rates["failures"].sum()) / attempts if attempts else math.nan


def duration_percentiles(
    store: Store, since: str | datetime, period: Period = "day"
) -> pd.DataFrame:
    """Nearest-rank p50/p95/p99 and max duration (ms) per task per day or hour."""
    if period not in ("day", "hour"):
        raise BadInput("period", f"expected 'day' or 'hour', got {period!r}")
    return query(store, "duration_trend", since=_since(since), period=period)


def duration_summary(store: Store, since: str | datetime) -> pd.DataFrame:
    """Per task over the whole window: runs, mean, p50, p95, p99 and max duration (ms)."""
    return query(store, "duration_stats", since=_since(since))


def slowest_runs(store: Store, since: str | datetime, limit: int = 20) -> pd.DataFrame:
    """The ``limit`` longest attempts of the window, slowest first."""
    return query(store, "slowest_runs", since=_since(since), limit=limit)


def retry_outcomes(store: Store, since: str | datetime) -> pd.DataFrame:
    """Per task over runs (traces) started in the window: runs, retried runs, how many of
    those recovered (succeeded on a later attempt), how many never did, and the recovery rate."""
    return query(store, "retry_analysis", since=_since(since))


def overall_recovery(retries: pd.DataFrame) -> float:
    """Share of retried runs, all tasks together, that eventually succeeded; NaN if none."""
    retried = int(retries["retried_runs"].sum())
    return float(retries["succeeded_after_retry"].sum()) / retried if retried else math.nan


def error_trend(store: Store, since: str | datetime, top: int = 8) -> pd.DataFrame:
    """Failures per day for the window's ``top`` error groups (long form: day, group, count)."""
    return query(store, "error_trend", since=_since(since), top=top)


def top_error_groups(store: Store, since: str | datetime, limit: int = 10) -> pd.DataFrame:
    """The window's most frequent error groups with tasks affected, first/last seen, a sample."""
    return query(store, "error_patterns", since=_since(since), limit=limit)


def new_error_patterns(store: Store, since: str | datetime) -> pd.DataFrame:
    """Error groups whose first occurrence ever falls after ``since``."""
    return query(store, "new_errors", since=_since(since))


def alert_history(store: Store, since: str | datetime) -> pd.DataFrame:
    """Alerts opened per day (UTC) and kind since ``since``: columns day, kind, opened, tasks
    and still_open. Empty when ``taskexec check`` never opened one, and also for a database
    written before alerts existed (it has no alerts table until a check upgrades it)."""
    try:
        return query(store, "alert_history", since=_since(since))
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
        return typed(pd.DataFrame(columns=["day", "kind", "opened", "tasks", "still_open"]))


# -- text ----------------------------------------------------------------------------------------


def summary(store: Store, since: str | datetime) -> Message:
    """One markdown line on what the window holds, or the "no data" message."""
    start = _since(since)
    rates = query(store, "failure_rates", since=start)
    attempts = int(rates["attempts"].sum())
    if not attempts:
        return Message(f"{NO_DATA} (since {start[:16].replace('T', ' ')} UTC).")
    last = store.data_range().last_started_at or start
    failures = int(rates["failures"].sum())
    return Message(
        f"**{attempts:,} finished attempts** of **{len(rates)} tasks** from "
        f"{start[:16].replace('T', ' ')} to {last[:16].replace('T', ' ')} UTC; "
        f"{failures:,} failed ({failures / attempts:.1%})."
    )


def table(frame: pd.DataFrame, message: str = NO_DATA) -> pd.DataFrame | Message:
    """The frame itself for display, or ``message`` when it has no rows."""
    return frame if len(frame) else Message(message)
