"""Dramatiq: every message an actor processes becomes one row, from a broker middleware.

    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    from taskexec import Recorder
    from taskexec.integrations.dramatiq import Middleware

    broker = RedisBroker(url=...)
    broker.add_middleware(Middleware(Recorder(os.environ.get("TASKEXEC_DB", "tasks.db"))))
    dramatiq.set_broker(broker)

Add it last (the default): its ``before_process_message`` then runs after the other
middleware's (a message ``AgeLimit`` skips is still recorded, from ``after_skip_message``) and
its ``after_process_message`` first, before ``Retries`` counts the retry.

Ids (the same in every worker, so attempt N+1 points at attempt N without the two talking):

- ``trace_id``: the message id (a UUID: its 32 hex digits; another id is hashed);
- ``attempt``: ``message.options["retries"] + 1`` (``Retries`` counts them);
- ``span_id``: ``span_id_for(message_id, attempt)`` = ``derive_span_id(message_id, attempt)``;
  ``retry_of``: ``span_id_for(message_id, attempt - 1)``;
- ``parent_span_id``: the attempt that sent the message (an actor calling ``.send()``, a
  pipeline's next step, a callback), from a ``taskexec_parent`` message option added when it
  is enqueued; a retry keeps its first attempt's.

``scheduled_at``: the message's ``eta`` (``send_with_options(delay=...)``, a retry's backoff),
which Dramatiq drops when the message leaves the delay queue; the middleware keeps it in a
``taskexec_eta`` option. Statuses: success; failed (an exception, ``dramatiq.Retry``);
timeout (``TimeLimitExceeded``); cancelled (skipped by a middleware, ``Shutdown`` from
``ShutdownNotifications``, an abort). See docs/integrations.md.

This module imports Dramatiq only when ``Middleware`` is first used.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import hashlib
import logging
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..config import default_db
from ..db.rows import preview
from ..model import derive_span_id, uuid_hex
from ..recorder import Recorder, Run, status_for

if TYPE_CHECKING:
    from dramatiq.middleware import Middleware as _HooksBase
else:
    _HooksBase = object

log = logging.getLogger("taskexec")

#: Message option: the span id of the attempt that sent this message.
PARENT_OPTION = "taskexec_parent"
#: Message option: the message's eta (Unix milliseconds), kept after Dramatiq drops ``eta``.
ETA_OPTION = "taskexec_eta"
#: Attribute keys whose values are ids (Dramatiq's message ids are UUIDs, which the scrubber
#: replaces with ``<uuid>`` unless these keys are allow-listed).
ID_ATTRIBUTES = ("dramatiq_message_id",)

#: (message id, span id) of the attempt this thread is processing, from its
#: ``before_process_message`` until the message is acked or rejected: messages enqueued
#: meanwhile (by the actor, by ``Pipelines``, by ``Callbacks``) name it as their parent.
_SENDER: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "taskexec_dramatiq", default=None
)


def span_id_for(message_id: str, attempt: int) -> str:
    """The span id of attempt ``attempt`` (``retries + 1``) of a Dramatiq message."""
    return derive_span_id(message_id, attempt)


def trace_id_for(message_id: str) -> str:
    """The trace id of a message: its id's 32 hex digits (a non-UUID id is hashed)."""
    return uuid_hex(message_id) or hashlib.sha256(str(message_id).encode()).hexdigest()[:32]


class _Tails(logging.Handler):
    """The last log lines of each attempt in progress, by worker thread: any logger, as
    records reach the root logger from the thread running the actor; Dramatiq's own loggers
    (``dramatiq.*``: its error line repeats the stack) and taskexec's are left out."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.active: dict[int, collections.deque[str]] = {}
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        lines = self.active.get(record.thread) if record.thread is not None else None
        if lines is None or record.name.split(".", 1)[0] in ("dramatiq", "taskexec"):
            return
        try:
            lines.append(self.format(record))
        except Exception:  # noqa: BLE001 - a log line must not break the actor
            self.handleError(record)


_TAILS: list[_Tails] = []
_TAILS_LOCK = threading.Lock()


def _tails() -> _Tails:
    """The one handler on the root logger (added when an attempt first keeps log lines)."""
    with _TAILS_LOCK:
        if not _TAILS:
            handler = _Tails()
            logging.getLogger().addHandler(handler)
            _TAILS.append(handler)
        return _TAILS[0]


def _status(exc: BaseException | None) -> str:
    """Dramatiq's exceptions mapped to a status (by name: no import needed)."""
    name = type(exc).__name__ if exc is not None else ""
    if name == "TimeLimitExceeded":
        return "timeout"
    if name in ("Shutdown", "Abort", "AbortRequested"):  # the last two: dramatiq-abort
        return "cancelled"
    return status_for(exc)


def _when(millis: Any) -> datetime | None:
    if isinstance(millis, bool) or not isinstance(millis, int | float):
        return None
    try:
        return datetime.fromtimestamp(millis / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None


class RecordingHooks(_HooksBase):
    """The middleware's hooks; ``Middleware`` adds Dramatiq's own base class to them."""

    def __init__(
        self,
        recorder: Recorder | None = None,
        *,
        capture_args: bool = False,
        capture_logs: int = 0,
    ) -> None:
        self._recorder = recorder
        self.capture_args = capture_args
        self.capture_logs = capture_logs
        self._runs: dict[int, tuple[Any, Run, collections.deque[str] | None]] = {}
        self._warned: set[str] = set()

    @property
    def recorder(self) -> Recorder:
        """The recorder (made from ``$TASKEXEC_DB``, default ``taskexec.db``, on first use)."""
        if self._recorder is None:
            self._recorder = Recorder(default_db())
        return self._recorder

    def _problem(self, where: str, exc: BaseException) -> None:
        if where not in self._warned:
            self._warned.add(where)
            log.warning(
                "taskexec: the Dramatiq %s hook failed (%r); recording goes on, this is said once",
                where,
                exc,
            )

    # -- what a message says about its attempt -----------------------------------------------

    def _options(self, message: Any) -> dict[str, Any]:
        options = message.options
        retries = options.get("retries") or 0
        attempt = (retries if type(retries) is int and retries > 0 else 0) + 1
        message_id = str(message.message_id)
        attributes: dict[str, Any] = {
            "dramatiq_message_id": message_id,
            "queue": message.queue_name,
        }
        if self.capture_args:  # in the running row too
            attributes["args"] = preview(list(message.args or ()))
            if message.kwargs:
                attributes["kwargs"] = preview(dict(message.kwargs))
        result: dict[str, Any] = {
            "task_id": message.actor_name,
            "trace_id": trace_id_for(message_id),
            "span_id": span_id_for(message_id, attempt),
            "attempt": attempt,
            "retry_of": span_id_for(message_id, attempt - 1) if attempt > 1 else None,
            "parent_span_id": options.get(PARENT_OPTION),
            "scheduled_at": _when(options.get(ETA_OPTION)),
            "attributes": attributes,
        }
        result["capture_logs"] = 0  # the middleware keeps the actor's own lines (_Tails)
        return result

    def _closed(
        self, message: Any, status: str, exc: BaseException | None = None, **error: Any
    ) -> None:
        """A row for an attempt whose start this middleware did not see."""
        run = self.recorder.start(message.actor_name, **self._options(message))
        run.finish(exc, status=status, **error)

    # -- the hooks ---------------------------------------------------------------------------

    def before_delay_message(self, broker: Any, message: Any) -> None:
        try:
            eta = message.options.get("eta")
            if isinstance(eta, int | float) and not isinstance(eta, bool):
                message.options[ETA_OPTION] = eta
        except Exception as exc:  # noqa: BLE001
            self._problem("before_delay_message", exc)

    def before_enqueue(self, broker: Any, message: Any, delay: Any) -> None:
        try:
            sender = _SENDER.get()
            if sender is not None and str(message.message_id) != sender[0]:
                message.options[PARENT_OPTION] = sender[1]
        except Exception as exc:  # noqa: BLE001
            self._problem("before_enqueue", exc)

    def before_process_message(self, broker: Any, message: Any) -> None:
        try:
            options = self._options(message)
            message.options.pop(ETA_OPTION, None)  # a retry gets the eta of its own delay
            recorder = self.recorder
            run = recorder.start(message.actor_name, **options)
            _SENDER.set((str(message.message_id), run.span_id))
            size = self.capture_logs or recorder.capture_logs
            lines: collections.deque[str] | None = None
            if size:
                lines = collections.deque(maxlen=size)
                _tails().active[threading.get_ident()] = lines
            self._runs[id(message)] = (message, run, lines)
        except Exception as exc:  # noqa: BLE001
            self._problem("before_process_message", exc)

    def _pop(self, message: Any) -> Run | None:
        """This message's Run, with the log lines it kept; None when its start was not seen."""
        entry = self._runs.pop(id(message), None)
        if entry is None or entry[0] is not message:
            return None
        _message, run, lines = entry
        if lines is not None:
            if _TAILS and _TAILS[0].active.get(threading.get_ident()) is lines:
                del _TAILS[0].active[threading.get_ident()]
            if lines:
                run.set(log_tail=list(lines))
        return run

    def after_process_message(
        self,
        broker: Any,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        try:
            run = self._pop(message)
            if run is None:  # another middleware failed before this one's before hook ran
                if exception is not None:
                    self._closed(message, _status(exception), exception)
                return
            if exception is not None:
                run.finish(exception, status=_status(exception))
            elif getattr(message, "failed", False):
                run.finish(
                    status="cancelled",
                    error_message="not run: a middleware failed the message before the actor ran",
                )
            else:
                if self.capture_args:
                    run.record_result(result)
                run.finish(status="success")
        except Exception as exc:  # noqa: BLE001
            self._problem("after_process_message", exc)

    def after_skip_message(self, broker: Any, message: Any) -> None:
        try:
            reason = getattr(message, "_exception", None)
            text = f"skipped: {reason}" if reason else "skipped by a middleware"
            run = self._pop(message)
            if run is None:  # skipped before this middleware's before hook (AgeLimit)
                self._closed(message, "cancelled", error_message=text)
            else:
                run.finish(status="cancelled", error_message=text)
        except Exception as exc:  # noqa: BLE001
            self._problem("after_skip_message", exc)

    def _done(self, message: Any) -> None:
        sender = _SENDER.get()
        if sender is not None and sender[0] == str(message.message_id):
            _SENDER.set(None)

    def after_ack(self, broker: Any, message: Any) -> None:
        with contextlib.suppress(Exception):
            self._done(message)

    def after_nack(self, broker: Any, message: Any) -> None:
        with contextlib.suppress(Exception):
            self._done(message)

    def before_worker_shutdown(self, broker: Any, worker: Any) -> None:
        with contextlib.suppress(Exception):
            if self._recorder is not None:
                self._recorder.flush(5.0)

    def after_worker_shutdown(self, broker: Any, worker: Any) -> None:
        try:
            for _message, run, _lines in list(self._runs.values()):  # still running: cut off
                run.finish(
                    status="cancelled", error_message="the worker shut down during the attempt"
                )
            self._runs.clear()
            if self._recorder is not None:
                self._recorder.flush(5.0)
        except Exception as exc:  # noqa: BLE001
            self._problem("after_worker_shutdown", exc)


_CLASS: list[type] = []


def _middleware_class() -> type:
    if not _CLASS:
        from dramatiq.middleware import Middleware as DramatiqMiddleware

        class Middleware(RecordingHooks, DramatiqMiddleware):
            """A Dramatiq middleware that records every message an actor processes:
            ``broker.add_middleware(Middleware(recorder, capture_args=False,
            capture_logs=0))``. ``recorder`` None: ``$TASKEXEC_DB`` (default
            ``taskexec.db``), opened on first use. ``capture_args`` keeps each message's
            arguments and result in ``attributes`` (cut to 2,000 characters, scrubbed);
            ``capture_logs=N`` the attempt's last N log lines (``attributes.log_tail``)."""

        Middleware.__module__ = __name__
        _CLASS.append(Middleware)
    return _CLASS[0]


def __getattr__(name: str) -> Any:
    if name == "Middleware":
        return _middleware_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Middleware is made on first access (``__getattr__``).
__all__ = [
    "ETA_OPTION",
    "ID_ATTRIBUTES",
    "PARENT_OPTION",
    "RecordingHooks",
    "span_id_for",
    "trace_id_for",
]
