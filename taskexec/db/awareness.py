"""The awareness tables: ``schedules`` (when tasks should run) and ``alerts`` (what was found,
its state, and whether it was told). The SQL of the alert state machine lives here; the
detections themselves are probes (``taskexec/probes/alert_*.sql``).

An alert is identified by (kind, task_slug, alert_key): finding it again while it is open
changes nothing (it fires once); no longer finding it resolves it; finding it after it was
resolved opens it again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .store import Store

#: The columns a detection probe returns, in order.
FINDING_COLUMNS = (
    "kind",
    "task_slug",
    "alert_key",
    "since",
    "title",
    "detail",
    "trace_id",
    "span_id",
    "stack_hash",
)


@dataclass(frozen=True)
class Transitions:
    """What one check changed: alerts opened (new or again) and alerts resolved."""

    opened: list[dict[str, Any]]
    resolved: list[dict[str, Any]]


# -- schedules ---------------------------------------------------------------------------------


def put_schedule(store: Store, values: Mapping[str, Any], now: str) -> None:
    """Add or replace a task's schedule (its expected slot is recomputed by the next check)."""
    row = dict(values)
    row["thresholds"] = json.dumps(dict(row.get("thresholds") or {})) or None
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO schedules (task_slug, cron, every_seconds, timezone, grace_seconds, "
            "tolerance_seconds, max_duration_seconds, thresholds, source, created_at, updated_at) "
            "VALUES (:task_slug, :cron, :every_seconds, :timezone, :grace_seconds, "
            ":tolerance_seconds, :max_duration_seconds, :thresholds, :source, :now, :now) "
            "ON CONFLICT (task_slug) DO UPDATE SET cron = excluded.cron, "
            "every_seconds = excluded.every_seconds, timezone = excluded.timezone, "
            "grace_seconds = excluded.grace_seconds, "
            "tolerance_seconds = excluded.tolerance_seconds, "
            "max_duration_seconds = excluded.max_duration_seconds, "
            "thresholds = excluded.thresholds, source = excluded.source, "
            "expected_at = NULL, updated_at = excluded.updated_at",
            {**row, "now": now},
        )


def remove_schedule(store: Store, task_slug: str) -> bool:
    """Forget a task's schedule (and close its missed-run alert at the next check)."""
    with store.transaction() as conn:
        return bool(
            conn.execute("DELETE FROM schedules WHERE task_slug = ?", (task_slug,)).rowcount
        )


def schedules(store: Store) -> list[dict[str, Any]]:
    """Every schedule, with its last start and expected slot, by task."""
    rows = store._query("SELECT * FROM schedules ORDER BY task_slug")
    out = []
    for row in rows:
        item = dict(row)
        item["thresholds"] = json.loads(item["thresholds"]) if item["thresholds"] else {}
        out.append(item)
    return out


def last_starts(store: Store, task_slugs: Sequence[str]) -> dict[str, str]:
    """The latest ``started_at`` of each task (on the task index: one seek per task)."""
    out: dict[str, str] = {}
    for slug in task_slugs:
        row = store._query(
            "SELECT max(started_at) FROM task_executions WHERE task_slug = ?", (slug,)
        )
        if row and row[0][0] is not None:
            out[slug] = row[0][0]
    return out


def set_expected(
    store: Store, expected: Iterable[tuple[str, str | None, str | None, float]]
) -> None:
    """Store each schedule's (task, expected slot, last start, early tolerance)."""
    with store.transaction() as conn:
        conn.executemany(
            "UPDATE schedules SET expected_at = ?, last_started_at = ?, tolerance_seconds = ? "
            "WHERE task_slug = ?",
            [(slot, last, tolerance, task) for task, slot, last, tolerance in expected],
        )


# -- alerts ------------------------------------------------------------------------------------


def apply_findings(store: Store, findings: Sequence[Mapping[str, Any]], now: str) -> Transitions:
    """Fold one check's findings into the alerts table in one transaction: open what is new
    (or back), keep what is still there, resolve what is gone."""
    seen = {(f["kind"], f["task_slug"], str(f["alert_key"])): f for f in findings}
    opened: list[dict[str, Any]] = []
    resolved: list[dict[str, Any]] = []
    with store.transaction() as conn:
        current = {
            (r["kind"], r["task_slug"], r["alert_key"]): dict(r)
            for r in conn.execute("SELECT * FROM alerts")
        }
        for key, finding in seen.items():
            values = {name: finding.get(name) for name in FINDING_COLUMNS}
            values["alert_key"] = key[2]
            known = current.get(key)
            if known is not None and known["state"] == "open":
                conn.execute(
                    "UPDATE alerts SET last_seen_at = ?, detail = ? WHERE id = ?",
                    (now, values["detail"], known["id"]),
                )
                continue
            if known is None:
                cursor = conn.execute(
                    "INSERT INTO alerts (kind, task_slug, alert_key, state, since, opened_at, "
                    "last_seen_at, title, detail, trace_id, span_id, stack_hash) VALUES "
                    "(:kind, :task_slug, :alert_key, 'open', :since, :now, :now, :title, "
                    ":detail, :trace_id, :span_id, :stack_hash)",
                    {**values, "now": now},
                )
                alert_id = cursor.lastrowid
            else:
                alert_id = known["id"]
                conn.execute(
                    "UPDATE alerts SET state = 'open', since = :since, opened_at = :now, "
                    "last_seen_at = :now, resolved_at = NULL, title = :title, detail = :detail, "
                    "trace_id = :trace_id, span_id = :span_id, stack_hash = :stack_hash, "
                    "times_opened = times_opened + 1, notice = NULL, notice_at = NULL, "
                    "resolve_notice = NULL WHERE id = :id",
                    {**values, "now": now, "id": alert_id},
                )
            opened.append(
                dict(conn.execute("SELECT * FROM alerts WHERE id = ?", (alert_id,)).fetchone())
            )
        for key, alert in current.items():
            if alert["state"] == "open" and key not in seen:
                conn.execute(
                    "UPDATE alerts SET state = 'resolved', resolved_at = ? WHERE id = ?",
                    (now, alert["id"]),
                )
                resolved.append({**alert, "state": "resolved", "resolved_at": now})
    return Transitions(opened, resolved)


def pending_notices(store: Store) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Open alerts not yet told (or whose telling failed), and resolved alerts whose opening
    was told but whose resolution was not."""
    to_open = store._query(
        "SELECT * FROM alerts WHERE state = 'open' AND (notice IS NULL OR notice = 'failed') "
        "ORDER BY opened_at, id"
    )
    to_resolve = store._query(
        "SELECT * FROM alerts WHERE state = 'resolved' AND notice = 'sent' "
        "AND (resolve_notice IS NULL OR resolve_notice = 'failed') ORDER BY resolved_at, id"
    )
    return [dict(r) for r in to_open], [dict(r) for r in to_resolve]


def notices_since(store: Store, task_slug: str, since: str) -> int:
    """How many notifications were sent about a task since a time (for the rate limit)."""
    row = store._query(
        "SELECT count(*) FROM alerts WHERE task_slug = ? AND notice = 'sent' AND notice_at >= ?",
        (task_slug, since),
    )
    return int(row[0][0])


def mark_notice(store: Store, alert_id: int, field: str, outcome: str, now: str) -> None:
    """Record how telling about an alert went: ``sent``, ``failed`` or ``suppressed``."""
    if field not in ("notice", "resolve_notice"):
        raise ValueError(field)
    with store.transaction() as conn:
        if field == "notice":
            conn.execute(
                "UPDATE alerts SET notice = ?, notice_at = ? WHERE id = ?",
                (outcome, now, alert_id),
            )
        else:
            conn.execute("UPDATE alerts SET resolve_notice = ? WHERE id = ?", (outcome, alert_id))


def list_alerts(
    store: Store, *, state: str | None = None, limit: int = 50, task_slug: str | None = None
) -> list[dict[str, Any]]:
    """Alerts, newest opened first; ``state`` 'open' or 'resolved' to narrow."""
    clauses, params = [], []
    if state is not None:
        clauses.append("state = ?")
        params.append(state)
    if task_slug is not None:
        clauses.append("task_slug = ?")
        params.append(task_slug)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = store._query(
        f"SELECT * FROM alerts {where} ORDER BY opened_at DESC, id DESC LIMIT ?",
        (*params, int(limit)),
    )
    return [dict(r) for r in rows]
