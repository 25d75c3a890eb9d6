"""Chart-shaped views of probes, for the dashboard: a probe's SQL wrapped to project or group
its rows, or with a parameter pinned to its default. The SQL of every chart lives here or in a
probe file, never in a face."""

from __future__ import annotations

from . import NAMED, get


def pin_default(sql: str, *names: str) -> str:
    """The probe SQL with the named parameters replaced by NULL, i.e. fixed to their defaults."""
    return NAMED.sub(lambda m: "NULL" if m.group(1) in names else m.group(0), sql)


def project(columns: str, probe: str, tail: str = "") -> str:
    """``SELECT columns FROM (probe SQL) tail``: a chart-shaped view of a probe's rows."""
    return f"SELECT {columns} FROM (\n{get(probe).sql}\n){tail}"


def headline_24h() -> str:
    """The headline numbers for the last 24 hours (the probe's default window)."""
    return pin_default(get("headline").sql, "since")


def failure_rate_24h_text() -> str:
    """The 24 h failure rate as text for a metric tile: ``12.5 %``, or ``-`` with no runs."""
    return (
        "SELECT CASE WHEN failure_rate IS NULL THEN '-' "
        "ELSE printf('%.1f %%', 100.0 * failure_rate) END AS failure_rate "
        f"FROM (\n{headline_24h()}\n)"
    )


def attempts_per_day() -> str:
    """Attempts, failures and failure rate per day and task, from the hourly probe (no
    percentiles to sort, so about 4x cheaper at 1M rows than ``daily_trend``)."""
    return project(
        "substr(hour, 1, 10) AS day, task_slug, sum(attempts) AS attempts, "
        "sum(failures) AS failures, round(1.0 * sum(failures) / sum(attempts), 4) AS failure_rate",
        "hourly_failure_rate",
        "\nGROUP BY day, task_slug\nORDER BY day, task_slug",
    )


def top_errors(limit: int = 10) -> str:
    """The most frequent error patterns in the window, labelled by type and short hash."""
    return project(
        "error_type || ' ' || substr(stack_hash, 1, 8) AS error_group, occurrences, "
        "tasks, last_seen, sample_message",
        "error_patterns",
        f"\nLIMIT {int(limit)}",
    )


# -- alerts and schedules: tables for the dashboard ------------------------------------------
# datasette-dashboards sets a table cell's HTML from the value, and reads the column names
# from the first row: so every text is escaped here, links are built here, and a table with
# nothing to show still answers one row that says so.


def _html(expr: str) -> str:
    """SQL that HTML-escapes a value (NULL becomes empty text)."""
    return (
        f"replace(replace(replace(replace(coalesce({expr}, ''), '&', '&amp;'), "
        "'<', '&lt;'), '>', '&gt;'), '\"', '&quot;')"
    )


def _minute(expr: str) -> str:
    """SQL for a stored timestamp shown to the minute on one line: ``2026-11-20 10:05``
    (empty when NULL)."""
    stamp = f"replace(substr({_html(expr)}, 1, 16), 'T', ' ')"
    return (
        f"CASE WHEN coalesce({expr}, '') = '' THEN '' ELSE "
        f"'<span style=\"white-space: nowrap\">' || {stamp} || '</span>' END"
    )


def open_alerts_count() -> str:
    """How many alerts are open (all tasks): one row, column ``open_alerts``."""
    body = pin_default(get("open_alerts").sql, "task_slug")
    return f"SELECT count(*) AS open_alerts FROM (\n{body}\n)"


def open_alerts_table(limit: int = 15) -> str:
    """The newest open alerts (all tasks) as escaped HTML cells, the run linked to its trace
    page; a single "No open alerts" row when there are none. (When the problem started is in
    the canned query: the table keeps to what fits beside the count.)"""
    body = pin_default(get("open_alerts").sql, "task_slug")
    trace = (
        "CASE WHEN coalesce(trace_id, '') = '' THEN '' ELSE "
        f"'<a href=\"/-/trace/' || {_html('trace_id')} || '\" title=\"' || {_html('trace_id')} "
        f"|| '\">' || substr({_html('trace_id')}, 1, 12) || '…</a>' END"
    )
    return (
        f"WITH p AS (\n{body}\n),\n"
        f"shown AS (SELECT * FROM p LIMIT {int(limit)})\n"
        f"SELECT {_html('kind')} AS kind, {_html('task_slug')} AS task, "
        f"{_html('title')} AS alert, {_minute('opened_at')} AS opened, {trace} AS run, "
        f"{_html('detail')} AS detail\n"
        "FROM shown\n"
        "UNION ALL\n"
        "SELECT '', '', 'No open alerts.', '', '', '' WHERE NOT EXISTS (SELECT 1 FROM p)"
    )


#: How each schedule state is shown: missed red, due orange, never-run grey, ok green.
_STATE_STYLE = {
    "missed": "color: #b91c1c; font-weight: bold",
    "due": "color: #c2410c; font-weight: bold",
    "never-run": "color: #6b7280",
    "ok": "color: #15803d",
}


def schedule_health_table() -> str:
    """Every schedule's health (judged now) as escaped HTML cells, worst first; a single
    "No schedules" row when no task has one."""
    body = get("schedule_health").sql
    styled = " ".join(
        f"WHEN '{state}' THEN '<span style=\"{style}\">{state}</span>'"
        for state, style in _STATE_STYLE.items()
    )
    return (
        f"WITH p AS (\n{body}\n)\n"
        f"SELECT {_html('task_slug')} AS task, CASE state {styled} ELSE {_html('state')} END "
        f"AS state, {_html('schedule')} AS schedule, {_html('timezone')} AS zone, "
        f'{_minute("last_started_at")} AS "last start", {_html("last_status")} AS '
        f'"last status", {_minute("expected_at")} AS "next expected", '
        "printf('%g s', grace_seconds) AS grace\n"
        "FROM p\n"
        "UNION ALL\n"
        "SELECT 'No schedules yet: add one with <code>taskexec schedule add</code>.', "
        "'', '', '', '', '', '', '' WHERE NOT EXISTS (SELECT 1 FROM p)"
    )
