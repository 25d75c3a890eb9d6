"""Datasette metadata built from the probe SQL: titles, column help, canned queries, a dashboard.

Pure: nothing here opens a database. ``build_metadata(name)`` returns the dict Datasette takes;
``to_yaml`` writes it the same way every time, so ``metadata.yml`` can be checked for staleness.
Every SQL string comes from ``taskexec/probes``: dashboard charts use a probe verbatim or one of
its chart-shaped views in ``taskexec/probes/charts.py``.
"""

from __future__ import annotations

from typing import Any

from ...probes import Probe, all_probes, get
from ...probes import charts as chart_sql

DEFAULT_DATABASE = "taskexec"
DASHBOARD = "task-health"
TABLE = "task_executions"
FTS_TABLE = "task_executions_fts"
HIDDEN_TABLES = (
    "_taskexec_migrations",
    "taskexec_meta",
    FTS_TABLE,
    f"{FTS_TABLE}_config",
    f"{FTS_TABLE}_data",
    f"{FTS_TABLE}_docsize",
    f"{FTS_TABLE}_idx",
)

EXECUTION_COLUMNS = {
    "id": "Row id (links to this attempt's page).",
    "span_id": "This attempt: a W3C span id, 16 lowercase hex.",
    "trace_id": "The logical run, stable across retries: a W3C trace id. Opens the trace page.",
    "parent_span_id": "The enclosing span when the task ran inside another traced operation.",
    "attempt": "1 for the first try, 2 for the first retry, ...",
    "retry_of": "span_id of the previous attempt of the same run.",
    "idempotency_key": "SHA-256 of (task_id, scheduled-or-start time, attempt): the same run "
    "recorded live and backfilled later gets the same key, so it is stored once.",
    "task_id": "The task definition's id.",
    "task_slug": "The task's human name.",
    "status": "running, success, failed, timeout, cancelled or abandoned (the worker died).",
    "error_type": "Qualified exception type; empty on success.",
    "error_message": "Exception message, PII scrubbed (emails, IPs, UUIDs -> placeholders).",
    "stack_trace": "Traceback, PII scrubbed.",
    "stack_hash": "Error-group fingerprint: exception type plus in-app frames, line numbers "
    "ignored, so one bug keeps one hash across deploys.",
    "first_seen_error": "1 when this attempt is the first ever occurrence of its stack_hash.",
    "scheduled_at": "When the scheduler meant it to run (UTC), if known.",
    "started_at": "When the attempt started (UTC, ISO-8601, microseconds).",
    "ended_at": "When it ended (UTC); empty while running or when abandoned.",
    "duration_ms": "Wall-clock duration in milliseconds.",
    "memories_retrieved": "How many memories the task retrieved.",
    "retrieval_sources": "Where retrieved memories came from (JSON array).",
    "files_written": "Files the task wrote (JSON array).",
    "parents": "Input records / parent pointers (JSON array).",
    "causes": "Upstream executions that caused this one (JSON array).",
    "provenance": "How the row arrived: live (recorder), backfill (JSON files) or otlp (spans).",
    "host": "Host the attempt ran on.",
    "pid": "Process id on that host.",
    "content": "One-paragraph summary of what the task did, PII scrubbed; full-text searchable.",
    "attributes": "Everything else the caller attached (JSON object), PII scrubbed.",
    "created_at": "When this row was recorded (UTC).",
    "heartbeat_at": "Last sign of life of a running attempt, refreshed by the recorder's "
    "writer when heartbeats are on (UTC); sweep judges running rows by it.",
}

ERROR_GROUP_COLUMNS = {
    "stack_hash": "The fingerprint shared by every attempt that failed the same way.",
    "error_type": "Exception type of the most recent occurrence.",
    "sample_message": "Message of the most recent occurrence (PII scrubbed).",
    "sample_span_id": "span_id of the most recent occurrence.",
    "first_span_id": "span_id of the first occurrence ever.",
    "first_seen": "When the group first occurred (UTC).",
    "last_seen": "When it last occurred (UTC).",
    "occurrences": "Attempts in this group, all time.",
}

ALERT_COLUMNS = {
    "id": "Row id.",
    "kind": "What was found: missed, late, stuck, long, new_error, regression or spike.",
    "task_slug": "The task it concerns.",
    "alert_key": "Which finding of that kind and task (a span id, a stack hash, 'schedule'): "
    "finding it again while the alert is open changes nothing.",
    "state": "open until a check no longer finds it, then resolved.",
    "since": "When the problem started (the slot, the start, the first failure), if known.",
    "opened_at": "When a check opened the alert (the latest time, if it opened again).",
    "last_seen_at": "The latest check that still found it.",
    "resolved_at": "When a check no longer found it; empty while open.",
    "title": "One line: what was found.",
    "detail": "The numbers behind it (allowance, durations, messages, PII scrubbed).",
    "trace_id": "The run to look at, when the finding names one (the open_alerts query and the "
    "dashboard link it to its trace page).",
    "span_id": "The attempt to look at, when the finding names one.",
    "stack_hash": "The error group, for error alerts.",
    "times_opened": "How often this alert opened: more than 1 means it keeps coming back.",
    "notice": "Whether its opening was told: sent, failed (retried) or suppressed (rate limit).",
    "notice_at": "When the opening was told.",
    "resolve_notice": "Whether its resolution was told.",
}

#: Facet values shown per facet on a table page (the rest is a click away), so the rows start
#: on the first screen.
FACET_SIZE = 5
#: Rows per page of the executions table (``_size=`` asks for more): every cell of its thirty
#: columns passes through each plugin's ``render_cell``, so a page's cost is its cells.
PAGE_SIZE = 50

#: The human-first column order of a table's page (after the row link): what happened first,
#: then the details, hex ids last. Columns not named keep their stored order after these.
COLUMN_ORDER: dict[str, tuple[str, ...]] = {
    TABLE: (
        "task_slug",
        "status",
        "started_at",
        "duration_ms",
        "attempt",
        "trace_id",
        "error_type",
        "error_message",
        "ended_at",
        "scheduled_at",
        "host",
        "pid",
        "provenance",
        "content",
        "memories_retrieved",
        "retrieval_sources",
        "files_written",
        "stack_trace",
        "stack_hash",
        "first_seen_error",
        "parents",
        "causes",
        "attributes",
        "created_at",
        "heartbeat_at",
        "task_id",
    ),
    "error_groups": (
        "error_type",
        "sample_message",
        "occurrences",
        "first_seen",
        "last_seen",
    ),
    "alerts": (
        "kind",
        "task_slug",
        "state",
        "title",
        "since",
        "opened_at",
        "trace_id",
        "times_opened",
        "detail",
    ),
    "schedules": (),
}

#: The canned queries as the database page lists them: under a heading, most useful first.
#: A probe not named here is listed last, under "More".
QUERY_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "What needs attention",
        ("open_alerts", "schedule_health", "recent_failures", "new_errors", "error_patterns"),
    ),
    (
        "How the tasks are doing",
        (
            "headline",
            "failure_rates",
            "daily_trend",
            "hourly_failure_rate",
            "error_trend",
            "retry_analysis",
            "duration_stats",
            "duration_trend",
            "slowest_runs",
            "abandoned_runs",
            "slots_run_more_than_once",
        ),
    ),
    ("What is in the database", ("task_list", "data_range", "retrieval_stats", "execution_sample")),
    (
        "Alerts: their history and the detections `taskexec check` runs",
        (
            "alert_history",
            "alert_missed_runs",
            "alert_late_starts",
            "alert_stuck_runs",
            "alert_long_runs",
            "alert_new_errors",
            "alert_regressions",
            "alert_failure_spikes",
        ),
    ),
)


def query_groups(names: list[str] | tuple[str, ...]) -> list[tuple[str, list[str]]]:
    """``names`` under the headings of ``QUERY_GROUPS``, in its order; unknown ones under
    "More" at the end. Empty groups are left out."""
    known = set(names)
    listed = {name for _, group in QUERY_GROUPS for name in group}
    groups = [(title, [n for n in group if n in known]) for title, group in QUERY_GROUPS]
    groups.append(("More", sorted(n for n in names if n not in listed)))
    return [(title, group) for title, group in groups if group]


SCHEDULE_COLUMNS = {
    "task_slug": "The task the schedule is for.",
    "cron": "A cron expression (5 fields, or 6 with seconds), in the schedule's time zone.",
    "every_seconds": "Or an interval in seconds.",
    "timezone": "The time zone the cron expression is read in.",
    "grace_seconds": "How late a start may be before the slot counts as missed.",
    "tolerance_seconds": "How early a start still counts for a slot.",
    "max_duration_seconds": "The longest normal run; longer ones open a 'long' alert.",
    "thresholds": "Detection thresholds overridden for this task (JSON object).",
    "source": "Who wrote the schedule: cli, run, celery-beat, apscheduler or api.",
    "expected_at": "The slot the next run is expected at, kept by `taskexec check`.",
    "last_started_at": "The task's last start when `taskexec check` last looked.",
    "created_at": "When the schedule was added (UTC).",
    "updated_at": "When it last changed (UTC).",
}


def build_metadata(database: str = DEFAULT_DATABASE) -> dict[str, Any]:
    """The whole Datasette metadata for a taskexec database served under the name ``database``."""
    return {
        "title": "taskexec",
        "description_html": _home_html(database),
        "databases": {
            database: {
                "description": "Task executions recorded by taskexec: one row per attempt.",
                "tables": _tables(),
                "queries": _queries(),
            }
        },
        "plugins": {"datasette-dashboards": {DASHBOARD: dashboard(database)}},
    }


def _queries() -> dict[str, Any]:
    """Every probe as a canned query, in the database page's order (``QUERY_GROUPS``)."""
    by_name = {p.name: p for p in all_probes()}
    ordered = [name for _, group in query_groups(list(by_name)) for name in group]
    return {name: canned_query(by_name[name]) for name in ordered}


def canned_query(probe: Probe) -> dict[str, Any]:
    """A probe as a canned query: its SQL verbatim; blank parameters mean the probe's default."""
    query: dict[str, Any] = {
        "title": probe.title,
        "description": probe.description + _params_help(probe),
        "sql": probe.sql,
        "hide_sql": True,
    }
    if probe.params:
        query["params"] = [p.name for p in probe.params]
    return query


def _params_help(probe: Probe) -> str:
    if not probe.params:
        return ""
    parts = [
        f"{p.name}: {p.description}" + (f" (default {p.default})" if p.default else "")
        for p in probe.params
    ]
    return " Parameters, blank for the default: " + "; ".join(parts) + "."


def _tables() -> dict[str, Any]:
    tables: dict[str, Any] = {
        TABLE: {
            "title": "Task executions",
            "description": "One row per attempt. Search covers content and error messages; "
            "click a trace_id for every attempt of that run.",
            "sort_desc": "started_at",
            # Counted from the rollups (plugin.RollupFacet): a millisecond at any size.
            "facets": [{"rollup": "status"}, {"rollup": "task_slug"}],
            "facet_size": FACET_SIZE,
            "size": PAGE_SIZE,
            "fts_table": FTS_TABLE,
            "fts_pk": "id",
            "searchmode": "escaped",
            "columns": EXECUTION_COLUMNS,
        },
        "error_groups": {
            "title": "Error groups",
            "description": "One row per distinct failure (stack_hash), kept current as rows "
            "are written. On a group's page, its stack_hash links to every attempt in it.",
            "sort_desc": "last_seen",
            "facets": ["error_type"],
            "facet_size": FACET_SIZE,
            "columns": ERROR_GROUP_COLUMNS,
        },
        "alerts": {
            "title": "Alerts",
            "description": "What `taskexec check` found: one row per alert, open until a check "
            "no longer finds it. The open_alerts query lists the open ones.",
            "sort_desc": "opened_at",
            "facets": ["state", "kind", "task_slug"],
            "columns": ALERT_COLUMNS,
        },
        "schedules": {
            "title": "Schedules",
            "description": "When each scheduled task should run (`taskexec schedule add`). The "
            "schedule_health query judges each one against now.",
            "sort": "task_slug",
            "columns": SCHEDULE_COLUMNS,
        },
    }
    for name in HIDDEN_TABLES:
        tables[name] = {"hidden": True}
    return tables


#: What each of our tables holds, in a sentence (the database page shows it under the name).
TABLE_DESCRIPTIONS = {
    name: spec["description"] for name, spec in _tables().items() if "description" in spec
}


def _home_html(database: str) -> str:
    db = _tilde(database)
    links = [
        ("/-/dashboards/" + DASHBOARD, "Task health dashboard"),
        (f"/{db}/open_alerts", "Open alerts"),
        (f"/{db}/schedule_health", "Scheduled tasks"),
        (f"/{db}/{TABLE}", "All executions (search, facets)"),
        (f"/{db}/recent_failures", "Recent failures"),
        (f"/{db}/error_patterns", "Error patterns"),
        (f"/{db}/new_errors", "New error patterns"),
    ]
    items = "".join(f'<li><a href="{href}">{label}</a></li>' for href, label in links)
    return (
        "<p>Every attempt of every scheduled or background task, recorded by taskexec. "
        "Click any trace_id to see all attempts of a run on its trace page.</p>"
        f"<ul>{items}</ul>"
    )


def _tilde(name: str) -> str:
    """Datasette's tilde encoding of a database name for use in a URL path."""
    safe = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
    return "".join(c if c in safe else "".join(f"~{b:02X}" for b in c.encode()) for c in name)


# -- the dashboard --------------------------------------------------------------------------


def _metric(database: str, title: str, sql: str, field: str, suffix: str = "") -> dict[str, Any]:
    display: dict[str, Any] = {"field": field}
    if suffix:
        display["suffix"] = suffix
    return {"title": title, "db": database, "query": sql, "library": "metric", "display": display}


def _table(database: str, title: str, sql: str) -> dict[str, Any]:
    """A table card: the query's columns as headers, its (already escaped) cells as HTML."""
    return {"title": title, "db": database, "query": sql, "library": "table", "display": {}}


def _vega_lite(database: str, title: str, sql: str, display: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": title,
        "db": database,
        "query": sql,
        "library": "vega-lite",
        "display": display,
    }


#: Ticks on a day axis: one a day over two weeks or less, one a week up to four months, else
#: one a month; always at midnight UTC, so a label never repeats or names a day with no data.
_DAY_TICKS = {
    "expr": "(domain('x')[1] - domain('x')[0]) <= 16 * 864e5 ? {interval: 'day', step: 1} "
    ": (domain('x')[1] - domain('x')[0]) <= 120 * 864e5 ? {interval: 'week', step: 1} "
    ": {interval: 'month', step: 1}"
}
_DAY_AXIS = {"format": "%b %d", "tickCount": _DAY_TICKS, "labelOverlap": True}
#: A day on a line chart's time axis: the point sits on the day's tick (midnight UTC).
_DAY = {
    "field": "day",
    "type": "temporal",
    "timeUnit": "utcyearmonthdate",
    "title": "day (UTC)",
    "scale": {"type": "utc", "padding": 12},
    "axis": _DAY_AXIS,
}
#: A day on a bar chart: the bar is centred on the day's tick, 0.8 of a day wide (so one day
#: is one labelled bar and a day without rows is a gap).
_DAY_BAR_TRANSFORM = [
    {"calculate": "toDate(datum.day) - 0.4 * 864e5", "as": "day_from"},
    {"calculate": "toDate(datum.day) + 0.4 * 864e5", "as": "day_to"},
]
_DAY_BAR = {
    "x": {
        "field": "day_from",
        "type": "temporal",
        "title": "day (UTC)",
        "scale": {"type": "utc"},
        "axis": _DAY_AXIS,
    },
    "x2": {"field": "day_to"},
}
#: A count axis: whole numbers only, never 0.2, 0.4, ...
_COUNT_AXIS = {"tickMinStep": 1, "format": ",d"}
#: A rate axis in percent, as precise as its ticks need ("12%", "0.5%"): no two alike.
_PERCENT_AXIS = {"format": "~%"}
#: Horizontal bar charts size their height from the bars; fit only the width.
_FIT_X = {"type": "fit-x", "resize": True}
_TASK = {"field": "task_slug", "type": "nominal", "title": "task"}
#: The dashboard's open-alerts table shows this many; the canned query shows them all.
OPEN_ALERTS_SHOWN = 15
#: What a day the window covers only in part looks like, as the charts' legends say it.
PART_OF_A_DAY = "part of a day"
#: Bars of a day the window covers only in part are faded, with a legend saying so.
_FADED_PARTIAL = {
    "field": "partial",
    "type": "ordinal",
    "title": None,
    "scale": {"domain": [0, 1], "range": [0.9, 0.35]},
    "legend": {
        "labelExpr": f"datum.value == 1 ? '{PART_OF_A_DAY} (faded)' : 'whole day'",
        "symbolFillColor": "#4c78a8",
        "symbolStrokeColor": "#4c78a8",
    },
}


def _day_tooltip(*fields: tuple[str, str, str]) -> list[dict[str, Any]]:
    """A per-day chart's tooltip: the day, the given (field, type, title)s, what it covers."""
    tips: list[dict[str, Any]] = [
        {"field": "day", "type": "temporal", "timeUnit": "utcyearmonthdate", "title": "day"}
    ]
    for field, kind, title in fields:
        tip: dict[str, Any] = {"field": field, "type": kind, "title": title}
        if field.endswith("rate"):
            tip["format"] = ".1%"
        tips.append(tip)
    tips.append({"field": "covers", "type": "nominal", "title": "covers"})
    return tips


def _per_day_lines(
    y: dict[str, Any], tooltip: list[dict[str, Any]], line: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A line per task over whole days; a day the window covers only in part is a hollow point
    of its own, not joined to the line, so half a day's jump does not read as a trend."""
    return {
        "encoding": {"x": _DAY, "y": y, "color": _TASK, "tooltip": tooltip},
        "layer": [
            # The line without points of its own (the dashboard's default adds them), so a
            # line-style legend draws strokes, not dots; the whole days' dots come next.
            {
                "transform": [{"filter": "datum.partial == 0"}],
                "mark": {"type": "line", "point": False},
                "encoding": line or {},
            },
            {
                "transform": [{"filter": "datum.partial == 0"}],
                "mark": {"type": "point", "filled": True, "size": 25},
            },
            {
                "transform": [{"filter": "datum.partial == 1"}],
                "mark": {"type": "point", "filled": False, "size": 70, "strokeWidth": 2},
                "encoding": {
                    "shape": {
                        "datum": f"{PART_OF_A_DAY} (hollow)",
                        "type": "nominal",
                        "title": None,
                    }
                },
            },
        ],
    }


def dashboard(database: str) -> dict[str, Any]:
    """The "Task health" dashboard: 24 h headline numbers, what needs attention now (open
    alerts, each scheduled task's health) and trends over the chosen window."""
    headline = chart_sql.headline_24h()
    # Counts per day come from the hourly probe; only the duration chart pays for
    # daily_trend's percentiles.
    counts = chart_sql.task_filtered(chart_sql.attempts_per_day())
    durations = chart_sql.task_filtered(chart_sql.durations_per_day())
    charts = {
        "attempts-24h": _metric(database, "Attempts, last 24 h", headline, "attempts"),
        "failure-rate-24h": _metric(
            database,
            "Failure rate, last 24 h",
            chart_sql.failure_rate_24h_text(),
            "failure_rate",
        ),
        "new-errors-24h": _metric(
            database, "New error patterns, last 24 h", headline, "new_error_patterns"
        ),
        "running-now": _metric(database, "Running now", headline, "running_now"),
        "open-alerts": _metric(
            database, "Open alerts", chart_sql.open_alerts_count(), "open_alerts"
        ),
        "open-alerts-table": _table(
            database,
            f"Open alerts, newest first (at most {OPEN_ALERTS_SHOWN}; all: open_alerts)",
            chart_sql.open_alerts_table(OPEN_ALERTS_SHOWN),
        ),
        "scheduled-tasks": _table(
            database,
            "Scheduled tasks: next expected, last seen, state now",
            chart_sql.schedule_health_table(),
        ),
        "attempts-per-day": _vega_lite(
            database,
            "Attempts per day by task",
            counts,
            {
                "transform": _DAY_BAR_TRANSFORM,
                "mark": {"type": "bar", "tooltip": True},
                "encoding": {
                    **_DAY_BAR,
                    "y": {
                        "field": "attempts",
                        "aggregate": "sum",
                        "type": "quantitative",
                        "title": "attempts",
                        "axis": _COUNT_AXIS,
                    },
                    "color": _TASK,
                    "opacity": _FADED_PARTIAL,
                    "tooltip": _day_tooltip(
                        ("task_slug", "nominal", "task"),
                        ("attempts", "quantitative", "attempts"),
                    ),
                },
            },
        ),
        "failure-rate-per-day": _vega_lite(
            database,
            "Failure rate per day by task",
            counts,
            _per_day_lines(
                {
                    "field": "failure_rate",
                    "type": "quantitative",
                    "title": "failure rate",
                    "axis": _PERCENT_AXIS,
                },
                _day_tooltip(
                    ("task_slug", "nominal", "task"),
                    ("failure_rate", "quantitative", "failure rate"),
                    ("failures", "quantitative", "failures"),
                    ("attempts", "quantitative", "attempts"),
                ),
            ),
        ),
        "duration-per-day": _vega_lite(
            database,
            "Duration per day: p50 (solid) and p95 (dashed), ±1%",
            durations,
            _per_day_lines(
                {
                    "field": "ms",
                    "type": "quantitative",
                    "title": "duration (ms, log scale)",
                    "scale": {"type": "log"},
                },
                _day_tooltip(
                    ("task_slug", "nominal", "task"),
                    ("percentile", "nominal", "percentile (±1%)"),
                    ("ms", "quantitative", "ms"),
                    ("attempts", "quantitative", "attempts"),
                ),
                {
                    "strokeDash": {
                        "field": "percentile",
                        "type": "nominal",
                        "title": "percentile (±1%)",
                        "scale": {"domain": ["p50", "p95"], "range": [[1, 0], [6, 3]]},
                        "legend": {
                            "symbolType": "stroke",
                            "symbolStrokeColor": "#333",
                            "symbolStrokeWidth": 2,
                            "symbolSize": 400,
                        },
                    }
                },
            ),
        ),
        "top-errors": _vega_lite(
            database,
            "Top error patterns in the window",
            chart_sql.top_errors(10),
            {
                "autosize": _FIT_X,
                "mark": {"type": "bar", "tooltip": True},
                "encoding": {
                    "y": {
                        "field": "error_group",
                        "type": "nominal",
                        "sort": "-x",
                        "title": None,
                        "axis": {"labelLimit": 320},
                    },
                    "x": {
                        "field": "occurrences",
                        "type": "quantitative",
                        "title": "failures",
                        "axis": _COUNT_AXIS,
                    },
                    "tooltip": [
                        {"field": "error_group", "type": "nominal", "title": "error"},
                        {"field": "occurrences", "type": "quantitative", "title": "failures"},
                        {"field": "tasks", "type": "nominal"},
                        {"field": "last_seen", "type": "nominal", "title": "last seen"},
                        {"field": "sample_message", "type": "nominal", "title": "message"},
                        {"field": "hash", "type": "nominal", "title": "stack hash"},
                    ],
                },
            },
        ),
        "failure-rate-by-task": _vega_lite(
            database,
            "Failure rate by task in the window",
            get("failure_rates").sql,
            {
                "autosize": _FIT_X,
                "mark": {"type": "bar", "tooltip": True},
                "encoding": {
                    "y": {**_TASK, "sort": "-x"},
                    "x": {
                        "field": "failure_rate",
                        "type": "quantitative",
                        "title": "failure rate",
                        "axis": _PERCENT_AXIS,
                    },
                    "tooltip": [
                        {"field": "task_slug", "type": "nominal", "title": "task"},
                        {
                            "field": "failure_rate",
                            "type": "quantitative",
                            "title": "failure rate",
                            "format": ".1%",
                        },
                        {"field": "failures", "type": "quantitative"},
                        {"field": "attempts", "type": "quantitative"},
                    ],
                },
            },
        ),
        "errors-per-day": _vega_lite(
            database,
            "Failures per day by error (top 8)",
            chart_sql.errors_per_day(),
            {
                "transform": _DAY_BAR_TRANSFORM,
                "mark": {"type": "bar", "tooltip": True},
                "encoding": {
                    **_DAY_BAR,
                    "y": {
                        "field": "failures",
                        "aggregate": "sum",
                        "type": "quantitative",
                        "title": "failures",
                        "axis": _COUNT_AXIS,
                    },
                    "color": {
                        "field": "error_group",
                        "type": "nominal",
                        "title": "error",
                        "legend": {"orient": "bottom", "columns": 1, "labelLimit": 480},
                    },
                    "opacity": _FADED_PARTIAL,
                    "tooltip": _day_tooltip(
                        ("error_group", "nominal", "error"),
                        ("failures", "quantitative", "failures"),
                        ("hash", "nominal", "stack hash"),
                    ),
                },
            },
        ),
        "next": {"title": "Where next", "library": "markdown", "display": _next_markdown(database)},
    }
    return {
        "title": "Task health",
        "description": "How your tasks are doing: the last 24 hours first, then what needs "
        "attention now (open alerts, scheduled tasks), then the trends over the window you "
        "choose (since: 24h, 7d, 2w, 1.5d, an ISO-8601 time with a zone, or all). Days are "
        "UTC. A day the window covers only in part (today so far, the window's first day) is "
        "drawn faded or hollow: it is not a whole day's worth of runs. Durations are within 1%.",
        "settings": {"allow_fullscreen": True},
        "layout": [
            ["attempts-24h", "failure-rate-24h", "new-errors-24h", "running-now"],
            ["open-alerts", "open-alerts-table", "open-alerts-table", "open-alerts-table"],
            ["scheduled-tasks", "scheduled-tasks", "scheduled-tasks", "scheduled-tasks"],
            [
                "attempts-per-day",
                "attempts-per-day",
                "failure-rate-per-day",
                "failure-rate-per-day",
            ],
            ["duration-per-day", "duration-per-day", "top-errors", "top-errors"],
            ["failure-rate-by-task", "failure-rate-by-task", "errors-per-day", "errors-per-day"],
            ["next", "next", "next", "next"],
        ],
        "filters": {
            "since": {"name": "Since", "type": "text", "default": "7d"},
            "task_slug": {
                "name": "Task (trend charts)",
                "type": "select",
                "db": database,
                "query": chart_sql.task_choices(),
                "default": chart_sql.ALL_TASKS,
            },
        },
        "charts": charts,
    }


def _next_markdown(database: str) -> str:
    db = _tilde(database)
    rows = [
        (f"/{db}/open_alerts", "Open alerts", "every open alert, with its detail"),
        (f"/{db}/alerts", "Alert history", "open and resolved alerts; facets by kind and task"),
        (f"/{db}/schedule_health", "Scheduled tasks", "each schedule judged now"),
        (f"/{db}/recent_failures", "Recent failures", "newest failed attempts; click a trace_id"),
        (f"/{db}/error_patterns", "Error patterns", "failures grouped by stack hash"),
        (f"/{db}/new_errors", "New error patterns", "bugs first seen in the last 24 h"),
        (f"/{db}/slowest_runs", "Slowest runs", "the longest attempts"),
        (f"/{db}/retry_analysis", "Retry analysis", "how often retries rescue a run"),
        (f"/{db}/{TABLE}", "All executions", "full-text search, facets by status and task"),
    ]
    lines = [f"- [{label}]({href}): {what}" for href, label, what in rows]
    return "**Where next**\n\n" + "\n".join(lines) + "\n"


# -- YAML -----------------------------------------------------------------------------------


def to_yaml(metadata: dict[str, Any]) -> str:
    """Deterministic YAML: keys in build order, multi-line strings (the SQL) as literal blocks."""
    import yaml

    class Dumper(yaml.SafeDumper):
        """SafeDumper that writes multi-line strings as ``|`` blocks and never uses aliases."""

        def ignore_aliases(self, data: Any) -> bool:
            return True

    def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, _str)
    header = (
        "# Generated by `taskexec metadata > metadata.yml` from taskexec/probes. Do not edit.\n"
    )
    body = yaml.dump(
        metadata, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=100, indent=2
    )
    return header + body
