"""Rollups: per task and per hour of ``started_at`` (UTC), the aggregates every chart reads.

``rollup_hourly`` holds counts by status, runs (first attempts), retries, recovered runs
(successes after a retry), duration count / sum / min / max and retrieval figures;
``rollup_durations_hourly`` and ``rollup_durations_daily`` hold a mergeable log-bucket
histogram of durations (DDSketch's bins: a percentile read from it is within 1% of the exact
one); ``rollup_sources`` counts retrieval sources, ``rollup_errors`` and
``rollup_errors_daily`` failures by error group per hour and per day. Windows that start
inside an hour take that part-hour from the raw rows (see the probes), so a count over any
window is exact.

They are kept exact by triggers, in the same transaction as every write to
``task_executions`` whatever its path (the live writer, the spool's replay, backfill, OTLP,
merge, sweep). Bulk loads and prune drop the triggers for their one transaction and
recompute the hours they touched set-wise (``refresh``), which is also ``rebuild``.
``verify`` recomputes everything from the raw rows and lists what differs.
"""

from __future__ import annotations

import json
import math
import operator
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..histogram import BIN_SQL, LN_GAMMA, MIN_MS
from ..model import STATUSES
from .rows import COL

HOURLY = "rollup_hourly"
DURATIONS_HOURLY = "rollup_durations_hourly"
DURATIONS_DAILY = "rollup_durations_daily"
SOURCES = "rollup_sources"
ERRORS = "rollup_errors"
ERRORS_DAILY = "rollup_errors_daily"
TABLES = (HOURLY, DURATIONS_HOURLY, DURATIONS_DAILY, SOURCES, ERRORS, ERRORS_DAILY)
#: A failure, as every probe counts it.
_FAILED = "{r}.status IN ('failed', 'timeout', 'abandoned')"

#: Additive columns of ``rollup_hourly``: name -> the value one row ``{r}`` adds (``{r}`` is
#: ``new``, ``old`` or a table alias). Duration sums are integer microseconds, so adding and
#: subtracting stays exact in any order.
_ADD: dict[str, str] = {
    "attempts": "1",
    **{s: f"({{r}}.status = '{s}')" for s in STATUSES},
    "runs": "({r}.attempt = 1)",
    "retries": "({r}.attempt > 1)",
    "recovered": "({r}.status = 'success' AND {r}.attempt > 1)",
    "dur_n": "({r}.duration_ms IS NOT NULL)",
    "dur_sum_us": "coalesce(CAST(round({r}.duration_ms * 1000) AS INTEGER), 0)",
    "ended": "({r}.status != 'running')",
    "retrieval_n": "({r}.status != 'running' AND {r}.memories_retrieved IS NOT NULL)",
    "retrieval_hits": "coalesce({r}.status != 'running' AND {r}.memories_retrieved > 0, 0)",
    "memories_sum": (
        "CASE WHEN {r}.status != 'running' THEN coalesce({r}.memories_retrieved, 0) ELSE 0 END"
    ),
    "retried": "({r}.attempt = 2)",
}
#: Extreme columns: name -> (the row's value, the aggregate, the comparison that replaces it).
_EXTREME: dict[str, tuple[str, str, str]] = {
    "max_attempt": ("{r}.attempt", "max", ">"),
    "dur_min": ("{r}.duration_ms", "min", "<"),
    "dur_max": ("{r}.duration_ms", "max", ">"),
    "memories_max": (
        "CASE WHEN {r}.status != 'running' THEN {r}.memories_retrieved END",
        "max",
        ">",
    ),
}

DDL = (
    f"""CREATE TABLE {HOURLY} (
        hour TEXT NOT NULL,
        task_slug TEXT NOT NULL,
        {", ".join(f"{c} INTEGER NOT NULL DEFAULT 0" for c in _ADD)},
        max_attempt INTEGER,
        dur_min REAL,
        dur_max REAL,
        memories_max INTEGER,
        PRIMARY KEY (hour, task_slug)
    ) WITHOUT ROWID""",
    f"""CREATE TABLE {DURATIONS_HOURLY} (
        hour TEXT NOT NULL,
        task_slug TEXT NOT NULL,
        bin INTEGER NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (hour, task_slug, bin)
    ) WITHOUT ROWID""",
    f"""CREATE TABLE {DURATIONS_DAILY} (
        day TEXT NOT NULL,
        task_slug TEXT NOT NULL,
        bin INTEGER NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (day, task_slug, bin)
    ) WITHOUT ROWID""",
    f"""CREATE TABLE {SOURCES} (
        hour TEXT NOT NULL,
        task_slug TEXT NOT NULL,
        source TEXT NOT NULL,
        uses INTEGER NOT NULL,
        PRIMARY KEY (hour, task_slug, source)
    ) WITHOUT ROWID""",
    f"""CREATE TABLE {ERRORS} (
        hour TEXT NOT NULL,
        task_slug TEXT NOT NULL,
        stack_hash TEXT NOT NULL,
        failures INTEGER NOT NULL,
        PRIMARY KEY (hour, task_slug, stack_hash)
    ) WITHOUT ROWID""",
    # an error group's tasks, for the error pages
    f"CREATE INDEX ix_rollup_errors_hash ON {ERRORS} (stack_hash, task_slug)",
    # the same per day: wide windows read days, not hours (at 10M rows, `error_trend` over
    # every row grouped 46,000 hourly rows; the days are 1,000)
    f"""CREATE TABLE {ERRORS_DAILY} (
        day TEXT NOT NULL,
        task_slug TEXT NOT NULL,
        stack_hash TEXT NOT NULL,
        failures INTEGER NOT NULL,
        PRIMARY KEY (day, task_slug, stack_hash)
    ) WITHOUT ROWID""",
)


def _hour(r: str) -> str:
    return f"substr({r}.started_at, 1, 13)"


def _day(r: str) -> str:
    return f"substr({r}.started_at, 1, 10)"


def _keep_min_max(col: str, op: str, incoming: str) -> str:
    """``col`` replaced by ``incoming`` when it is NULL or ``incoming`` beats it."""
    return f"CASE WHEN {col} IS NULL OR {incoming} {op} {col} THEN {incoming} ELSE {col} END"


def _add_statements(r: str) -> list[str]:
    """The statements that add row ``r``'s contribution (insert, and the new side of update)."""
    cols = [*_ADD, *_EXTREME]
    values = [v.format(r=r) for v in _ADD.values()] + [v[0].format(r=r) for v in _EXTREME.values()]
    sets = [f"{c} = {c} + excluded.{c}" for c in _ADD] + [
        f"{c} = {_keep_min_max(c, op, f'excluded.{c}')}" for c, (_, _, op) in _EXTREME.items()
    ]
    return [
        f"INSERT INTO {HOURLY} (hour, task_slug, {', '.join(cols)}) "
        f"VALUES ({_hour(r)}, {r}.task_slug, {', '.join(values)}) "
        f"ON CONFLICT (hour, task_slug) DO UPDATE SET {', '.join(sets)}",
        f"INSERT INTO {DURATIONS_HOURLY} (hour, task_slug, bin, n) "
        f"SELECT {_hour(r)}, {r}.task_slug, {BIN_SQL.format(f'{r}.duration_ms')}, 1 "
        f"WHERE {r}.duration_ms IS NOT NULL "
        "ON CONFLICT (hour, task_slug, bin) DO UPDATE SET n = n + 1",
        f"INSERT INTO {DURATIONS_DAILY} (day, task_slug, bin, n) "
        f"SELECT {_day(r)}, {r}.task_slug, {BIN_SQL.format(f'{r}.duration_ms')}, 1 "
        f"WHERE {r}.duration_ms IS NOT NULL "
        "ON CONFLICT (day, task_slug, bin) DO UPDATE SET n = n + 1",
        f"INSERT INTO {SOURCES} (hour, task_slug, source, uses) "
        f"SELECT {_hour(r)}, {r}.task_slug, CAST(j.value AS TEXT), 1 "
        f"FROM json_each(CASE WHEN json_valid({r}.retrieval_sources) "
        f"THEN {r}.retrieval_sources END) AS j "
        f"WHERE {r}.status != 'running' AND j.type NOT IN ('null', 'object', 'array') "
        "ON CONFLICT (hour, task_slug, source) DO UPDATE SET uses = uses + 1",
        f"INSERT INTO {ERRORS} (hour, task_slug, stack_hash, failures) "
        f"SELECT {_hour(r)}, {r}.task_slug, {r}.stack_hash, 1 "
        f"WHERE {_FAILED.format(r=r)} AND {r}.stack_hash IS NOT NULL "
        "ON CONFLICT (hour, task_slug, stack_hash) DO UPDATE SET failures = failures + 1",
        f"INSERT INTO {ERRORS_DAILY} (day, task_slug, stack_hash, failures) "
        f"SELECT {_day(r)}, {r}.task_slug, {r}.stack_hash, 1 "
        f"WHERE {_FAILED.format(r=r)} AND {r}.stack_hash IS NOT NULL "
        "ON CONFLICT (day, task_slug, stack_hash) DO UPDATE SET failures = failures + 1",
    ]


def _bucket_rows(r: str, column: str) -> str:
    """The raw rows of row ``r``'s task and hour (read through the task/started index)."""
    hour = _hour(r)
    return (
        f"FROM task_executions WHERE task_slug = {r}.task_slug "
        f"AND started_at >= {hour} AND started_at < {hour} || ':99' AND {column}"
    )


def _remove_statements(r: str, update: bool = False) -> list[str]:
    """The statements that take row ``r``'s contribution away (delete, the old side of update).

    Extremes cannot be subtracted: an extreme ``r`` held is read again from the bucket's raw
    rows (which no longer count ``r``), but on an update only if that value or the row's
    bucket changed. (A running row holds ``max_attempt``; its finish must not re-read its
    hour: that cost grew with the hour's rows.)"""
    key = f"hour = {_hour(r)} AND task_slug = {r}.task_slug"
    sets = ", ".join(f"{c} = {c} - {v.format(r=r)}" for c, v in _ADD.items())
    raw = {c: value.format(r="task_executions") for c, (value, _, _) in _EXTREME.items()}
    lost = {}
    for c, (value, _, _) in _EXTREME.items():
        held = f"{value.format(r=r)} = {c}"
        changed = f"{_MOVED} OR {value.format(r='old')} IS NOT {value.format(r='new')}"
        lost[c] = f"({held} AND ({changed}))" if update else f"({held})"
    recompute = ", ".join(
        f"{c} = CASE WHEN {lost[c]} THEN (SELECT {agg}({raw[c]}) "
        f"{_bucket_rows(r, f'{raw[c]} IS NOT NULL')}) ELSE {c} END"
        for c, (_, agg, _) in _EXTREME.items()
    )
    held_any = " OR ".join(lost.values())
    day_key = f"day = {_day(r)} AND task_slug = {r}.task_slug"
    return [
        f"UPDATE {HOURLY} SET {sets} WHERE {key}",
        f"DELETE FROM {HOURLY} WHERE {key} AND attempts <= 0",
        f"UPDATE {HOURLY} SET {recompute} WHERE {key} AND ({held_any})",
        f"UPDATE {DURATIONS_HOURLY} SET n = n - 1 WHERE {key} "
        f"AND bin = {BIN_SQL.format(f'{r}.duration_ms')} AND {r}.duration_ms IS NOT NULL",
        f"DELETE FROM {DURATIONS_HOURLY} WHERE {key} AND n <= 0",
        f"UPDATE {DURATIONS_DAILY} SET n = n - 1 WHERE {day_key} "
        f"AND bin = {BIN_SQL.format(f'{r}.duration_ms')} AND {r}.duration_ms IS NOT NULL",
        f"DELETE FROM {DURATIONS_DAILY} WHERE {day_key} AND n <= 0",
        f"UPDATE {SOURCES} SET uses = uses - (SELECT count(*) FROM json_each(CASE WHEN "
        f"json_valid({r}.retrieval_sources) THEN {r}.retrieval_sources END) AS j "
        f"WHERE CAST(j.value AS TEXT) = {SOURCES}.source "
        "AND j.type NOT IN ('null', 'object', 'array')) "
        f"WHERE {key} AND {r}.status != 'running'",
        f"DELETE FROM {SOURCES} WHERE {key} AND uses <= 0",
        f"UPDATE {ERRORS} SET failures = failures - 1 WHERE {key} "
        f"AND stack_hash = {r}.stack_hash AND {_FAILED.format(r=r)}",
        f"DELETE FROM {ERRORS} WHERE {key} AND failures <= 0",
        f"UPDATE {ERRORS_DAILY} SET failures = failures - 1 WHERE {day_key} "
        f"AND stack_hash = {r}.stack_hash AND {_FAILED.format(r=r)}",
        f"DELETE FROM {ERRORS_DAILY} WHERE {day_key} AND failures <= 0",
    ]


def _body(statements: Sequence[str]) -> str:
    return "BEGIN\n    " + ";\n    ".join(statements) + ";\nEND"


_MOVED = "old.started_at IS NOT new.started_at OR old.task_slug IS NOT new.task_slug"

#: Each part of the rollups: when a row counts in it, the columns whose change moves it, and
#: which of the add / remove statements are its own. One trigger per part and kind of write,
#: each with a WHEN, so a write runs only the statements it concerns (a running row: one).
_PARTS: dict[str, tuple[str | None, tuple[str, ...], slice, slice]] = {
    "counts": (
        None,
        ("status", "attempt", "duration_ms", "memories_retrieved"),
        slice(0, 1),
        slice(0, 3),
    ),
    "durations": ("{r}.duration_ms IS NOT NULL", ("duration_ms",), slice(1, 3), slice(3, 7)),
    "sources": (
        "{r}.status != 'running' AND {r}.retrieval_sources IS NOT NULL",
        ("status", "retrieval_sources"),
        slice(3, 4),
        slice(7, 9),
    ),
    "errors": (
        "{r}.stack_hash IS NOT NULL AND " + _FAILED,
        ("status", "stack_hash"),
        slice(4, 6),
        slice(9, 13),
    ),
}


def _triggers() -> dict[str, str]:
    out: dict[str, str] = {}
    for part, (when, columns, adds, removes) in _PARTS.items():
        on_insert = f" WHEN {when.format(r='new')}" if when else ""
        on_delete = f" WHEN {when.format(r='old')}" if when else ""
        out[f"te_rollup_{part}_ai"] = (
            f"CREATE TRIGGER te_rollup_{part}_ai AFTER INSERT ON task_executions{on_insert}\n"
            + _body(_add_statements("new")[adds])
        )
        out[f"te_rollup_{part}_ad"] = (
            f"CREATE TRIGGER te_rollup_{part}_ad AFTER DELETE ON task_executions{on_delete}\n"
            + _body(_remove_statements("old")[removes])
        )
        watched = ("started_at", "task_slug", *columns)
        changed = " OR ".join(f"old.{c} IS NOT new.{c}" for c in watched)
        either = f" AND ({when.format(r='old')} OR {when.format(r='new')})" if when else ""
        out[f"te_rollup_{part}_au"] = (
            f"CREATE TRIGGER te_rollup_{part}_au AFTER UPDATE OF {', '.join(watched)} "
            f"ON task_executions WHEN ({changed}){either}\n"
            + _body(_remove_statements("old", update=True)[removes] + _add_statements("new")[adds])
        )
    return out


#: The triggers that keep the rollups exact, by name (bulk loads drop and recreate them).
TRIGGERS: dict[str, str] = _triggers()


def _aggregate_select(where: str) -> str:
    """``rollup_hourly``'s rows computed from the raw rows matching ``where``."""
    adds = ", ".join(f"sum({v.format(r='t')}) AS {c}" for c, v in _ADD.items())
    extremes = ", ".join(f"{agg}({v.format(r='t')}) AS {c}" for c, (v, agg, _) in _EXTREME.items())
    return (
        f"SELECT {_hour('t')} AS hour, t.task_slug, {adds}, {extremes} "
        f"FROM task_executions AS t WHERE {where} GROUP BY 1, 2"
    )


def _durations_select(where: str) -> str:
    return (
        f"SELECT {_hour('t')} AS hour, t.task_slug, {BIN_SQL.format('t.duration_ms')} AS bin, "
        f"count(*) AS n FROM task_executions AS t "
        f"WHERE t.duration_ms IS NOT NULL AND ({where}) GROUP BY 1, 2, 3"
    )


def _sources_select(where: str) -> str:
    return (
        f"SELECT {_hour('t')} AS hour, t.task_slug, CAST(j.value AS TEXT) AS source, "
        "count(*) AS uses "
        "FROM task_executions AS t, json_each(CASE WHEN json_valid(t.retrieval_sources) "
        "THEN t.retrieval_sources END) AS j "
        f"WHERE t.status != 'running' AND j.type NOT IN ('null', 'object', 'array') "
        f"AND ({where}) GROUP BY 1, 2, 3"
    )


def _errors_select(where: str) -> str:
    return (
        f"SELECT {_hour('t')} AS hour, t.task_slug, t.stack_hash, count(*) AS failures "
        f"FROM task_executions AS t WHERE {_FAILED.format(r='t')} "
        f"AND t.stack_hash IS NOT NULL AND ({where}) GROUP BY 1, 2, 3"
    )


def _merge(table: str, key: Sequence[str], select: str, columns: Sequence[str]) -> str:
    """INSERT the select's rows, adding them to rows already there (extremes kept)."""
    sets = []
    for c in columns:
        if c in _EXTREME:
            sets.append(f"{c} = {_keep_min_max(c, _EXTREME[c][2], f'excluded.{c}')}")
        else:
            sets.append(f"{c} = {c} + excluded.{c}")
    return (
        f"INSERT INTO {table} ({', '.join([*key, *columns])}) SELECT * FROM ({select}) WHERE 1 "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {', '.join(sets)}"
    )


def add_rows(conn: sqlite3.Connection, where: str = "1", params: Sequence[object] = ()) -> None:
    """Add the raw rows matching ``where`` (on alias ``t``) to the rollups, set-wise: for rows
    written while the triggers were off (a bulk load adds its parts as they land)."""
    conn.execute(
        _merge(HOURLY, ("hour", "task_slug"), _aggregate_select(where), [*_ADD, *_EXTREME]),
        params,
    )
    _add_hourly_and_daily(conn, DURATIONS_DAILY, _durations_select(where), params)
    conn.execute(
        _merge(SOURCES, ("hour", "task_slug", "source"), _sources_select(where), ["uses"]),
        params,
    )
    _add_hourly_and_daily(conn, ERRORS_DAILY, _errors_select(where), params)


#: Each daily table and the hourly one whose rows it sums by day.
_HOURLY_OF = {DURATIONS_DAILY: DURATIONS_HOURLY, ERRORS_DAILY: ERRORS}


def by_day(daily: str, source: str, where: str = "") -> str:
    """The SELECT of ``daily``'s rows: ``source``'s rows (shaped like the hourly table it sums)
    summed by day, task and key."""
    key, value = _KEYS[daily][2], _VALUES[daily][0]
    return (
        f"SELECT substr(hour, 1, 10), task_slug, {key}, sum({value}) FROM {source} {where} "
        "GROUP BY 1, 2, 3"
    )


def _add_hourly_and_daily(
    conn: sqlite3.Connection, daily: str, select: str, params: Sequence[object]
) -> None:
    """Add ``select``'s hourly rows to the hourly table and, summed by day, to ``daily``: the
    raw rows are read once, into a temporary table."""
    hourly = _HOURLY_OF[daily]
    temp = f"_te_{hourly}"
    conn.execute(f"DROP TABLE IF EXISTS temp.{temp}")
    conn.execute(f"CREATE TEMP TABLE {temp} AS {select}", params)
    conn.execute(_merge(hourly, _KEYS[hourly], f"SELECT * FROM {temp}", _VALUES[hourly]))
    conn.execute(_merge(daily, _KEYS[daily], by_day(daily, temp), _VALUES[daily]))
    conn.execute(f"DROP TABLE temp.{temp}")


def refresh(conn: sqlite3.Connection, first: str | None = None, last: str | None = None) -> None:
    """Recompute, from the raw rows, the rollups of the hours ``first`` to ``last`` (hours as
    ``YYYY-MM-DDTHH``, either end open when None), in the caller's transaction."""
    if first is None and last is None:
        for table in TABLES:
            conn.execute(f"DELETE FROM {table}")
        add_rows(conn)
        return
    lo, hi = first or "", (last or "9999-12-31T23") + ":99"
    for table in (HOURLY, DURATIONS_HOURLY, SOURCES, ERRORS):
        conn.execute(f"DELETE FROM {table} WHERE hour >= ? AND hour < ?", (lo, hi))
    for daily in (DURATIONS_DAILY, ERRORS_DAILY):
        conn.execute(f"DELETE FROM {daily} WHERE day >= ? AND day <= ?", (lo[:10], hi[:10]))
    add_rows(conn, "t.started_at >= ? AND t.started_at < ?", (lo, hi))
    # The daily rows of the first and last day also count hours outside the range: they are
    # still in the hourly rows, and are added back from there.
    edges = "WHERE (hour >= ? AND hour < ?) OR (hour >= ? AND hour < ?)"
    for daily, hourly in _HOURLY_OF.items():
        conn.execute(
            _merge(daily, _KEYS[daily], by_day(daily, hourly, edges), _VALUES[daily]),
            (lo[:10], lo, hi, hi[:10] + "T99"),
        )


_KEYS = {
    HOURLY: ("hour", "task_slug"),
    DURATIONS_HOURLY: ("hour", "task_slug", "bin"),
    DURATIONS_DAILY: ("day", "task_slug", "bin"),
    SOURCES: ("hour", "task_slug", "source"),
    ERRORS: ("hour", "task_slug", "stack_hash"),
    ERRORS_DAILY: ("day", "task_slug", "stack_hash"),
}
_VALUES = {
    HOURLY: [*_ADD, *_EXTREME],
    DURATIONS_HOURLY: ["n"],
    DURATIONS_DAILY: ["n"],
    SOURCES: ["uses"],
    ERRORS: ["failures"],
    ERRORS_DAILY: ["failures"],
}
#: The positions ``Tally.add`` writes, by name: it uses the numbers for speed.
_LAYOUT = [
    "attempts",
    "running",
    "success",
    "failed",
    "timeout",
    "cancelled",
    "abandoned",
    "runs",
    "retries",
    "recovered",
    "dur_n",
    "dur_sum_us",
    "ended",
    "retrieval_n",
    "retrieval_hits",
    "memories_sum",
    "retried",
    "max_attempt",
    "dur_min",
    "dur_max",
    "memories_max",
]
assert [*_ADD, *_EXTREME] == _LAYOUT and list(STATUSES) == _LAYOUT[1:7]
_FAILURES = frozenset(("failed", "timeout", "abandoned"))
_STATUS_AT = {s: 1 + i for i, s in enumerate(STATUSES)}
_FIELDS = operator.itemgetter(
    *(
        COL[name]
        for name in (
            "started_at",
            "task_slug",
            "status",
            "attempt",
            "duration_ms",
            "memories_retrieved",
            "retrieval_sources",
            "stack_hash",
        )
    )
)


def _source(value: Any) -> str | None:
    """A retrieval source as ``CAST(json_each.value AS TEXT)`` gives it (None: not counted)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, str | int):
        return str(value)
    return None


class Tally:
    """The rollups of rows counted one by one in Python, as a bulk load encodes them: the same
    figures as the triggers and ``add_rows`` (``verify`` and the tests hold them to it), at a
    fraction of the cost of a set-wise pass over a million freshly loaded rows."""

    def __init__(self) -> None:
        self.hours: dict[tuple[str, str], list[Any]] = {}
        self.bins_h: dict[tuple[str, str, int], int] = {}
        self.bins_d: dict[tuple[str, str, int], int] = {}
        self.sources: dict[tuple[str, str, str], int] = {}
        self._parsed: dict[str, list[str]] = {}
        self.errors: dict[tuple[str, str, str], int] = {}
        self.errors_d: dict[tuple[str, str, str], int] = {}

    def add(
        self,
        row: Sequence[Any],
        _fields: Any = _FIELDS,
        _status_at: dict[str, int] = _STATUS_AT,
        _log: Any = math.log,
        _ceil: Any = math.ceil,
    ) -> None:
        """Count one encoded row (``rows.COLUMNS`` order). (Locals bound as defaults: this
        runs once per row of a bulk load.)"""
        started, slug, status, attempt, ms, memories, sources, stack = _fields(row)
        hour = started[:13]
        key = (hour, slug)
        v = self.hours.get(key)
        if v is None:
            v = self.hours[key] = [0] * 17 + [None] * 4
        # positions follow _ADD then _EXTREME (checked by _LAYOUT below)
        v[0] += 1
        v[_status_at[status]] += 1
        if attempt == 1:
            v[7] += 1
        elif attempt > 1:
            v[8] += 1
            if attempt == 2:
                v[16] += 1
            if status == "success":
                v[9] += 1
        if v[17] is None or attempt > v[17]:
            v[17] = attempt
        if ms is not None:
            v[10] += 1
            x = ms * 1000
            v[11] += int(x + 0.5) if x >= 0 else int(x - 0.5)
            if v[18] is None or ms < v[18]:
                v[18] = ms
            if v[19] is None or ms > v[19]:
                v[19] = ms
            b = _ceil(_log(ms if ms > MIN_MS else MIN_MS) / LN_GAMMA)
            bins = self.bins_h
            hk = (hour, slug, b)
            bins[hk] = bins.get(hk, 0) + 1
            bins = self.bins_d
            dk = (started[:10], slug, b)
            bins[dk] = bins.get(dk, 0) + 1
        if stack is not None and status in _FAILURES:
            ek = (hour, slug, stack)
            self.errors[ek] = self.errors.get(ek, 0) + 1
            ek = (started[:10], slug, stack)
            self.errors_d[ek] = self.errors_d.get(ek, 0) + 1
        if status != "running":
            v[12] += 1
            if memories is not None:
                v[13] += 1
                if memories > 0:
                    v[14] += 1
                v[15] += memories
                if v[20] is None or memories > v[20]:
                    v[20] = memories
            if sources:
                names = self._parsed.get(sources)
                if names is None:  # a few distinct lists recur: parse each once
                    if len(self._parsed) > 4096:
                        self._parsed.clear()
                    parsed = (_source(value) for value in json.loads(sources))
                    names = self._parsed[sources] = [n for n in parsed if n is not None]
                counts = self.sources
                for name in names:
                    sk = (hour, slug, name)
                    counts[sk] = counts.get(sk, 0) + 1

    def tables(self) -> dict[str, list[tuple[Any, ...]]]:
        """Each rollup table's rows from what was counted."""
        return {
            HOURLY: [(*k, *v) for k, v in self.hours.items()],
            DURATIONS_HOURLY: [(*k, n) for k, n in self.bins_h.items()],
            DURATIONS_DAILY: [(*k, n) for k, n in self.bins_d.items()],
            SOURCES: [(*k, n) for k, n in self.sources.items()],
            ERRORS: [(*k, n) for k, n in self.errors.items()],
            ERRORS_DAILY: [(*k, n) for k, n in self.errors_d.items()],
        }

    def write(self, conn: sqlite3.Connection, schema: str = "main") -> None:
        """Add the counts to ``schema``'s rollup tables (rows already there are added to), in
        key order (each B-tree then grows at its end)."""
        for table, rows in self.tables().items():
            keys, values = _KEYS[table], _VALUES[table]
            sets = [
                f"{c} = {_keep_min_max(c, _EXTREME[c][2], f'excluded.{c}')}"
                if c in _EXTREME
                else f"{c} = {c} + excluded.{c}"
                for c in values
            ]
            rows.sort(key=operator.itemgetter(*range(len(keys))))
            conn.executemany(
                f"INSERT INTO {schema}.{table} ({', '.join([*keys, *values])}) "
                f"VALUES ({', '.join('?' * (len(keys) + len(values)))}) "
                f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {', '.join(sets)}",
                rows,
            )


def merge_from(conn: sqlite3.Connection, schema: str) -> None:
    """Add an attached file's rollup tables (a bulk-load worker's part) to ``main``'s."""
    for table in TABLES:
        conn.execute(
            _merge(f"main.{table}", _KEYS[table], f"SELECT * FROM {schema}.{table}", _VALUES[table])
        )


@dataclass(frozen=True)
class Difference:
    """One rollup row that does not match the raw rows: which table and key, and the figures
    that differ (column, stored, what the raw rows give; None: no such row)."""

    table: str
    key: tuple[object, ...]
    figures: tuple[tuple[str, object, object], ...]

    def __str__(self) -> str:
        shown = ", ".join(f"{c} stored {a!r}, raw rows give {b!r}" for c, a, b in self.figures)
        return f"{self.table} {'/'.join(map(str, self.key))}: {shown}"


def _compare(conn: sqlite3.Connection, table: str, stored: str, expected: str) -> list[Difference]:
    nkey, names = len(_KEYS[table]), _VALUES[table]
    have = {tuple(r[:nkey]): tuple(r[nkey:]) for r in conn.execute(stored)}
    want = {tuple(r[:nkey]): tuple(r[nkey:]) for r in conn.execute(expected)}
    out = []
    for key in sorted(set(have) | set(want), key=repr):
        a, b = have.get(key), want.get(key)
        if a != b:
            a, b = a or (None,) * len(names), b or (None,) * len(names)
            figures = tuple((c, x, y) for c, x, y in zip(names, a, b, strict=True) if x != y)
            out.append(Difference(table, key, figures))
    return out


def verify(conn: sqlite3.Connection) -> list[Difference]:
    """Every rollup row that differs from what the raw rows give (empty: exact)."""
    cols = [*_ADD, *_EXTREME]
    daily = by_day(DURATIONS_DAILY, f"({_durations_select('1')})")
    errors_daily = by_day(ERRORS_DAILY, f"({_errors_select('1')})")
    return [
        *_compare(
            conn,
            HOURLY,
            f"SELECT hour, task_slug, {', '.join(cols)} FROM {HOURLY}",
            _aggregate_select("1"),
        ),
        *_compare(
            conn, DURATIONS_HOURLY, f"SELECT * FROM {DURATIONS_HOURLY}", _durations_select("1")
        ),
        *_compare(conn, DURATIONS_DAILY, f"SELECT * FROM {DURATIONS_DAILY}", daily),
        *_compare(conn, SOURCES, f"SELECT * FROM {SOURCES}", _sources_select("1")),
        *_compare(conn, ERRORS, f"SELECT * FROM {ERRORS}", _errors_select("1")),
        *_compare(conn, ERRORS_DAILY, f"SELECT * FROM {ERRORS_DAILY}", errors_daily),
    ]


def create(conn: sqlite3.Connection) -> None:
    """Create the rollup tables and triggers and fill them from the rows already there."""
    for sql in DDL:
        conn.execute(sql)
    refresh(conn)
    for sql in TRIGGERS.values():
        conn.execute(sql)
