"""One check: refresh each schedule's expected slot, run every detection probe, fold the
findings into the alert table (each alert fires once and resolves when gone), then tell.

``taskexec check`` runs it once (for cron: exit 0 all clear, 1 alerts fired, 2 errors);
``taskexec watch`` runs it in a loop. Time is a parameter (``now``), so tests never sleep.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ..db import Store, awareness
from ..model import format_ts, parse_ts, utcnow
from .notify import Notifier
from .schedules import Schedule

#: The detections, each one probe (so also a canned query, a CLI probe, a notebook source).
DETECTIONS = (
    "alert_missed_runs",
    "alert_late_starts",
    "alert_stuck_runs",
    "alert_long_runs",
    "alert_new_errors",
    "alert_regressions",
    "alert_failure_spikes",
)
#: Notifications about one task per hour at most; more are counted as suppressed.
RATE_LIMIT_PER_HOUR = 5


@dataclass
class CheckResult:
    """What one check found and did."""

    opened: list[dict[str, Any]] = field(default_factory=list)
    resolved: list[dict[str, Any]] = field(default_factory=list)
    open_now: int = 0
    sent: int = 0
    failed: int = 0
    suppressed: int = 0

    @property
    def fired(self) -> bool:
        """Whether any alert opened in this check."""
        return bool(self.opened)


def schedule_from_row(row: Mapping[str, Any]) -> Schedule:
    """A stored schedule back as a ``Schedule``."""
    return Schedule(
        task_slug=row["task_slug"],
        cron=row["cron"],
        every_seconds=row["every_seconds"],
        timezone=row["timezone"],
        grace_seconds=row["grace_seconds"],
        max_duration_seconds=row["max_duration_seconds"],
        source=row["source"],
        thresholds=row.get("thresholds") or {},
    )


def refresh_schedules(store: Store, now: datetime) -> None:
    """Each schedule's expected slot: the first one after the task's last start (or after the
    schedule was made, for a task that never ran). Only slots up to ``now`` plus one period are
    considered, so a far-future start never hides a missed run."""
    rows = awareness.schedules(store)
    if not rows:
        return
    starts = awareness.last_starts(store, [r["task_slug"] for r in rows])
    updates = []
    for row in rows:
        schedule = schedule_from_row(row)
        last = starts.get(row["task_slug"])
        anchor = parse_ts(last) if last else parse_ts(row["created_at"])
        if anchor > now:
            anchor = now
        slot = schedule.next_after(anchor)
        tolerance = schedule.tolerance_seconds(anchor)
        if last and (slot - anchor).total_seconds() <= tolerance:
            # the last start was an early start of this very slot: the next one is expected
            slot = schedule.next_after(slot)
        updates.append((row["task_slug"], format_ts(slot), last, tolerance))
    awareness.set_expected(store, updates)


def findings(
    store: Store,
    now: datetime,
    params: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """What every detection probe finds at ``now`` (with per-probe parameter overrides)."""
    found: list[dict[str, Any]] = []
    for name in DETECTIONS:
        values: dict[str, Any] = {"now": format_ts(now)}
        values.update((params or {}).get(name, {}))
        found.extend(store.run_probe(name, values).dicts())
    return found


def check(
    store: Store,
    *,
    now: datetime | None = None,
    notifier: Notifier | None = None,
    notify_resolved: bool = True,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    rate_limit: int = RATE_LIMIT_PER_HOUR,
) -> CheckResult:
    """Run one check on an open (writable) store; see the module docstring."""
    now = now or utcnow()
    stamp = format_ts(now)
    refresh_schedules(store, now)
    changes = awareness.apply_findings(store, findings(store, now, params), stamp)
    result = CheckResult(opened=changes.opened, resolved=changes.resolved)
    result.open_now = len(awareness.list_alerts(store, state="open", limit=100_000))
    if notifier is not None and notifier.active:
        _tell(store, notifier, now, result, notify_resolved, rate_limit)
    return result


def _tell(
    store: Store,
    notifier: Notifier,
    now: datetime,
    result: CheckResult,
    notify_resolved: bool,
    rate_limit: int,
) -> None:
    database = Path(store.path).stem
    stamp = format_ts(now)
    hour_ago = format_ts(now - timedelta(hours=1))
    to_open, to_resolve = awareness.pending_notices(store)
    for alert in to_open:
        if awareness.notices_since(store, alert["task_slug"], hour_ago) >= rate_limit:
            awareness.mark_notice(store, alert["id"], "notice", "suppressed", stamp)
            result.suppressed += 1
            continue
        ok = notifier.send(alert, database)
        awareness.mark_notice(store, alert["id"], "notice", "sent" if ok else "failed", stamp)
        if ok:
            result.sent += 1
        else:
            result.failed += 1
    if not notify_resolved:
        return
    for alert in to_resolve:
        ok = notifier.send(alert, database, resolved=True)
        awareness.mark_notice(
            store, alert["id"], "resolve_notice", "sent" if ok else "failed", stamp
        )
        if ok:
            result.sent += 1
        else:
            result.failed += 1


def notify_urls(given: Sequence[str]) -> list[str]:
    """The notification URLs: those given, else ``$TASKEXEC_NOTIFY`` (space separated)."""
    if given:
        return list(given)
    return os.environ.get("TASKEXEC_NOTIFY", "").split()
