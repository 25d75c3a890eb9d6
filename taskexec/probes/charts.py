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
