"""Celery: every task attempt becomes one row, from Celery's signals.

    import os

    from celery import Celery
    from taskexec import Recorder
    from taskexec.integrations.celery import connect

    app = Celery("proj", broker=...)
    connect(Recorder(os.environ.get("TASKEXEC_DB", "tasks.db")), app)  # at import of the app module

Call ``connect`` where the worker's main process runs it too (the app module, or a
``worker_init`` handler): Celery announces a hard time limit, a terminating revoke and a pool
process that died in the worker's *main* process, not in the child that ran the task, and that
process closes those rows with ``Recorder.finish_span``. The prefork pool's children inherit the
Recorder; taskexec gives each child its own writer after the fork and flushes it when billiard
ends the child.

Ids (the same in every process, so processes that never talk agree on them):

- ``trace_id``: the chain's root task id (``request.root_id``, else the task's own id), a UUID
  turned into its 32 hex digits;
- ``span_id``: ``span_id_for(celery_task_id, attempt)`` = ``derive_span_id(id, attempt)`` with
  ``attempt = request.retries + 1``; a redelivered message (``delivery_info["redelivered"]``)
  gets a fresh span id from the main process, handed to the child in the request;
- ``retry_of``: ``span_id_for(id, attempt - 1)``; ``parent_span_id``: the span of the attempt
  that published the message (a ``taskexec_parent`` header added by ``before_task_publish`` in
  the publishing worker), kept by every retry.

Statuses: success; failed (an exception, a ``Retry``, a ``Reject``); timeout (soft or hard
time limit); cancelled (revoked, expired, or the child told to exit); abandoned (the pool
process running it died: ``WorkerLostError``). See docs/integrations.md.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import logging
import re
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..db.rows import preview
from ..model import derive_span_id, format_ts, new_span_id, utcnow, uuid_hex
from ..recorder import Recorder, Run, status_for
from ..stackhash import qualified_type

log = logging.getLogger("taskexec")

#: Message header: the span id of the attempt that published this message (a chain's next
#: step, a task sent from inside a task). Retries keep their first attempt's value.
PARENT_HEADER = "taskexec_parent"
#: Message header set when Celery beat publishes: the time beat sent it, which is the schedule's
#: due time to within beat's tick. (Beat's own ``celery_beat_task`` header is Celery >= 5.7.)
SCHEDULED_HEADER = "taskexec_scheduled_at"
#: Request key set by the main process for a redelivered message: the span id of this delivery.
SPAN_KEY = "taskexec_span"
#: Attribute keys whose values are ids (allow-list them in the scrubber to keep the values).
ID_ATTRIBUTES = ("celery_task_id", "celery_parent_id")

_SIGNALS = (
    "beat_init",
    "before_task_publish",
    "task_received",
    "task_prerun",
    "task_postrun",
    "task_failure",
    "task_retry",
    "task_revoked",
    "task_rejected",
    "task_unknown",
)


def span_id_for(celery_task_id: str, attempt: int, nesting: int = 0) -> str:
    """The span id of attempt ``attempt`` (``request.retries + 1``) of a Celery task id: what
    every process computes for it, ``derive_span_id(celery_task_id, attempt)``. ``nesting`` is
    ``request.replaced_task_nesting`` (a task replaced by ``self.replace`` keeps its id)."""
    if nesting:
        return derive_span_id(celery_task_id, attempt, "replaced", nesting)
    # derive_span_id(id, attempt) spelled out for the per-task path (a test checks they agree)
    digest = hashlib.sha256(f"{celery_task_id}\x1f{attempt}".encode()).hexdigest()
    return (
        digest[:16]
        if digest[:16] != "0000000000000000"
        else derive_span_id(celery_task_id, attempt)
    )


_HEX32 = re.compile("[0-9a-f]{32}").fullmatch


def trace_id_for(celery_task_id: str) -> str:
    """The trace id of a root task id: its 32 hex digits (a non-UUID id is hashed)."""
    if isinstance(celery_task_id, str) and len(celery_task_id) == 36:  # Celery's own ids
        digits = celery_task_id.replace("-", "")
        if _HEX32(digits):
            return digits
    return uuid_hex(celery_task_id) or hashlib.sha256(str(celery_task_id).encode()).hexdigest()[:32]


@dataclass
class _Active:
    """One attempt running in this process (a prerun without its postrun yet)."""

    celery_id: str
    retries: int
    run: Run
    parent: str | None  # the publishing attempt's span, passed on to this task's retries
    t0: float
    integration: CeleryIntegration
    token: contextvars.Token[_Active | None] | None = None


#: The attempt running in this thread / greenlet, for ``before_task_publish``.
_ACTIVE: contextvars.ContextVar[_Active | None] = contextvars.ContextVar(
    "taskexec_celery", default=None
)


def _getter(source: Any) -> Callable[[str], Any]:
    """Read a field from a Celery ``Context``, a request dict or message headers alike."""
    if isinstance(source, Mapping):
        return source.get
    return lambda name: getattr(source, name, None)


def _when(value: Any) -> datetime | None:
    """An eta / timestamp from a message (ISO text or datetime) as an aware datetime."""
    if value is None or value == "":
        return None
    try:
        when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except (TypeError, ValueError):
        return None
    return when.replace(tzinfo=UTC) if when.utcoffset() is None else when


def _error_of(exc: BaseException) -> tuple[str, str | None]:
    """(error_type, message) of an exception, unwrapping Celery's pickling wrapper."""
    if type(exc).__name__ == "UnpickleableExceptionWrapper":
        module, name = getattr(exc, "exc_module", None), getattr(exc, "exc_cls_name", None)
        if name:
            qualified = f"{module}.{name}" if module and module != "builtins" else str(name)
            return qualified, getattr(exc, "exc_msg", None)
    try:
        message = str(exc) or None
    except Exception:  # noqa: BLE001 - a broken __str__ must not lose the row
        message = f"<{type(exc).__name__} with an unprintable message>"
    return qualified_type(exc), message


def _status(exc: BaseException | None) -> str:
    """Celery's and billiard's exceptions mapped to a status (by name: no import needed)."""
    name = type(exc).__name__ if exc is not None else ""
    if name in ("SoftTimeLimitExceeded", "TimeLimitExceeded"):
        return "timeout"
    if name == "WorkerLostError":
        return "abandoned"
    if name in ("Terminated", "TaskRevokedError"):
        return "cancelled"
    return status_for(exc)


class CeleryIntegration:
    """What one ``connect`` call set up: the recorder and options for one app's tasks (or for
    every app's). The signal handlers are module-level and connected once, whatever the number
    of ``connect`` calls; each event goes to the integration of its sender's app, else to the
    one for every app, so an attempt is recorded once."""

    def __init__(
        self, recorder: Recorder, app: Any, capture_args: bool, capture_logs: int, key: str
    ) -> None:
        self.recorder = recorder
        self.app = app
        self.capture_args = capture_args
        self.capture_logs = capture_logs
        self.key = key

    def disconnect(self) -> None:
        """Stop recording this app's tasks (the signal handlers go with the last one)."""
        if _INTEGRATIONS.get(self.key) is self:
            del _INTEGRATIONS[self.key]
        if not _INTEGRATIONS:
            _disconnect_signals()

    # -- what a message says about its attempt -----------------------------------------------

    def _attempt(self, name: str, source: Any) -> dict[str, Any]:
        """``Recorder.start`` options for the attempt a request / message describes."""
        get = _getter(source)
        celery_id = get("id")
        retries = get("retries") or 0
        nesting = get("replaced_task_nesting") or 0
        parent_id = get("parent_id")  # a retry is sent by the task itself: its own id
        delivery = get("delivery_info") or {}
        attributes = {
            "celery_task_id": celery_id,
            "queue": delivery.get("routing_key"),
            "worker": get("hostname"),
            "celery_parent_id": parent_id if parent_id != celery_id else None,  # retries
            "shadow": get("shadow"),
        }
        if delivery.get("redelivered"):
            attributes["redelivered"] = True
        if get("celery_beat_task") or get(SCHEDULED_HEADER):
            attributes["beat"] = True
        options: dict[str, Any] = {
            "task_id": name,
            "attempt": retries + 1,
            "parent_span_id": get(PARENT_HEADER),
            "scheduled_at": _when(get("eta")) or _when(get(SCHEDULED_HEADER)),
            "attributes": {k: v for k, v in attributes.items() if v is not None},
        }
        if celery_id:
            options["trace_id"] = trace_id_for(get("root_id") or celery_id)
            options["span_id"] = get(SPAN_KEY) or span_id_for(celery_id, retries + 1, nesting)
            if retries:
                options["retry_of"] = span_id_for(celery_id, retries, nesting)
        return options

    def _span_of(self, source: Any) -> str | None:
        get = _getter(source)
        celery_id = get("id")
        if not celery_id:
            return None
        retries = get("retries") or 0
        span: str = get(SPAN_KEY) or span_id_for(
            celery_id, retries + 1, get("replaced_task_nesting") or 0
        )
        return span

    def _record_closed(
        self, name: str, source: Any, status: str, worker: Any = None, **error: Any
    ) -> None:
        """A row for an attempt that never ran here (revoked or expired before it started, a
        message the worker rejected): started and finished at once."""
        options = self._attempt(name, source)
        if worker and "worker" not in options["attributes"]:
            options["attributes"]["worker"] = str(worker)
        run = self.recorder.start(name, **options)
        run.finish(status=status, **error)

    # -- the worker's main process -----------------------------------------------------------

    def _on_task_received(self, sender: Any, request: Any = None, **_: Any) -> None:
        if request is None:
            return
        if (request.delivery_info or {}).get("redelivered"):
            request.request_dict.setdefault(SPAN_KEY, new_span_id())
        _REQUESTS[request.id] = request

    def _on_task_revoked(
        self,
        sender: Any,
        request: Any = None,
        terminated: bool = False,
        signum: Any = None,
        expired: bool = False,
        **_: Any,
    ) -> None:
        if request is None:
            return
        if terminated:  # it was running in a pool process, which has been told to exit
            span = self._span_of(request)
            if span is not None:
                self.recorder.finish_span(
                    span, "cancelled", error_message=f"revoked: terminated ({_signame(signum)})"
                )
            return
        why = "expired before it started" if expired else "revoked before it started"
        name = getattr(sender, "name", None) or getattr(request, "task", None) or "unknown"
        self._record_closed(name, request, "cancelled", error_message=why)

    def _on_task_rejected(
        self, sender: Any, message: Any = None, exc: Any = None, **_: Any
    ) -> None:
        if message is None:
            return
        headers = getattr(message, "headers", None) or {}
        name = headers.get("task") or "celery.unknown_message"
        error_type, text = _error_of(exc) if exc is not None else (None, None)
        self._record_closed(
            name,
            headers,
            "failed",
            getattr(sender, "hostname", None),
            error_type=error_type,
            error_message=text or "the worker could not read this message and rejected it",
        )

    def _on_task_unknown(
        self, sender: Any, message: Any = None, name: Any = None, **kwargs: Any
    ) -> None:
        headers = dict(getattr(message, "headers", None) or {})
        headers.setdefault("id", kwargs.get("id"))
        slug = str(name or headers.get("task") or "celery.unknown_task")
        self._record_closed(
            slug,
            headers,
            "failed",
            getattr(sender, "hostname", None),
            error_type="celery.exceptions.NotRegistered",
            error_message=f"no task named {slug!r} is registered in this worker",
        )

    # -- the process that runs the task (the pool's child; the worker itself for solo/threads)

    def _on_task_prerun(
        self, sender: Any, task_id: Any = None, task: Any = None, args: Any = None,
        kwargs: Any = None, **_: Any,
    ) -> None:  # fmt: skip
        task = task or sender
        if task is None:
            return
        request = task.request
        options = self._attempt(task.name, request)
        if self.capture_logs:
            options["capture_logs"] = self.capture_logs
        if self.capture_args:  # in the running row too: kept when another process closes it
            options["attributes"]["args"] = preview(list(args or ()))
            if kwargs:
                options["attributes"]["kwargs"] = preview(dict(kwargs))
        run = self.recorder.start(task.name, **options)
        retries = getattr(request, "retries", 0) or 0
        active = _Active(
            celery_id=task_id or request.id,
            retries=retries,
            run=run,
            parent=options.get("parent_span_id"),
            t0=time.perf_counter(),
            integration=self,
        )
        active.token = _ACTIVE.set(active)
        _RUNS[(active.celery_id, retries)] = active

    def _on_task_failure(
        self,
        sender: Any,
        task_id: Any = None,
        exception: Any = None,
        _active: _Active | None = None,
        **_: Any,
    ) -> None:
        if not isinstance(exception, BaseException):
            return
        status = _status(exception)
        error_type, message = _error_of(exception)
        active = _active
        if active is not None:
            active.run.finish(
                exception, status=status, error_type=error_type, error_message=message
            )
            return
        # The main process: a hard time limit, a pool process that died, a Reject.
        request = _REQUESTS.get(task_id) if task_id else None
        span = self._span_of(request.request_dict) if request is not None else None
        if span is None:
            return
        self.recorder.finish_span(span, status, error_type=error_type, error_message=message)
        if status == "timeout":
            # The child is sent SIGTERM right after this signal and may close its own row as
            # cancelled when it exits: write the timeout first (a rare event, ~1 commit).
            self.recorder.flush(1.0)

    def _on_task_retry(
        self,
        sender: Any,
        request: Any = None,
        reason: Any = None,
        _active: _Active | None = None,
        **_: Any,
    ) -> None:
        if request is None:
            return
        active = _active
        if active is None:
            # The main process: Celery cancelled a running task when the broker connection
            # was lost; it is delivered again later.
            span = self._span_of(request)
            if span is not None:
                self.recorder.finish_span(
                    span, "cancelled", error_message="cancelled by Celery; it will be retried"
                )
            return
        run = active.run
        cause = getattr(reason, "exc", None)
        if isinstance(cause, BaseException):
            run.set(retry_cause=qualified_type(cause))
        if isinstance(reason, BaseException):
            run.finish(reason, status="failed", error_type="celery.exceptions.Retry")
        else:
            run.finish(
                status="failed",
                error_type="celery.exceptions.Retry",
                error_message=str(reason) if reason is not None else None,
            )

    def _on_task_postrun(
        self, sender: Any, task: Any = None, retval: Any = None, state: Any = None,
        _active: _Active | None = None, **_: Any,
    ) -> None:  # fmt: skip
        active = _active
        if active is None:
            return
        task = task or sender
        request = getattr(task, "request", None)
        if active.token is not None:
            with contextlib.suppress(ValueError):  # reset in another context than set
                _ACTIVE.reset(active.token)
        run = active.run
        if state == "SUCCESS":
            if self.capture_args:
                run.record_result(retval)
            run.finish(status="success")
        elif state in ("FAILURE", "RETRY"):  # finished by their signals already, else here
            if isinstance(retval, BaseException):
                run.finish(retval, status="failed" if state == "RETRY" else _status(retval))
            else:
                run.finish(status="failed")
        elif state in ("IGNORED", "REJECTED"):  # Ignore (e.g. self.replace), Reject
            run.set(celery_state=state)
            if state == "REJECTED" and isinstance(retval, BaseException):
                run.finish(retval, status="failed")
            else:
                run.finish(status="success" if state == "IGNORED" else "failed")
        else:  # None: the body was interrupted by SystemExit (SIGTERM) or the like
            elapsed = time.perf_counter() - active.t0
            hard = _hard_limit(task, request)
            if hard and elapsed >= hard * 0.98:
                run.finish(
                    status="timeout",
                    error_type="billiard.exceptions.TimeLimitExceeded",
                    error_message=f"hard time limit ({hard:g} s) exceeded; the pool process "
                    "was stopped",
                )
            else:
                run.finish(
                    status="cancelled",
                    error_message="interrupted: the worker process was told to exit "
                    "(a terminating revoke or a worker shutdown)",
                )


def _hard_limit(task: Any, request: Any) -> float | None:
    """The hard time limit this attempt runs under, in seconds (None when unlimited)."""
    limits = getattr(request, "timelimit", None)
    hard = limits[0] if isinstance(limits, list | tuple) and limits else None
    if hard is None:
        hard = getattr(task, "time_limit", None)
    if hard is None:
        conf = getattr(getattr(task, "app", None), "conf", None)
        hard = getattr(conf, "task_time_limit", None) if conf is not None else None
    try:
        return float(hard) if hard else None
    except (TypeError, ValueError):
        return None


def _signame(signum: Any) -> str:
    import signal

    try:
        return signal.Signals(int(signum)).name
    except (TypeError, ValueError):
        return str(signum) if signum else "SIGTERM"


#: Attempts running in this process, by (Celery task id, retries).
_RUNS: dict[tuple[str, int], _Active] = {}
#: Main process: the requests it handed to the pool, so a hard time limit (announced with the
#: task id only) finds the attempt. Weak: an entry goes with its request.
_REQUESTS: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
_INTEGRATIONS: dict[str, CeleryIntegration] = {}
_CONNECTED: list[tuple[Any, str]] = []
_WARNED: set[str] = set()
_BEAT = threading.local()  # .running: this thread runs Celery beat


def _before_task_publish(sender: Any = None, headers: Any = None, **_: Any) -> None:
    """In any process that publishes: link the message to the attempt sending it, and give a
    beat message its due time."""
    if not isinstance(headers, dict):
        return
    active = _ACTIVE.get()
    if active is not None:
        if headers.get("id") == active.celery_id and (headers.get("retries") or 0) > active.retries:
            if active.parent:  # a retry: same parent as the attempt it retries
                headers[PARENT_HEADER] = active.parent
        else:  # a chain's next step, a task sent by this one, a replacement
            headers[PARENT_HEADER] = active.run.span_id
    if SCHEDULED_HEADER not in headers and (
        getattr(_BEAT, "running", False) or headers.get("celery_beat_task")
    ):
        headers[SCHEDULED_HEADER] = format_ts(utcnow())


def _beat_init(sender: Any = None, **_: Any) -> None:
    """Beat starts in this thread: what it publishes from here on is scheduled."""
    _BEAT.running = True
    app = getattr(sender, "app", None)
    if app is not None:
        integration = _INTEGRATIONS.get(f"app-{id(app)}") or _INTEGRATIONS.get("all")
        if integration is not None:
            save_beat_schedules(integration.recorder, app)


#: Schedules saved by this process, by task name (each is saved once: it is an upsert anyway).
_SAVED_SCHEDULES: dict[str, Any] = {}
_SCHEDULE_WARNED: list[bool] = []


def beat_schedule_of(entry: Mapping[str, Any], timezone: str) -> dict[str, Any] | None:
    """``{"cron": ..., "timezone": ...}`` or ``{"every_seconds": ...}`` for a ``beat_schedule``
    entry's ``schedule`` (a crontab, a timedelta, a number of seconds, a ``schedule``); None for
    any other (``solar``, a custom schedule)."""
    from datetime import timedelta

    from celery.schedules import crontab, schedule

    every = entry.get("schedule")
    if isinstance(every, crontab):
        names = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
        return {
            "cron": " ".join(_cron_field(getattr(every, "_orig_" + n)) for n in names),
            "timezone": timezone,
        }
    if isinstance(every, schedule):
        every = every.run_every
    if isinstance(every, timedelta):
        return {"every_seconds": every.total_seconds()}
    if isinstance(every, int | float) and not isinstance(every, bool):
        return {"every_seconds": float(every)}
    return None


def _cron_field(value: Any) -> str:
    """A crontab field as given: ``'*/15'``, ``0``, or a set / list / range of numbers."""
    if value is None:
        return "*"
    if isinstance(value, str | int):
        return str(value)
    return ",".join(str(item) for item in sorted(value))


def save_beat_schedules(recorder: Recorder, app: Any) -> int:
    """Save the ``beat_schedule`` entries of ``app`` in the ``schedules`` table (source
    ``celery-beat``, task = the entry's task name); returns how many were written. A task in
    several entries keeps its first; an entry no cron expression or interval can say is
    skipped; a database that cannot be written is skipped with one warning."""
    from ..alerts.schedules import Schedule, save_schedule
    from ..errors import BadInput, DatabaseError

    conf = app.conf
    entries = conf.beat_schedule or {}
    timezone = str(conf.timezone or "UTC")
    found: dict[str, Schedule] = {}
    for key, entry in entries.items():
        task = entry.get("task") if isinstance(entry, Mapping) else None
        if not isinstance(task, str) or task in found:
            continue
        spec = beat_schedule_of(entry, timezone)
        if spec is None:
            continue
        try:
            found[task] = Schedule(task, source="celery-beat", **spec)
        except BadInput as exc:
            log.debug("taskexec: no schedule saved for the beat entry %r (%s)", key, exc)
    written = 0
    for task, schedule in found.items():
        if _SAVED_SCHEDULES.get(task) == schedule:
            continue
        try:
            save_schedule(recorder.store, schedule)
        except DatabaseError as exc:
            if not _SCHEDULE_WARNED:
                _SCHEDULE_WARNED.append(True)
                log.warning(
                    "taskexec: could not save the Celery beat schedules (%s); tasks are still "
                    "recorded, this is said once",
                    exc,
                )
            break
        _SAVED_SCHEDULES[task] = schedule
        written += 1
    return written


#: Module-level handlers: they need no integration (they only add message headers).
_PLAIN = {"before_task_publish": _before_task_publish, "beat_init": _beat_init}


_BY_ACTIVE = ("task_postrun", "task_failure", "task_retry")


def _find_active(name: str, sender: Any, kwargs: dict[str, Any]) -> _Active | None:
    """The attempt a postrun / failure / retry signal is about, when it runs in this process."""
    if name == "task_retry":
        request = kwargs.get("request")
        task_id = getattr(request, "id", None)
    else:
        request = getattr(kwargs.get("task") or sender, "request", None)
        task_id = kwargs.get("task_id")
        if task_id is None or getattr(request, "id", None) != task_id:
            return None  # the main process: its default request is not this task's
    if not isinstance(task_id, str):
        return None
    key = (task_id, getattr(request, "retries", 0) or 0)
    return _RUNS.pop(key, None) if name == "task_postrun" else _RUNS.get(key)


def _route(sender: Any) -> CeleryIntegration | None:
    """The integration for this sender's app (a task or a worker consumer), else for every app."""
    if len(_INTEGRATIONS) == 1 and "all" in _INTEGRATIONS:
        return _INTEGRATIONS["all"]
    app = getattr(sender, "app", None)
    return _INTEGRATIONS.get(f"app-{id(app)}") or _INTEGRATIONS.get("all")


def _receiver(name: str) -> Callable[..., None]:
    """A module-level handler for one signal: routed, and never raising into Celery."""
    method: Any = getattr(CeleryIntegration, "_on_" + name, None)
    plain = _PLAIN.get(name)

    def receiver(sender: Any = None, **kwargs: Any) -> None:
        try:
            if plain is not None:
                plain(sender, **kwargs)
                return
            if name in _BY_ACTIVE:  # the attempt running here, if any, knows its integration
                active = _find_active(name, sender, kwargs)
                if active is not None:
                    method(active.integration, sender, _active=active, **kwargs)
                    return
                if name == "task_postrun":
                    return
            integration = _route(kwargs.get("task") or sender)
            if integration is not None:
                method(integration, sender, **kwargs)
        except Exception as exc:  # noqa: BLE001 - recording never breaks a task or a worker
            if name not in _WARNED:
                _WARNED.add(name)
                log.warning(
                    "taskexec: the Celery %s handler failed (%r); recording goes on, "
                    "this is said once",
                    name,
                    exc,
                )

    receiver.__name__ = receiver.__qualname__ = f"taskexec_{name}"
    return receiver


def _connect_signals() -> None:
    from celery import signals

    if _CONNECTED:
        return
    for name in _SIGNALS:
        signal = getattr(signals, name)
        uid = f"taskexec.integrations.celery:{name}"
        signal.connect(_receiver(name), weak=False, dispatch_uid=uid)
        _CONNECTED.append((signal, uid))


def _disconnect_signals() -> None:
    for signal, uid in _CONNECTED:
        signal.disconnect(dispatch_uid=uid)
    _CONNECTED.clear()


def connect(
    recorder: Recorder, app: Any = None, *, capture_args: bool = False, capture_logs: int = 0
) -> CeleryIntegration:
    """Record every attempt of the tasks of ``app`` (of every app when None) with ``recorder``.

    Idempotent: the signal handlers are connected once (``weak=False``, a ``dispatch_uid``);
    calling again for the same app only changes the recorder and the options. An event goes to
    the integration of its task's app, else to the one for every app: an attempt is recorded
    once. ``capture_args`` keeps each attempt's arguments and return value in ``attributes``
    (cut to 2,000 characters and scrubbed); ``capture_logs=N`` its last N log lines
    (``attributes["log_tail"]``).

    Call it in the worker's main process (the app module, or ``worker_init``), so that process
    closes what Celery announces there: hard time limits, terminating revokes, lost pool
    processes. Returns the integration (``.disconnect()`` stops recording).

    The app's ``beat_schedule`` (crontab and interval entries) is saved in the ``schedules``
    table (source ``celery-beat``) here, and again when beat starts in this process (for a
    schedule set after ``connect``).
    """
    key = "all" if app is None else f"app-{id(app)}"
    integration = _INTEGRATIONS.get(key)
    if integration is None:
        integration = CeleryIntegration(recorder, app, capture_args, capture_logs, key)
        _INTEGRATIONS[key] = integration
    else:
        integration.recorder = recorder
        integration.capture_args = capture_args
        integration.capture_logs = capture_logs
    _connect_signals()
    if app is not None:
        try:
            save_beat_schedules(recorder, app)
        except Exception as exc:  # noqa: BLE001 - a schedule never stops the app
            log.debug("taskexec: could not read the beat schedule (%r)", exc)
    return integration


def disconnect(app: Any = None) -> None:
    """Undo ``connect(recorder, app)`` (nothing happens when it was not connected)."""
    integration = _INTEGRATIONS.get("all" if app is None else f"app-{id(app)}")
    if integration is not None:
        integration.disconnect()


__all__ = [
    "ID_ATTRIBUTES",
    "PARENT_HEADER",
    "SCHEDULED_HEADER",
    "SPAN_KEY",
    "CeleryIntegration",
    "connect",
    "disconnect",
    "save_beat_schedules",
    "span_id_for",
    "trace_id_for",
]
