"""Schedules: when a task is expected to run, from a cron expression or an interval.

A schedule knows its next slot after any time (croniter, in the schedule's time zone), so
``check`` can keep each scheduled task's ``expected_at`` (the first slot after its last start)
current, and the missed-runs probe can compare it with the clock in SQL.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..db import Store, awareness
from ..errors import BadInput
from ..model import format_ts, utcnow

SOURCES = ("cli", "run", "celery-beat", "apscheduler", "api")
#: Thresholds a schedule may override for its task (the detection probes' parameters).
THRESHOLDS = ("heartbeat_seconds", "stuck_seconds", "factor", "quiet_days", "streak")


def _croniter() -> Any:
    try:
        from croniter import croniter
    except ImportError:  # pragma: no cover - the alerts extra
        raise BadInput(
            "schedule", "cron expressions need the alerts extra: pip install 'taskexec[alerts]'"
        ) from None
    return croniter


@dataclass(frozen=True)
class Schedule:
    """When ``task_slug`` should run: ``cron`` (5 fields, or 6 with seconds) or ``every_seconds``;
    ``grace_seconds`` after a slot before it counts as missed; an expected maximum duration."""

    task_slug: str
    cron: str | None = None
    every_seconds: float | None = None
    timezone: str = "UTC"
    grace_seconds: float = 300.0
    max_duration_seconds: float | None = None
    source: str = "cli"
    thresholds: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.task_slug, str) or not self.task_slug.strip():
            raise BadInput("schedule", "needs a task name")
        if (self.cron is None) == (self.every_seconds is None):
            raise BadInput(
                self.task_slug,
                "give a cron expression or an interval"
                + ("" if self.cron is None else ", not both"),
            )
        if self.cron is not None:
            fields = self.cron.split()
            if len(fields) not in (5, 6) or not _croniter().is_valid(self.cron):
                raise BadInput(
                    self.task_slug,
                    f"not a cron expression: {self.cron!r} (five fields: minute hour "
                    "day-of-month month day-of-week, e.g. '*/15 * * * *')",
                )
        if self.every_seconds is not None and not (
            math.isfinite(self.every_seconds) and 1 <= self.every_seconds <= 366 * 86400
        ):
            raise BadInput(self.task_slug, "the interval must be from 1 s to 366 days")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise BadInput(
                self.task_slug, f"unknown time zone {self.timezone!r} (e.g. UTC, Europe/Paris)"
            ) from None
        for name, value in (
            ("grace", self.grace_seconds),
            ("max duration", self.max_duration_seconds),
        ):
            if value is not None and not (math.isfinite(value) and 0 <= value <= 366 * 86400):
                raise BadInput(self.task_slug, f"the {name} must be from 0 s to 366 days")
        unknown = set(self.thresholds) - set(THRESHOLDS)
        if unknown:
            raise BadInput(
                self.task_slug,
                f"unknown threshold(s) {sorted(unknown)}; known: {', '.join(THRESHOLDS)}",
            )
        if self.source not in SOURCES:
            raise BadInput(self.task_slug, f"source must be one of {', '.join(SOURCES)}")

    def next_after(self, moment: datetime) -> datetime:
        """The first slot strictly after ``moment`` (aware), in UTC."""
        if self.every_seconds is not None:
            return (moment + timedelta(seconds=self.every_seconds)).astimezone(UTC)
        local = moment.astimezone(ZoneInfo(self.timezone))
        found: datetime = _croniter()(self.cron, local).get_next(datetime)
        return found.astimezone(UTC)

    def period_seconds(self, around: datetime) -> float:
        """The time between two slots near ``around`` (for the early-start tolerance)."""
        if self.every_seconds is not None:
            return self.every_seconds
        first = self.next_after(around)
        return (self.next_after(first) - first).total_seconds()

    def tolerance_seconds(self, around: datetime) -> float:
        """How early a start still counts for a slot: a minute, or half the period if shorter
        (cron daemons and schedulers start a little before or after the minute)."""
        return min(60.0, self.period_seconds(around) / 2)

    def describe(self) -> str:
        """``*/15 * * * * (Europe/Paris)`` or ``every 600 s``."""
        if self.cron is not None:
            return f"{self.cron} ({self.timezone})"
        return f"every {self.every_seconds:g} s"


def save_schedule(store: Store, found: Schedule) -> None:
    """Store (or replace) a schedule: from `taskexec schedule add`, `taskexec run
    --schedule`, and the integrations that know their scheduler's schedule."""
    now = utcnow()
    awareness.put_schedule(
        store,
        {
            "task_slug": found.task_slug,
            "cron": found.cron,
            "every_seconds": found.every_seconds,
            "timezone": found.timezone,
            "grace_seconds": found.grace_seconds,
            "tolerance_seconds": found.tolerance_seconds(now),
            "max_duration_seconds": found.max_duration_seconds,
            "thresholds": dict(found.thresholds),
            "source": found.source,
        },
        format_ts(now),
    )
