"""Huey: every execution of every task becomes one row, from Huey's signals.

    from huey import RedisHuey
    from taskexec import Recorder
    from taskexec.integrations.huey import connect

    huey = RedisHuey("proj", url=...)
    connect(huey, Recorder(os.environ.get("TASKEXEC_DB", "tasks.db")))  # where huey is defined

Huey sends its signals in the thread (or process, or greenlet) that executes the task:
``executing`` starts the attempt, ``complete`` / ``error`` / ``timeout`` / ``canceled`` /
``locked`` / ``rate-limited`` / ``interrupted`` end it, ``retrying`` links the next one.
``revoked`` and ``expired`` come for a task the consumer took from the queue and did not run:
a row that starts and ends at once.

Ids (the same in every process, so consumers that never talk agree on them):

- ``trace_id``: the Huey task id (a UUID, as its 32 hex digits; a custom id is hashed): every
  retry of a task keeps its id, so all its attempts share the trace;
- ``attempt``: 1 + the retries the task used so far. Within one consumer process it is counted
  exactly (``retrying`` hands the next attempt its number); in another process (``-k process``
  workers) it is read from the message: the task's configured ``retries`` minus those left;
- ``span_id``: ``derive_span_id(task_id, attempt)``; ``retry_of``: the previous attempt's.

Statuses: success; failed (an exception, a ``RetryTask``); timeout (``TaskTimeout``);
cancelled (revoked, expired, ``CancelExecution``, a lock held elsewhere, a rate limit, the
consumer told to stop mid-task). See docs/integrations.md.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..db.rows import preview
from ..model import derive_span_id, uuid_hex
from ..recorder import Recorder, Run, status_for

log = logging.getLogger("taskexec")

#: Attribute keys whose values are ids (allow-list them in the scrubber to keep the values).
ID_ATTRIBUTES = ("huey_task_id",)
#: Attempts and retry links kept at most per process (a task cancelled in a pre-execute hook
#: leaves one behind; the oldest go first).
LIMIT = 10_000


def span_id_for(huey_task_id: str, attempt: int) -> str:
    """The span id of attempt ``attempt`` of a Huey task id: what every process computes."""
    return derive_span_id(huey_task_id, attempt)


def trace_id_for(huey_task_id: str) -> str:
    """The trace id of a Huey task id: its 32 hex digits (a non-UUID id is hashed)."""
    return uuid_hex(huey_task_id) or hashlib.sha256(str(huey_task_id).encode()).hexdigest()[:32]


@dataclass
class _Active:
    """One attempt executing in this process."""

    run: Run
    attempt: int


@dataclass(frozen=True)
class _Next:
    """What the next attempt of a retried task continues (set by ``retrying``)."""

    attempt: int
    retry_of: str
    retries: int | None  # what the requeued message carries: a link whose task has moved on
    # (its later attempts ran in other processes) no longer matches and is not used


class HueyIntegration:
    """What one ``connect`` call set up: the signal receivers on one Huey instance and the
    attempts executing in this process (by task id: ``interrupted`` may come from the
    consumer's main thread)."""

    def __init__(
        self, huey: Any, recorder: Recorder, capture_args: bool, capture_logs: int
    ) -> None:
        from huey import signals

        self.huey = huey
        self.recorder = recorder
        self.capture_args = capture_args
        self.capture_logs = capture_logs
        self._lock = threading.Lock()
        self._runs: OrderedDict[str, _Active] = OrderedDict()
        self._next: OrderedDict[str, _Next] = OrderedDict()
        self._due: OrderedDict[str, datetime] = OrderedDict()
        self._warned: set[str] = set()
        self._receivers: list[tuple[Callable[..., None], str]] = []
        # By the name of the constant: expired came in Huey 2.4, enqueued in 2.5.3, timeout and
        # rate-limited in 3.0; a signal this Huey does not have is not connected.
        wanted: dict[str, Callable[..., None]] = {
            "SIGNAL_EXECUTING": self._on_executing,
            "SIGNAL_COMPLETE": self._on_complete,
            "SIGNAL_ERROR": self._on_error,
            "SIGNAL_TIMEOUT": self._on_timeout,
            "SIGNAL_CANCELED": self._on_canceled,
            "SIGNAL_LOCKED": self._on_locked,
            "SIGNAL_RATE_LIMITED": self._on_rate_limited,
            "SIGNAL_INTERRUPTED": self._on_interrupted,
            "SIGNAL_RETRYING": self._on_retrying,
            "SIGNAL_REVOKED": self._on_revoked,
            "SIGNAL_EXPIRED": self._on_expired,
            "SIGNAL_ENQUEUED": self._on_enqueued,
        }
        table = {
            getattr(signals, constant): method
            for constant, method in wanted.items()
            if isinstance(getattr(signals, constant, None), str)
        }
        for name, method in table.items():
            receiver = _guarded(self, name, method)
            huey.signal(name)(receiver)
            self._receivers.append((receiver, name))

    def disconnect(self) -> None:
        """Stop recording this Huey's tasks (attempts in progress stay ``running``)."""
        for receiver, name in self._receivers:
            self.huey.disconnect_signal(receiver, name)
        self._receivers.clear()
        if _INTEGRATIONS.get(self.huey) is self:
            del _INTEGRATIONS[self.huey]

    # -- what a task says about its attempt --------------------------------------------------

    def _when(self, eta: Any) -> datetime | None:
        """A task's eta as an aware datetime (Huey keeps naive UTC, or naive local time when
        the instance was made with ``utc=False``)."""
        if not isinstance(eta, datetime):
            return None
        if eta.utcoffset() is not None:
            return eta
        return eta.replace(tzinfo=UTC) if getattr(self.huey, "utc", True) else eta.astimezone()

    def _options(self, task: Any) -> tuple[dict[str, Any], int]:
        """``Recorder.start`` options for the attempt ``task`` is about to be, and its
        attempt number."""
        tid = str(task.id)
        link = self._next.pop(tid, None) if self._next else None
        retries = task.retries if isinstance(task.retries, int) else 0
        retry_of: str | None
        if link is not None and link.retries == retries:
            attempt, retry_of = link.attempt, link.retry_of
        else:  # the first attempt, or a retry of one that ran in another process
            configured = getattr(type(task), "default_retries", 0) or 0
            attempt = max(1, configured - retries + 1) if isinstance(configured, int) else 1
            retry_of = span_id_for(tid, attempt - 1) if attempt > 1 else None
        attributes: dict[str, Any] = {"retries_left": retries}
        trace_id = uuid_hex(tid)
        if trace_id is None:  # a custom id: the trace id is its hash, keep the id itself
            trace_id = trace_id_for(tid)
            attributes["huey_task_id"] = tid
        due = self._due.pop(tid, None) if self._due else None
        if due is not None:
            attributes["periodic"] = True
        if self.capture_args:
            attributes["args"] = preview(list(task.args or ()))
            if task.kwargs:
                attributes["kwargs"] = preview(dict(task.kwargs))
        options: dict[str, Any] = {
            "task_id": _registered_name(self.huey, task),
            "trace_id": trace_id,
            "span_id": span_id_for(tid, attempt),
            "attempt": attempt,
            "retry_of": retry_of,
            "scheduled_at": self._when(task.eta) or due,
            "attributes": attributes,
        }
        return options, attempt

    def _active(self, task: Any, pop: bool) -> _Active | None:
        # One C-level dict operation each: atomic under the GIL, no lock needed.
        if pop:
            return self._runs.pop(str(task.id), None)
        return self._runs.get(str(task.id))

    def _end(self, task: Any, **finish: Any) -> None:
        """End the attempt of ``task`` running here; keep it for ``retrying`` when Huey will
        retry it (``task.retries`` is what is left after this attempt)."""
        final = not task.retries
        active = self._active(task, pop=final)
        if active is not None:
            active.run.finish(**finish)

    # -- the receivers -----------------------------------------------------------------------

    def _on_enqueued(self, task: Any) -> None:
        # A periodic task: its slot is the minute the consumer's scheduler enqueued it in (a
        # retry being requeued is not a new slot).
        if hasattr(task, "validate_datetime") and task.eta is None and task.id not in self._next:
            slot = datetime.now(UTC).replace(second=0, microsecond=0)
            with self._lock:
                self._due[str(task.id)] = slot
                _trim(self._due)

    def _on_executing(self, task: Any) -> None:
        options, attempt = self._options(task)
        if self.capture_logs:
            options["capture_logs"] = self.capture_logs
        run = self.recorder.start(task.name, **options)
        with self._lock:
            self._runs[str(task.id)] = _Active(run, attempt)
            _trim(self._runs)

    def _on_complete(self, task: Any) -> None:
        active = self._active(task, pop=True)
        if active is not None:
            active.run.finish(status="success")

    def _on_error(self, task: Any, exc: Any = None, *_: Any) -> None:
        if isinstance(exc, BaseException):
            self._end(task, exc=exc, status=status_for(exc))
        else:
            self._end(task, status="failed", error_message=str(exc) if exc else None)

    def _on_timeout(self, task: Any) -> None:
        exc = _handled()
        timeout = getattr(task, "timeout", None)
        self._end(
            task,
            exc=exc,
            status="timeout",
            error_type=None if exc else "huey.exceptions.TaskTimeout",
            error_message=None if exc else f"timeout ({timeout}s)",
        )

    def _on_canceled(self, task: Any) -> None:
        exc = _handled()
        self._end(
            task,
            exc=exc,
            status="cancelled",
            error_type=None if exc else "huey.exceptions.CancelExecution",
            error_message=None if exc and str(exc) else "cancelled (CancelExecution)",
        )

    def _on_locked(self, task: Any) -> None:
        self._end(task, exc=_handled(), status="cancelled")

    def _on_rate_limited(self, task: Any) -> None:
        self._end(task, exc=_handled(), status="cancelled")

    def _on_interrupted(self, task: Any) -> None:
        # In the task's thread (process workers: the signal raised KeyboardInterrupt in it),
        # or from the consumer's main thread as it exits (thread workers still running one).
        active = self._active(task, pop=True)
        if active is not None:
            active.run.finish(
                status="cancelled",
                error_type="huey.interrupted",
                error_message="interrupted: the consumer was told to stop while the task ran",
            )

    def _on_retrying(self, task: Any) -> None:
        active = self._active(task, pop=True)
        if active is None:
            return
        # No signal announced how this attempt ended: it raised RetryTask.
        active.run.finish(
            status="failed",
            error_type="huey.exceptions.RetryTask",
            error_message="the task raised RetryTask: it will run again",
        )
        left = task.retries - 1 if isinstance(task.retries, int) else None  # Huey requeues next
        link = _Next(active.attempt + 1, active.run.span_id, left)
        with self._lock:
            self._next[str(task.id)] = link
            _trim(self._next)

    def _closed(self, task: Any, message: str) -> None:
        """A row for a task the consumer took from the queue and did not run."""
        options, _ = self._options(task)
        run = self.recorder.start(task.name, **options)
        run.finish(status="cancelled", error_message=message)

    def _on_revoked(self, task: Any) -> None:
        self._closed(task, "revoked before it started")

    def _on_expired(self, task: Any) -> None:
        self._closed(task, "expired before it started")


def _handled() -> BaseException | None:
    """The exception Huey is handling while it sends a signal from its ``except`` block."""
    return sys.exc_info()[1]


def _registered_name(huey: Any, task: Any) -> str:
    """The task's identity in Huey's registry (``module.name``), else its name."""
    kind = type(task)
    name = _NAMES.get(kind)
    if name is None:
        try:
            name = str(huey._registry.task_to_string(kind))
        except Exception:  # noqa: BLE001 - a registry without it: the name will do
            name = str(task.name)
        _NAMES[kind] = name
    return name


_NAMES: weakref.WeakKeyDictionary[type, str] = weakref.WeakKeyDictionary()


def _trim(entries: OrderedDict[str, Any]) -> None:
    while len(entries) > LIMIT:
        entries.popitem(last=False)


def _guarded(
    integration: HueyIntegration, name: str, method: Callable[..., None]
) -> Callable[..., None]:
    """A receiver for one signal: never raises into Huey (it would log a traceback per task)."""

    def receiver(signal: str, task: Any, *args: Any, **kwargs: Any) -> None:
        try:
            method(task, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - recording never breaks a task or a consumer
            if name not in integration._warned:
                integration._warned.add(name)
                log.warning(
                    "taskexec: the Huey %s receiver failed (%r); recording goes on, "
                    "this is said once",
                    name,
                    exc,
                )

    receiver.__name__ = receiver.__qualname__ = f"taskexec_{name.replace('-', '_')}"
    return receiver


_INTEGRATIONS: weakref.WeakKeyDictionary[Any, HueyIntegration] = weakref.WeakKeyDictionary()


def connect(
    huey: Any, recorder: Recorder, *, capture_args: bool = False, capture_logs: int = 0
) -> HueyIntegration:
    """Record every execution of every task of ``huey`` (a ``Huey`` instance) with ``recorder``.

    Call it where the Huey instance is defined, so the consumer (and each of its worker
    processes, with ``-k process``) has it. Idempotent: a second call for the same instance
    only changes the recorder and the options. ``capture_args`` keeps each attempt's arguments
    in ``attributes`` (cut to 2,000 characters and scrubbed; Huey's signals do not carry the
    return value); ``capture_logs=N`` its last N log lines. Returns the integration
    (``.disconnect()`` stops recording).
    """
    integration = _INTEGRATIONS.get(huey)
    if integration is not None:
        integration.recorder = recorder
        integration.capture_args = capture_args
        integration.capture_logs = capture_logs
        return integration
    integration = HueyIntegration(huey, recorder, capture_args, capture_logs)
    _INTEGRATIONS[huey] = integration
    return integration


def disconnect(huey: Any) -> None:
    """Undo ``connect(huey, ...)`` (nothing happens when it was not connected)."""
    integration = _INTEGRATIONS.get(huey)
    if integration is not None:
        integration.disconnect()


__all__ = [
    "ID_ATTRIBUTES",
    "HueyIntegration",
    "connect",
    "disconnect",
    "span_id_for",
    "trace_id_for",
]
