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


#: The value of the dashboard's task filter that means every task (the filter lists it first,
#: so the dropdown never shows a blank box).
ALL_TASKS = "all tasks"


def task_filtered(sql: str) -> str:
    """Probe SQL whose ``:task_slug`` also reads :data:`ALL_TASKS` as "every task" (as it
    reads an empty value)."""
    return NAMED.sub(
        lambda m: f"nullif(:task_slug, '{ALL_TASKS}')" if m.group(1) == "task_slug" else m.group(0),
        sql,
    )


def task_choices() -> str:
    """The dashboard's task filter: :data:`ALL_TASKS` first, then every task by name."""
    tasks = get("task_list").sql
    return f"SELECT '{ALL_TASKS}' AS task_slug\nUNION ALL\nSELECT task_slug FROM (\n{tasks}\n)"


# -- days the window covers only in part ----------------------------------------------------
# A chart per day reads the window's first day from the window's start (since=7d starts at
# this hour a week ago) and the current day up to now: both hold fewer runs than a whole day,
# so their counts dip and their rates jump on a handful of runs. Every per-day chart says
# which days are whole (``partial`` 0) and what a partial day covers (``covers``).


def _coverage(day: str, since_default: str) -> str:
    """SQL columns ``partial`` (1 when ``day``, a ``YYYY-MM-DD`` text, is not a whole day of
    the window) and ``covers`` (what part of it the numbers cover), for a select over a
    probe's rows. The window is the probe's own: ``te_since(:since, since_default)``."""
    start = f"{day} || 'T00:00:00.000000Z' < te_since(:since, '{since_default}')"
    ongoing = f"{day} >= date('now')"
    return (
        f"CASE WHEN ({start}) OR ({ongoing}) THEN 1 ELSE 0 END AS partial, "
        f"CASE WHEN ({start}) AND ({ongoing}) THEN 'part of the day (window start to now)' "
        f"WHEN {ongoing} THEN 'so far: the day is not over' "
        f"WHEN {start} THEN 'from the window start only' "
        "ELSE 'whole day' END AS covers"
    )


def attempts_per_day() -> str:
    """Attempts, failures and failure rate per day and task, from the hourly probe (no
    percentiles to sort, so about 4x cheaper at 1M rows than ``daily_trend``), with the
    days the window covers only in part marked (``partial``, ``covers``)."""
    return (
        "SELECT day, task_slug, attempts, failures, failure_rate, "
        f"{_coverage('day', '48h')}\nFROM (\n"
        + project(
            "substr(hour, 1, 10) AS day, task_slug, sum(attempts) AS attempts, "
            "sum(failures) AS failures, "
            "round(1.0 * sum(failures) / sum(attempts), 4) AS failure_rate",
            "hourly_failure_rate",
            "\nGROUP BY day, task_slug",
        )
        + "\n)\nORDER BY day, task_slug"
    )


def durations_per_day() -> str:
    """p50 and p95 duration per day and task from ``daily_trend``, one row per percentile
    (``percentile`` is ``p50`` or ``p95``, ``ms`` its value, within 1% of exact), with the
    days the window covers only in part marked (``partial``, ``covers``)."""
    rows = f"SELECT day, task_slug, attempts, {_coverage('day', '7d')}"
    return (
        f"WITH t AS MATERIALIZED (\n{get('daily_trend').sql}\n)\n"
        f"{rows}, 'p50' AS percentile, p50_ms AS ms FROM t WHERE p50_ms IS NOT NULL\n"
        "UNION ALL\n"
        f"{rows}, 'p95' AS percentile, p95_ms AS ms FROM t WHERE p95_ms IS NOT NULL\n"
        "ORDER BY day, task_slug, percentile"
    )


# -- error groups, named by what they say ----------------------------------------------------

#: The longest error label a chart shows (the whole message is in the tooltip).
LABEL_CHARS = 60


def _error_names(groups: str) -> str:
    """CTEs ending in ``names (stack_hash, error_group)``: each group of the SELECT ``groups``
    (``stack_hash``, ``error_type``, ``sample_message``) labelled by what it says, its
    exception's class name (without the module) and its message's first line, ``ValueError:
    bad value``, cut to :data:`LABEL_CHARS` (the rule of ``plots.error_label``); when two groups
    would share a label (two bugs raising the same message) each gets its short hash added."""
    kind = "substr(t, length(rtrim(t, replace(t, '.', ''))) + 1)"  # after the last dot
    line = (
        "trim(CASE WHEN instr(m, char(10)) > 0 THEN substr(m, 1, instr(m, char(10)) - 1) "
        "ELSE m END)"
    )
    whole = (
        "CASE WHEN line = '' THEN coalesce(nullif(kind, ''), 'error') "
        "WHEN kind = '' THEN line ELSE kind || ': ' || line END"
    )
    cut = (
        f"CASE WHEN length(whole) > {LABEL_CHARS} "
        f"THEN rtrim(substr(whole, 1, {LABEL_CHARS - 1})) || '…' ELSE whole END"
    )
    return (
        f"raw_names AS (\n{groups}\n),\n"
        "clean_names AS (SELECT stack_hash, coalesce(error_type, '') AS t, "
        "trim(coalesce(sample_message, '')) AS m FROM raw_names),\n"
        f"split_names AS (SELECT stack_hash, {kind} AS kind, {line} AS line FROM clean_names),\n"
        f"whole_names AS (SELECT stack_hash, {whole} AS whole FROM split_names),\n"
        f"cut_names AS (SELECT stack_hash, {cut} AS label FROM whole_names),\n"
        "names AS (SELECT stack_hash, CASE WHEN count(*) OVER (PARTITION BY label) > 1 "
        "THEN label || ' #' || substr(stack_hash, 1, 6) ELSE label END AS error_group "
        "FROM cut_names)"
    )


def top_errors(limit: int = 10) -> str:
    """The most frequent error patterns in the window, labelled by what they say (type and
    sample message, ``error_group``), with the short hash (``hash``) and the whole sample
    message for the tooltip."""
    patterns = pin_default(get("error_patterns").sql, "limit")
    return (
        f"WITH p AS MATERIALIZED (\nSELECT * FROM (\n{patterns}\n) LIMIT {int(limit)}\n),\n"
        + _error_names("SELECT stack_hash, error_type, sample_message FROM p")
        + "\nSELECT n.error_group, substr(p.stack_hash, 1, 12) AS hash, p.occurrences, p.tasks, "
        "p.last_seen, p.sample_message\nFROM p JOIN names AS n ON n.stack_hash = p.stack_hash\n"
        "ORDER BY p.occurrences DESC, n.error_group"
    )


def errors_per_day() -> str:
    """Failures per day of the window's top error groups (``error_trend``), each labelled by
    what it says (``error_group``, as in :func:`top_errors`), with its short hash and the days
    the window covers only in part marked (``partial``, ``covers``)."""
    trend = pin_default(get("error_trend").sql, "top")
    return (
        f"WITH t AS MATERIALIZED (\n{trend}\n),\n"
        + _error_names(
            "SELECT stack_hash, error_type, sample_message FROM error_groups\n"
            "WHERE stack_hash IN (SELECT stack_hash FROM t)"
        )
        + "\nSELECT t.day, n.error_group, substr(t.stack_hash, 1, 12) AS hash, t.failures, "
        f"{_coverage('t.day', '7d')}\n"
        "FROM t JOIN names AS n ON n.stack_hash = t.stack_hash\n"
        "ORDER BY t.day, t.failures DESC"
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
