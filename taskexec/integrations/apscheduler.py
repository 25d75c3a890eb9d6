"""APScheduler 3.x: every run of every job becomes one row, from the scheduler's events.

    from apscheduler.schedulers.background import BackgroundScheduler
    from taskexec import Recorder
    from taskexec.integrations.apscheduler import connect

    scheduler = BackgroundScheduler()
    connect(scheduler, Recorder(os.environ.get("TASKEXEC_DB", "tasks.db")))
    scheduler.add_job(report, "cron", hour=6, id="daily-report")
    scheduler.start()

One listener, added with ``scheduler.add_listener``, does everything. APScheduler announces a
run in the scheduler's thread when it hands the job to its executor (``EVENT_JOB_SUBMITTED``,
with the run's scheduled times) and its end in the executor's thread when the job returned or
raised (``EVENT_JOB_EXECUTED`` / ``EVENT_JOB_ERROR``); the listener keeps the running attempt in
a dict under (job store, job id, scheduled run time), which both events carry. A job that ends
before the scheduler thread announced its submission (a job of a few milliseconds, any job under
the ``debug`` executor) is matched the other way round and gets a duration of about 0.

- ``task_slug``: ``job.name`` (by default the function's qualified name), else the job id;
  ``task_id``: the job id. Each run is a trace of its own, ``attempt`` 1 (APScheduler does not
  retry).
- ``scheduled_at``: the run's ``scheduled_run_time``; ``started_at``: when the job was submitted
  to its executor; ``duration_ms``: from submission to the end event.
- A **misfire** (``EVENT_JOB_MISSED``: the executor found the run later than
  ``misfire_grace_time``) is a row with status ``cancelled``, ``error_type``
  ``apscheduler.misfire``, ``scheduled_at`` the missed time, ``started_at`` when it was handed
  to the executor (which then found it late), a duration of about 0 and ``attributes.late_s``.
- A run **skipped** because ``max_instances`` runs of the job were still running
  (``EVENT_JOB_MAX_INSTANCES``) is the same with ``error_type`` ``apscheduler.max_instances``.
- **Schedules**: each job with a ``CronTrigger`` or an ``IntervalTrigger`` gets a row in the
  ``schedules`` table (source ``apscheduler``) at ``connect`` and whenever it is added or
  modified, so ``taskexec check`` can tell a missed run. A cron trigger with seconds other than
  0, or a ``year`` / ``week`` field, cannot be written as a 5-field cron expression and is
  left out, as are date triggers. The grace is the job's ``misfire_grace_time``, at least
  ``SCHEDULE_GRACE_MIN``.

See docs/integrations.md.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
import traceback
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..db.rows import preview
from ..errors import BadInput, DatabaseError
from ..recorder import Recorder, Run

log = logging.getLogger("taskexec")

#: ``error_type`` of a run APScheduler missed (later than the job's ``misfire_grace_time``).
MISFIRE = "apscheduler.misfire"
#: ``error_type`` of a run skipped because ``max_instances`` runs were still going.
MAX_INSTANCES = "apscheduler.max_instances"
#: Runs in progress kept at most (a run whose end never comes, e.g. a broken process pool,
#: is dropped oldest first; its row stays ``running`` until ``taskexec sweep``).
RUNS_LIMIT = 100_000
#: Seconds an end that came before its submission waits for it. The scheduler announces the
#: submissions of one pass over its due jobs after the pass, so thousands of short jobs due at
#: once can all end first; an end whose submission never comes (the run was submitted before
#: ``connect``) is dropped after this long.
EARLY_MAX_AGE = 300.0
#: Jobs whose name and settings are remembered (a one-off job is gone from its store by the
#: time its submission is announced).
JOBS_LIMIT = 10_000
#: The least grace a saved schedule gets: APScheduler's default ``misfire_grace_time`` is 1 s,
#: far too short for telling a missed run from one recorded a little late.
SCHEDULE_GRACE_MIN = 300.0

_Key = tuple[Any, str, datetime]


@dataclass(frozen=True)
class _Job:
    """What a row needs from a job, read once (a persistent job store unpickles on every read)."""

    slug: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    executor: str | None
    trigger: str | None
    max_instances: int | None
    misfire_grace_time: float | None

    @classmethod
    def of(cls, job: Any, job_id: str) -> _Job:
        if job is None:
            return cls(str(job_id), (), {}, None, None, None, None)
        name = getattr(job, "name", None)
        try:
            trigger: str | None = str(job.trigger)
        except Exception:  # noqa: BLE001 - a trigger's __str__ must not lose the row
            trigger = None
        if trigger is not None and trigger.startswith("date["):  # scheduled_at says it all
            trigger = None
        return cls(
            slug=str(name or job_id),
            args=tuple(getattr(job, "args", ()) or ()),
            kwargs=dict(getattr(job, "kwargs", None) or {}),
            executor=getattr(job, "executor", None),
            trigger=trigger,
            max_instances=getattr(job, "max_instances", None),
            misfire_grace_time=getattr(job, "misfire_grace_time", None),
        )


class ApschedulerIntegration:
    """What one ``connect`` call set up: a listener on one scheduler and its bookkeeping.

    Thread-safe: submissions are announced in the scheduler's thread, ends in the executor's
    threads, both under one small lock only to match them."""

    def __init__(self, scheduler: Any, recorder: Recorder, capture_args: bool) -> None:
        from apscheduler import events

        self.scheduler = scheduler
        self.recorder = recorder
        self.capture_args = capture_args
        self._ev = events
        self._lock = threading.Lock()
        self._runs: OrderedDict[_Key, tuple[Run, _Job]] = OrderedDict()
        self._early: OrderedDict[_Key, tuple[Any, float]] = OrderedDict()
        self._jobs: OrderedDict[tuple[Any, str], _Job] = OrderedDict()
        self._warned: set[str] = set()
        self._saved: dict[str, Any] = {}  # task slug -> the Schedule last saved for it
        self.mask = (
            events.EVENT_JOB_SUBMITTED
            | events.EVENT_JOB_EXECUTED
            | events.EVENT_JOB_ERROR
            | events.EVENT_JOB_MISSED
            | events.EVENT_JOB_MAX_INSTANCES
            | events.EVENT_JOB_ADDED
            | events.EVENT_JOB_MODIFIED
        )
        self._handlers = {
            events.EVENT_JOB_SUBMITTED: self._submitted,
            events.EVENT_JOB_EXECUTED: self._ended,
            events.EVENT_JOB_ERROR: self._ended,
            events.EVENT_JOB_MISSED: self._ended,
            events.EVENT_JOB_MAX_INSTANCES: self._skipped,
            events.EVENT_JOB_ADDED: self._remember,
            events.EVENT_JOB_MODIFIED: self._remember,
        }
        self.listener = self._on_event

    def disconnect(self) -> None:
        """Stop recording this scheduler's runs (runs in progress stay ``running``)."""
        self.scheduler.remove_listener(self.listener)
        if _INTEGRATIONS.get(self.scheduler) is self:
            del _INTEGRATIONS[self.scheduler]

    @property
    def in_progress(self) -> int:
        """Runs submitted whose end has not been announced yet."""
        return len(self._runs)

    # -- the listener ------------------------------------------------------------------------

    def _on_event(self, event: Any) -> None:
        """APScheduler's listener: never raises into the scheduler (it would log a traceback
        per event)."""
        handler = self._handlers.get(event.code)
        if handler is None:
            return
        try:
            handler(event)
        except Exception as exc:  # noqa: BLE001 - recording never breaks a scheduler
            name = handler.__name__
            if name not in self._warned:
                self._warned.add(name)
                log.warning(
                    "taskexec: the APScheduler %s handler failed (%r); recording goes on, "
                    "this is said once",
                    name.strip("_"),
                    exc,
                )

    def _job(self, job_id: str, jobstore: Any) -> _Job:
        key = (jobstore, job_id)
        info = self._jobs.get(key)
        if info is None:
            info = self._remember_job(job_id, jobstore)
        return info

    def _remember_job(self, job_id: str, jobstore: Any, schedule: bool = False) -> _Job:
        try:
            job = self.scheduler.get_job(job_id, jobstore)
        except Exception:  # noqa: BLE001 - a job store that cannot be read: the id will do
            job = None
        info = _Job.of(job, job_id)
        if job is not None:
            with self._lock:
                self._jobs[(jobstore, job_id)] = info
                self._jobs.move_to_end((jobstore, job_id))
                while len(self._jobs) > JOBS_LIMIT:
                    self._jobs.popitem(last=False)
            if schedule:
                self.save_schedule(job, info)
        return info

    def _remember(self, event: Any) -> None:
        """A job added or modified: read its name and settings now (a one-off job is removed
        from its store before its submission is announced)."""
        self._remember_job(event.job_id, event.jobstore, schedule=True)

    def save_schedule(self, job: Any, info: _Job) -> None:
        """Save the job's schedule (cron or interval trigger) in the ``schedules`` table; a
        trigger that has none, or a database that cannot be written, is skipped."""
        from ..alerts.schedules import Schedule, save_schedule

        spec = schedule_of(job.trigger)
        if spec is None:
            return
        grace = getattr(job, "misfire_grace_time", None)
        try:
            found = Schedule(
                info.slug,
                grace_seconds=max(float(grace or 0), SCHEDULE_GRACE_MIN),
                source="apscheduler",
                **spec,
            )
        except BadInput as exc:  # e.g. a time zone name zoneinfo does not know
            log.debug("taskexec: no schedule saved for the job %r (%s)", info.slug, exc)
            return
        if self._saved.get(info.slug) == found:
            return
        try:
            save_schedule(self.recorder.store, found)
        except DatabaseError as exc:
            if "schedule" not in self._warned:
                self._warned.add("schedule")
                log.warning(
                    "taskexec: could not save the APScheduler job schedules (%s); runs are "
                    "still recorded, this is said once",
                    exc,
                )
            return
        self._saved[info.slug] = found

    def _start(self, info: _Job, event: Any, run_time: datetime) -> Run:
        attributes: dict[str, Any] = {}  # the job id is the row's task_id
        if event.jobstore not in (None, "default"):
            attributes["jobstore"] = event.jobstore
        if info.executor not in (None, "default"):
            attributes["executor"] = info.executor
        if info.trigger:
            attributes["trigger"] = info.trigger
        if self.capture_args:
            attributes["args"] = preview(list(info.args))
            if info.kwargs:
                attributes["kwargs"] = preview(dict(info.kwargs))
        # In a copy of the context: the scheduler's thread must not keep this run as its
        # current one (the job runs in another thread; its log lines cannot be told apart).
        run: Run = contextvars.copy_context().run(
            self.recorder.start,
            info.slug,
            task_id=str(event.job_id),
            scheduled_at=_aware(run_time),
            attributes=attributes,
            capture_logs=0,
        )
        return run

    def _submitted(self, event: Any) -> None:
        info = self._job(event.job_id, event.jobstore)
        for run_time in event.scheduled_run_times or ():
            key = (event.jobstore, event.job_id, run_time)
            run = self._start(info, event, run_time)
            with self._lock:
                early = self._early.pop(key, None)
                if early is None:
                    self._runs[key] = (run, info)
                    while len(self._runs) > RUNS_LIMIT:
                        self._runs.popitem(last=False)
            if early is not None:
                self._finish(run, info, early[0])

    def _ended(self, event: Any) -> None:
        key = (event.jobstore, event.job_id, event.scheduled_run_time)
        with self._lock:
            entry = self._runs.pop(key, None)
            if entry is None:  # ended before the scheduler thread announced the submission
                now = time.monotonic()
                self._early[key] = (event, now)
                early = self._early
                while early and (
                    len(early) > RUNS_LIMIT or next(iter(early.values()))[1] < now - EARLY_MAX_AGE
                ):
                    early.popitem(last=False)
                return
        self._finish(entry[0], entry[1], event)

    def _finish(self, run: Run, info: _Job, event: Any) -> None:
        ev = self._ev
        if event.code == ev.EVENT_JOB_EXECUTED:
            if self.capture_args:
                run.record_result(event.retval)
            run.finish(status="success")
        elif event.code == ev.EVENT_JOB_ERROR:
            exc = event.exception
            if not isinstance(exc, BaseException):
                run.finish(status="failed", error_message=str(exc))
                return
            stack = None
            if exc.__traceback__ is None and event.traceback:  # e.g. from a process pool
                stack = (
                    "Traceback (most recent call last):\n"
                    + str(event.traceback)
                    + "".join(traceback.format_exception_only(exc))
                )
            run.finish(exc, stack_trace=stack)
        else:  # EVENT_JOB_MISSED
            late = (datetime.now(UTC) - _aware(event.scheduled_run_time)).total_seconds()
            grace = info.misfire_grace_time
            run.set(late_s=round(late, 3))
            run.finish(
                status="cancelled",
                error_type=MISFIRE,
                error_message=(
                    f"missed: picked up {late:.3f} s after its scheduled time, past its "
                    f"misfire_grace_time ({_seconds(grace)})"
                ),
            )

    def _skipped(self, event: Any) -> None:
        info = self._job(event.job_id, event.jobstore)
        limit = info.max_instances
        for run_time in event.scheduled_run_times or ():
            run = self._start(info, event, run_time)
            run.finish(
                status="cancelled",
                error_type=MAX_INSTANCES,
                error_message=(
                    "skipped: the job's previous run was still going "
                    f"(max_instances={limit if limit is not None else '?'})"
                ),
            )


def schedule_of(trigger: Any) -> dict[str, Any] | None:
    """``{"cron": ..., "timezone": ...}`` or ``{"every_seconds": ...}`` for a cron or interval
    trigger, None for any other, or a cron trigger that 5 cron fields cannot say."""
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    if isinstance(trigger, IntervalTrigger):
        return {"every_seconds": trigger.interval.total_seconds()}
    if not isinstance(trigger, CronTrigger):
        return None
    fields = {field.name: field for field in trigger.fields}
    if str(fields["second"]) != "0" or any(str(fields[name]) != "*" for name in ("year", "week")):
        return None
    weekdays = _cron_weekdays(fields["day_of_week"])
    if weekdays is None:
        return None
    parts = [str(fields[name]) for name in ("minute", "hour", "day", "month")]
    return {"cron": " ".join([*parts, weekdays]), "timezone": str(trigger.timezone)}


def _cron_weekdays(field: Any) -> str | None:
    """APScheduler counts weekdays from Monday = 0, cron from Sunday = 0: list the days."""
    from apscheduler.triggers.cron.expressions import AllExpression, RangeExpression

    days: set[int] = set()
    for expr in field.expressions:
        if isinstance(expr, RangeExpression):  # also names: WeekdayRangeExpression
            last = 6 if expr.last is None else expr.last
            days.update(range(expr.first, last + 1, expr.step or 1))
        elif type(expr) is AllExpression:
            days.update(range(0, 7, expr.step or 1))
        else:  # pragma: no cover - no other expression is allowed in day_of_week
            return None
    if len(days) == 7:
        return "*"
    return ",".join(str(day) for day in sorted((day + 1) % 7 for day in days))


def _aware(value: datetime) -> datetime:
    """APScheduler's run times are aware; a naive one (a custom trigger) is taken as UTC."""
    return value if value.utcoffset() is not None else value.replace(tzinfo=UTC)


def _seconds(value: float | None) -> str:
    return "unlimited" if value is None else f"{value:g} s"


_INTEGRATIONS: weakref.WeakKeyDictionary[Any, ApschedulerIntegration] = weakref.WeakKeyDictionary()


def connect(
    scheduler: Any, recorder: Recorder, *, capture_args: bool = False
) -> ApschedulerIntegration:
    """Record every run of every job of an APScheduler 3.x ``scheduler`` with ``recorder``.

    Call it before or after ``scheduler.start()``; jobs added at any time are covered. The
    schedules of cron and interval jobs are saved in the ``schedules`` table (source
    ``apscheduler``), now and when a job is added or modified.
    Idempotent: a second call for the same scheduler only changes the recorder and the option.
    ``capture_args`` keeps each run's ``job.args`` / ``job.kwargs`` and return value in
    ``attributes`` (cut to 2,000 characters and scrubbed). Log lines are not captured: the
    listener does not run in the job's thread. Returns the integration (``.disconnect()``
    stops recording).
    """
    integration = _INTEGRATIONS.get(scheduler)
    if integration is not None:
        integration.recorder = recorder
        integration.capture_args = capture_args
        return integration
    integration = ApschedulerIntegration(scheduler, recorder, capture_args)
    try:  # jobs already added (also before start): remember their names now
        jobs = scheduler.get_jobs()
    except Exception as exc:  # noqa: BLE001 - a job store that cannot be read now: later
        log.debug("taskexec: could not list the scheduler's jobs (%r)", exc)
        jobs = []
    for job in jobs:
        store = getattr(job, "_jobstore_alias", None)
        info = _Job.of(job, job.id)
        integration._jobs[(store, job.id)] = info
        if store is None:  # added before start(): it goes to "default" unless told
            integration._jobs[("default", job.id)] = info
        try:
            integration.save_schedule(job, info)
        except Exception as exc:  # noqa: BLE001 - a schedule never breaks the scheduler
            log.debug("taskexec: no schedule saved for the job %r (%r)", info.slug, exc)
    scheduler.add_listener(integration.listener, integration.mask)
    _INTEGRATIONS[scheduler] = integration
    return integration


def disconnect(scheduler: Any) -> None:
    """Undo ``connect(scheduler, ...)`` (nothing happens when it was not connected)."""
    integration = _INTEGRATIONS.get(scheduler)
    if integration is not None:
        integration.disconnect()


__all__ = [
    "MAX_INSTANCES",
    "MISFIRE",
    "ApschedulerIntegration",
    "connect",
    "disconnect",
]
