"""The user-facing recording API: ``Recorder.track`` (sync and async), ``@Recorder.task`` and
``Recorder.start`` / ``Run.finish`` for event-driven frameworks.

Each attempt is written as ``running`` when it starts and updated when it ends, so a worker that
dies mid-task leaves a row for ``sweep`` to mark abandoned. Recording is fail-open: nothing here
raises into the task, replaces its exception or waits on the database (``strict=True`` aside).
Retries use tenacity (well kept, sync and async, composable wait strategies).

Two paths. The *quick* one, for an attempt whose options are plain (a slug, a flat dict of
attributes, W3C ids...: what almost every call passes) and no OpenTelemetry tracing, durable or
strict mode: the task's thread only takes the time, makes the ids and queues the ``Run`` (one
``deque.append``); the writer thread validates nothing more, scrubs and encodes it when it takes
the group (``Run._start_op``), usually after it ended, so once, as its finished row. Only plain
data is handed over (flat copies of the attributes), so no user code runs on the writer thread
and the task may go on changing its own objects. Everything else takes the *general* path:
validated as a ``TaskExecution`` and encoded on the task's thread, as a failing attempt's
outcome is (its stack is formatted where it happened). The one wait on the quick path: a loop
that records faster than SQLite can write (near-empty tasks) is held, past ``writer.BACKLOG``
queued operations, until the writer takes its next group (0.1 s at most; never on the file).
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import dataclasses
import functools
import os
import re
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypedDict, TypeVar, Unpack

from . import tracing
from .db import Store, rows
from .db.writer import (
    BACKLOG,
    DEFAULT_INTERVAL,
    DONE,
    FINISH,
    INSERT,
    LATER_END,
    LATER_START,
    Op,
    Writer,
    WriterStats,
)
from .errors import InvalidRecord
from .model import (
    EPOCH,
    MAX_INTEGER,
    STATUSES,
    Outcome,
    TaskExecution,
    as_span_id,
    as_trace_id,
    live_key,
    new_span_id,
    new_trace_id,
    utcnow,
)
from .scrub import scrub_identifier, scrub_key, scrub_text, scrub_value

if TYPE_CHECKING:
    import logging

    from tenacity.wait import wait_base

_HASH = rows.COL["stack_hash"]
_COL = rows.COL
P = ParamSpec("P")
R = TypeVar("R")


def _log() -> logging.Logger:
    """The ``taskexec`` logger (logging is imported when there is something to say)."""
    import logging

    return logging.getLogger("taskexec")


def status_for(exc: BaseException | None) -> str:
    """Map how a body ended to a status: timeouts and cancellations are not plain failures."""
    if exc is None:
        return "success"
    if isinstance(exc, TimeoutError):
        return "timeout"
    asyncio = sys.modules.get("asyncio")  # only loaded when the program uses it: cheap start
    if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit) or (
        asyncio is not None and isinstance(exc, asyncio.CancelledError)
    ):
        return "cancelled"
    return "failed"


class AttemptOptions(TypedDict, total=False):
    """What ``track`` and ``start`` accept besides the task's slug (all optional)."""

    task_id: str | None  # the task definition's id (default: the slug)
    trace_id: str | None  # continue this logical run (default: a new trace); W3C id or UUID
    span_id: str | None  # this attempt's id (default: random); W3C span id, or a UUID
    # (see model.as_span_id); integrations derive it from the job id and attempt number
    parent_span_id: str | None  # the enclosing span (W3C span id or UUID)
    attempt: int  # 1 for the first try
    retry_of: str | None  # span id of the previous attempt (W3C span id or UUID)
    scheduled_at: datetime | None  # when the scheduler meant it to run (aware)
    attributes: Mapping[str, Any] | None  # anything else; JSON-unfriendly values become text
    parents: Sequence[Any]  # input records / parent pointers
    causes: Sequence[Any]  # upstream executions that caused this one
    content: str | None  # a summary, full-text searchable
    capture_logs: int  # keep this attempt's last N log lines in attributes["log_tail"]
    started_at: datetime | None  # when it started, if not now (aware; a framework's clock)


class Run:
    """One attempt in progress: the body attaches retrieval metadata, files, attributes, and an
    event-driven caller ends it with ``finish``. No method raises into the task."""

    def __init__(
        self, recorder: Recorder, record: TaskExecution | None, quick: _Quick | None = None
    ) -> None:
        self._record = record
        self._quick = quick  # the attempt's fields on the quick path (``record`` is then lazy)
        if quick is None:
            assert record is not None
            self._span_id, self._trace_id, self._attempt = (
                record.span_id,
                record.trace_id,
                record.attempt,
            )
            self.attributes: dict[str, Any] = dict(record.attributes)
            self.content: str | None = record.content
        else:
            self._trace_id, self._span_id, self._attempt = quick[2], quick[3], quick[5]
            self.attributes = quick[9].copy()  # the body's; quick[9] is the writer's copy
            self.content = quick[8]
        self.memories_retrieved: int | None = None
        self.retrieval_sources: list[str] = []
        self.files_written: list[str] = []
        self.status: str = "running"
        self._recorder = recorder
        self._start_us = time.time_ns() // 1000  # the quick path's start (the row's started_at)
        self._t0 = time.perf_counter()
        self._pid = 0  # the quick path's process id (set when queued)
        self._live: tracing.LiveSpan | None = None  # the OpenTelemetry span, when tracing
        self._once = [True]  # popped by the first finish (list.pop is atomic: no lock)
        self._given_start = False  # started_at came from the caller, not the clock
        self._logs: collections.deque[str] | None = None  # the last log lines, when captured
        self._token: contextvars.Token[Run | None] | None = None
        # Quick path, between the task's thread and the writer's: how it ended (one tuple,
        # assigned once before the end is queued), and whether the writer put that end in the
        # row it inserted (only the writer thread reads and sets it).
        self._ended: tuple[Any, ...] | None = None
        self._merged = False

    @property
    def record(self) -> TaskExecution:
        """The attempt as it started, as a validated record (built when first asked for on the
        quick path)."""
        record = self._record
        if record is None:
            record = self._record = self._recorder._quick_record(self)
        return record

    @record.setter
    def record(self, value: TaskExecution) -> None:
        self._record = value

    @property
    def span_id(self) -> str:
        return self._span_id

    @property
    def trace_id(self) -> str:
        return self._trace_id

    @property
    def attempt(self) -> int:
        return self._attempt

    def _started_at(self) -> datetime:
        if self._quick is None:
            return self.record.started_at
        return EPOCH + timedelta(microseconds=self._start_us)

    def retrieved(self, count: int, sources: Sequence[str] = ()) -> None:
        """Record that the task retrieved ``count`` memories from ``sources`` (adds up)."""
        if type(count) is not int or count < 0:
            self._recorder._problem(
                "retrieved", InvalidRecord("memories_retrieved", f"must be >= 0, got {count!r}")
            )
            return
        self.memories_retrieved = (self.memories_retrieved or 0) + count
        for source in sources if not isinstance(sources, str) else (sources,):
            if str(source) not in self.retrieval_sources:
                self.retrieval_sources.append(str(source))

    def wrote(self, *paths: str | os.PathLike[str]) -> None:
        """Add files to the attempt's I/O manifest."""
        for path in paths:
            try:
                self.files_written.append(os.fspath(path))
            except TypeError:
                self.files_written.append(str(path))

    def set(self, **attributes: Any) -> None:
        """Attach extra attributes to the attempt; a value JSON cannot hold is stored as its
        string form."""
        self.attributes.update(attributes)

    def record_call(
        self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None, limit: int = 2000
    ) -> None:
        """Opt-in: keep the call's arguments in ``attributes`` (``args``, ``kwargs``), each cut
        to ``limit`` characters of JSON and scrubbed like everything else."""
        self.attributes["args"] = rows.preview(list(args), limit)
        if kwargs:
            self.attributes["kwargs"] = rows.preview(dict(kwargs), limit)

    def record_result(self, value: Any, limit: int = 2000) -> None:
        """Opt-in: keep the return value in ``attributes["result"]`` (cut and scrubbed)."""
        self.attributes["result"] = rows.preview(value, limit)

    def summary(self, text: str) -> None:
        """A one-paragraph summary of what the attempt did; it is full-text searchable."""
        self.content = text if isinstance(text, str) or text is None else str(text)

    def finish(
        self,
        exc: BaseException | None = None,
        *,
        status: str | None = None,
        error_type: str | None = None,
        error_message: str | None = None,
        stack_trace: str | None = None,
        ended_at: datetime | None = None,
    ) -> None:
        """End the attempt: with ``exc`` (its type, message and stack are recorded) or with an
        explicit ``status`` and error text (for frameworks that report failures as values).
        ``ended_at`` (aware) when the end is known after the fact. Callable from any thread;
        the second and later calls do nothing."""
        try:
            self._once.pop()
        except IndexError:
            return
        if self._token is not None:
            with contextlib.suppress(ValueError):  # finished in another context than started
                _CURRENT.reset(self._token)
            self._token = None
        elif _CURRENT.get() is self:
            _CURRENT.set(None)
        if self._logs:
            self.attributes["log_tail"] = list(self._logs)
        self._recorder._end(self, exc, status, error_type, error_message, stack_trace, ended_at)

    # -- the writer thread's side (quick path; see ``db.writer.Deferred``) --------------------

    def _start_op(self) -> Op:
        """The attempt's row, encoded on the writer thread: finished when it ended meanwhile
        (the usual case), else running. Never raises."""
        ended = self._ended  # read once: the task's thread assigns it once, whole
        recorder = self._recorder
        row = recorder._quick_row(self)
        if ended is None:
            return [INSERT, self._span_id, row, False]
        self._merged = True
        values, error = recorder._quick_end(self, ended)
        for name, value in values.items():
            row[_COL[name]] = value
        return [DONE, self._span_id, row, error]

    def _end_op(self) -> Op | None:
        """The end of an attempt whose running row was taken before it ended (an update), or
        None when ``_start_op`` already wrote it. Never raises."""
        if self._merged or self._ended is None:
            return None
        values, error = self._recorder._quick_end(self, self._ended)
        return [FINISH, self._span_id, values, error]


#: The fields of an attempt on the quick path: (task_slug, task_id, trace_id, span_id,
#: parent_span_id, attempt, retry_of, scheduled_at, content, attributes, capture_logs), every
#: one checked; ``attributes`` is a flat copy the writer thread owns.
_Quick = tuple[
    str, str, str, str, "str | None", int, "str | None", "datetime | None", "str | None",
    dict[str, Any], "int | None",
]  # fmt: skip
_IDS = frozenset(("trace_id", "span_id", "parent_span_id", "retry_of"))
_ENDED = frozenset(STATUSES) - {"running"}
_is_trace = re.compile(r"[0-9a-f]{32}").fullmatch
_is_span = re.compile(r"[0-9a-f]{16}").fullmatch
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16
#: The row layout ``Recorder._quick_row`` writes; the quick path is off if ``rows`` changes it.
_QUICK_COLUMNS = (
    "span_id", "trace_id", "parent_span_id", "attempt", "retry_of", "idempotency_key",
    "task_id", "task_slug", "status", "error_type", "error_message", "stack_trace",
    "stack_hash", "scheduled_at", "started_at", "ended_at", "duration_ms",
    "memories_retrieved", "retrieval_sources", "files_written", "parents", "causes",
    "provenance", "host", "pid", "content", "attributes", "created_at",
)  # fmt: skip
_QUICK_LAYOUT = rows.COLUMNS == _QUICK_COLUMNS


def _flat_copy(value: object) -> dict[str, Any] | None:
    """A copy of a dict of strings to str, int, bool, None or finite float values (what the
    writer thread may encode: no user code runs for them); None for anything else."""
    if type(value) is not dict:
        return None
    for k, v in value.items():
        t = type(v)
        if type(k) is not str or not (
            t is str or t is int or t is bool or v is None or (t is float and v - v == 0.0)
        ):
            return None
    return value.copy()


def _empty(value: object) -> bool:
    """None or an empty list or tuple (``parents``, ``causes``)."""
    return value is None or (type(value) in (list, tuple) and not value)


def _utc(value: object) -> bool:
    """An aware UTC ``datetime`` (what ``TaskExecution`` takes as is)."""
    return type(value) is datetime and value.tzinfo is UTC


def _w3c(value: object, size: int) -> str | None:
    """A W3C id given as one (lowercase hex, not all zero), else None."""
    if type(value) is str and len(value) == size:
        if size == 16 and _is_span(value) and value != _ZERO_SPAN:
            return value
        if size == 32 and _is_trace(value) and value != _ZERO_TRACE:
            return value
    return None


_SECOND: tuple[int, str] = (-1, "")


def _stamp(us: int) -> str:
    """``rows.ts`` of the time ``us`` microseconds after the epoch, with the text of its second
    remembered (consecutive records share it)."""
    global _SECOND
    second, fraction = divmod(us, 1_000_000)
    cached = _SECOND
    if cached[0] != second:
        cached = _SECOND = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{cached[1]}.{fraction:06d}Z"


def _json(value: dict[str, Any] | None) -> str | None:
    """JSON text of scrubbed attributes (``rows`` does the same for a record's)."""
    return rows.dump(scrub_value(value)) if value else None


class Tracking:
    """Context manager (sync and async) that starts an attempt and finishes it on exit."""

    def __init__(
        self,
        recorder: Recorder,
        fields: dict[str, Any] | None,
        trace_given: bool,
        quick: _Quick | None = None,
    ) -> None:
        self._recorder, self._fields, self._trace_given = recorder, fields, trace_given
        self._quick = quick
        if quick is not None:
            self.trace_id: str = quick[2]
            self.span_id: str = quick[3]
            self.capture: int | None = quick[10]
        else:
            assert fields is not None
            self.span_id, self.trace_id = fields["span_id"], fields["trace_id"]
            self.capture = None
        self._run: Run | None = None

    def __enter__(self) -> Run:
        quick = self._quick
        if quick is not None:
            run = self._recorder._begin_quick(quick, self.capture)
        else:
            assert self._fields is not None
            run = self._recorder._begin(
                self._fields, self._trace_given, attach=True, capture=self.capture
            )
            self.span_id, self.trace_id = run.span_id, run.trace_id
        self._run = run
        return run

    def __exit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._run is not None:
            self._run.finish(exc)

    async def __aenter__(self) -> Run:
        return self.__enter__()

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(et, exc, tb)


class Recorder:
    """Records task executions into one SQLite file, off the task's thread and fail-open.

    Nothing here raises into the task or stalls it: the file is opened and written by a
    background writer (``db/writer.py``) that commits in groups every ``flush_interval``
    seconds, and whatever cannot be written goes to a durable spool and is replayed later.
    ``durable=True`` writes the running row (and the outcome) before ``track`` returns, on
    the task's thread. ``strict=True`` (for tests and tools) opens the file now, writes
    synchronously and raises every problem. ``heartbeat`` (seconds) refreshes
    ``heartbeat_at`` of runs in progress, so ``sweep`` tells a stuck run from a long one.
    ``capture_logs=N`` keeps each attempt's last N log lines (of any logger, emitted while the
    attempt is current in its thread or task) in ``attributes["log_tail"]``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        host: str | None = None,
        strict: bool = False,
        durable: bool = False,
        flush_interval: float = DEFAULT_INTERVAL,
        heartbeat: float | None = None,
        capture_logs: int = 0,
    ) -> None:
        if flush_interval <= 0 or (heartbeat is not None and heartbeat <= 0):
            raise InvalidRecord("flush_interval", "flush_interval and heartbeat must be > 0")
        self.path = os.fspath(path)
        # Text, as the row stores it (a name given as another type is taken as its str).
        self.host = _hostname() if host is None else host if type(host) is str else str(host)
        self.strict = strict
        self.durable = durable or strict
        self.capture_logs = capture_logs
        self._hooks: list[Callable[[dict[str, Any]], object]] = []
        self._dispatcher: _Dispatcher | None = None
        self._writer = Writer(
            self.path,
            interval=flush_interval,
            heartbeat=heartbeat,
            strict=strict,
            on_written=self._written,
        )
        self._warned: set[str] = set()
        self._slugs: set[str] = set()  # task slugs checked for the quick path
        self._quick_ok = _QUICK_LAYOUT and not self.durable
        if strict:
            self._writer.store()  # raises DatabaseError now rather than at the first write

    def on_finish(self, callback: Callable[[dict[str, Any]], object]) -> None:
        """Call ``callback(row)`` for every attempt this recorder finishes, once its row is in
        the file: the row as a dict (JSON columns decoded) with ``is_new_error`` (1 when it is
        the first occurrence of its error group) and ``group_occurrences``. Callbacks run on
        a thread of their own, never the task's; what they raise is logged, not raised."""
        self._hooks.append(callback)

    def _written(self, store: Store, ops: list[Any]) -> None:
        """The writer committed ``ops``: hand the finished ones to the on-finish hooks."""
        if not self._hooks:
            return
        ended = [op[1] for op in ops if op[0] != "i"]  # finished rows and finishes
        if not ended:
            return
        found = store.finished(ended)
        if found:
            if self._dispatcher is None or self._dispatcher.pid != os.getpid():
                self._dispatcher = _Dispatcher(self._hooks)
            self._dispatcher.put(found)

    @property
    def store(self) -> Store:
        """The open database, for reads (everything recorded so far is flushed first)."""
        self.flush()
        return self._writer.store()

    @property
    def stats(self) -> WriterStats:
        """What the background writer did: written, spooled, replayed, lost records."""
        return self._writer.stats

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Write everything recorded so far (to the file, or to the spool when the file is not
        usable); True when that finished within ``timeout`` seconds."""
        return self._writer.flush(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Flush and close the database (interpreter exit does this for every recorder), then
        let the on-finish hooks see the last records."""
        self._writer.close(timeout)
        if self._dispatcher is not None and self._dispatcher.pid == os.getpid():
            self._dispatcher.stop(timeout)
            self._dispatcher = None

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fields(self, task_slug: str, options: AttemptOptions) -> dict[str, Any]:
        given_span, parent, retry_of = (
            options.get("span_id"),
            options.get("parent_span_id"),
            options.get("retry_of"),
        )
        span_id = as_span_id(given_span) if given_span else new_span_id()
        trace_id = options.get("trace_id")
        return {
            "task_slug": task_slug,
            "task_id": options.get("task_id") or task_slug,
            "status": "running",
            "trace_id": as_trace_id(trace_id) if trace_id else new_trace_id(),
            "span_id": span_id,
            "idempotency_key": live_key(str(span_id)),
            "parent_span_id": as_span_id(parent) if parent else None,
            "attempt": options.get("attempt", 1),
            "retry_of": as_span_id(retry_of) if retry_of else None,
            "scheduled_at": options.get("scheduled_at"),
            "parents": options.get("parents", ()),
            "causes": options.get("causes", ()),
            "host": self.host,
            "content": options.get("content"),
            "attributes": options.get("attributes") or {},
            "_given_start": options.get("started_at"),
        }

    def track(self, task_slug: str, **options: Unpack[AttemptOptions]) -> Tracking:
        """Track one attempt: ``with rec.track("slug") as run:`` or ``async with``.

        An exception in the body marks the attempt failed (timeout/cancelled for those) and is
        re-raised unchanged. Pass ``trace_id``/``attempt``/``retry_of`` to continue a logical
        run, and ``scheduled_at`` when the scheduler knows when the run was due.
        """
        quick = self._quick_fields(task_slug, options)
        if quick is not None:
            return Tracking(self, None, False, quick)
        fields = self._fields(task_slug, options)
        tracking = Tracking(self, fields, trace_given=options.get("trace_id") is not None)
        tracking.capture = options.get("capture_logs")
        return tracking

    def start(self, task_slug: str, **options: Unpack[AttemptOptions]) -> Run:
        """Start an attempt without a ``with`` block (for framework signals); end it with
        ``run.finish(exc=None, status=None, ...)`` from any thread. Never raises."""
        quick = self._quick_fields(task_slug, options)
        if quick is not None:
            return self._begin_quick(quick, quick[10])
        fields = self._fields(task_slug, options)
        return self._begin(
            fields,
            options.get("trace_id") is not None,
            attach=False,
            capture=options.get("capture_logs"),
        )

    # -- the recording path: fail-open -------------------------------------------------------

    def _problem(self, kind: str, exc: BaseException) -> None:
        """Raise in strict mode; otherwise one warning per kind of problem, never a traceback."""
        if self.strict:
            raise exc
        if kind not in self._warned:
            self._warned.add(kind)
            _log().warning("taskexec: %s (recording goes on; this is said once)", exc)

    # -- the quick path ------------------------------------------------------------------------

    def _quick_fields(self, task_slug: str, options: Mapping[str, Any]) -> _Quick | None:
        """The attempt's fields when the quick path can take it: every option plain and valid,
        no tracing, not durable. None sends it down the general path (which validates, and
        says what it dropped). Makes the ids the caller did not give."""
        if not self._quick_ok or type(task_slug) is not str or tracing.active():
            return None
        if self._writer.backlog() > BACKLOG:
            self._writer.make_room()
        if task_slug not in self._slugs:
            if not task_slug.strip():
                return None
            if len(self._slugs) < 4096:
                self._slugs.add(task_slug)
        task_id, trace, span, parent, attempt, retry_of = task_slug, None, None, None, 1, None
        scheduled = content = capture = None
        attributes: dict[str, Any] = {}
        for key, value in options.items():  # usually none, or one or two
            if key == "attributes":
                if value:
                    copied = _flat_copy(value)
                    if copied is None:
                        return None
                    attributes = copied
            elif key == "task_id":
                if value:
                    if type(value) is not str:
                        return None
                    task_id = value
            elif key == "attempt":
                if type(value) is not int or not 1 <= value <= MAX_INTEGER:
                    return None
                attempt = value
            elif key in _IDS:
                if value:
                    value = _w3c(value, 32 if key == "trace_id" else 16)
                    if value is None:
                        return None
                    if key == "trace_id":
                        trace = value
                    elif key == "span_id":
                        span = value
                    elif key == "parent_span_id":
                        parent = value
                    else:
                        retry_of = value
            elif key == "content":
                if value is not None and type(value) is not str:
                    return None
                content = value
            elif key == "scheduled_at":
                if value is not None and not _utc(value):
                    return None
                scheduled = value
            elif key == "capture_logs":
                if value is not None and (type(value) is not int or value < 0):
                    return None
                capture = value
            elif key in ("parents", "causes"):
                if not _empty(value):
                    return None
            elif key != "started_at" or value is not None:
                return None  # a start time of the caller's, or an unknown option
        return (
            task_slug, task_id, trace or new_trace_id(), span or new_span_id(), parent,
            attempt, retry_of, scheduled, content, attributes, capture,
        )  # fmt: skip

    def _begin_quick(self, quick: _Quick, capture: int | None) -> Run:
        """Start an attempt on the quick path: take the time and queue it. Never raises."""
        run = Run(self, None, quick)
        try:
            lines = capture if capture is not None else self.capture_logs
            if lines:
                run._logs = collections.deque(maxlen=lines)
                _install_log_handler()
            run._token = _CURRENT.set(run)
            run._pid = pid = os.getpid()
            self._writer.push(LATER_START, run._span_id, run, False, pid)
        except Exception as exc:
            self._problem("start", exc)
        return run

    def _quick_record(self, run: Run) -> TaskExecution:
        """The ``TaskExecution`` of a quick attempt as it started (``Run.record``)."""
        assert run._quick is not None
        slug, task_id, trace, span, parent, attempt, retry_of, scheduled, content, attrs, _ = (
            run._quick
        )
        return TaskExecution(
            task_slug=slug,
            task_id=task_id,
            status="running",
            trace_id=trace,
            span_id=span,
            idempotency_key=live_key(span),
            parent_span_id=parent,
            attempt=attempt,
            retry_of=retry_of,
            scheduled_at=scheduled,
            started_at=run._started_at(),
            host=self.host,
            pid=run._pid or os.getpid(),
            content=content,
            attributes=attrs,
        )

    def _quick_row(self, run: Run) -> list[Any]:
        """(Writer thread) The running row of a quick attempt: ``rows.encode_record`` of its
        record, without building one (its fields were checked when it started). Never raises:
        what cannot be encoded goes through ``encode_record``, and failing that a bare row."""
        try:
            assert run._quick is not None
            slug, task_id, trace, span, parent, attempt, retry_of, scheduled, content, attrs, _ = (
                run._quick
            )
            started = _stamp(run._start_us)
            return [
                span, trace, parent, attempt, retry_of, scrub_key(live_key(span)),
                scrub_identifier(task_id), scrub_identifier(slug), "running",
                None, None, None, None,  # error_type, error_message, stack_trace, stack_hash
                rows.ts(scheduled) if scheduled else None, started, None, None,
                None, None, None, None, None,  # memories, sources, files, parents, causes
                "live", scrub_text(self.host), run._pid, scrub_text(content), _json(attrs),
                started,
            ]  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - e.g. a host that is not text
            self._problem("encode", exc)
        try:
            return list(rows.encode_record(run.record))
        except Exception:  # noqa: BLE001
            bare = TaskExecution(
                task_slug="unnamed",
                status="running",
                started_at=run._started_at(),
                span_id=run._span_id,
                trace_id=run._trace_id,
                idempotency_key=live_key(run._span_id),
            )
            return list(rows.encode_record(bare))

    def _quick_end(self, run: Run, ended: tuple[Any, ...]) -> tuple[dict[str, Any], bool]:
        """(Writer thread) The finish's columns of a quick attempt, as ``rows.encode_outcome``
        makes them, and whether it has an error. Never raises."""
        values, failed, status, duration_ms, attributes, content = ended
        if values is not None:  # encoded on the task's thread (an error, files, ...)
            return values, failed
        out = {
            "status": status,
            "ended_at": _stamp(run._start_us + round(duration_ms * 1000.0)),
            "duration_ms": duration_ms,
        }
        try:
            if attributes is not None:
                text = _json(attributes)
                if text is not None:
                    out["attributes"] = text
            if content is not None:
                out["content"] = scrub_text(content)
        except Exception as exc:  # noqa: BLE001 - the status and times are still written
            self._problem("encode", exc)
        return out, False

    def _quick_finish(self, run: Run, status: str | None) -> bool:
        """End a quick attempt that ended plainly (no error, no files or retrieval, attributes
        still flat): take the time and queue it. False when the general path must encode its
        outcome on this thread."""
        if (
            run.memories_retrieved is not None
            or run.retrieval_sources
            or run.files_written
            or (status is not None and status not in _ENDED)
        ):
            return False
        assert run._quick is not None
        duration_ms = (time.perf_counter() - run._t0) * 1000.0
        attributes: dict[str, Any] | None = run.attributes
        if attributes == run._quick[9]:
            attributes = None  # unchanged: the row keeps those of its start
        else:
            attributes = _flat_copy(attributes)
            if attributes is None:
                return False
        content = run.content
        if content == run._quick[8]:
            content = None
        elif type(content) is not str:
            return False
        run.status = status = status or "success"
        run._ended = (None, False, status, duration_ms, attributes, content)
        self._writer.push(LATER_END, run._span_id, run, False, os.getpid())
        return True

    # -- the general path ----------------------------------------------------------------------

    def _record(self, fields: dict[str, Any]) -> TaskExecution:
        """The running record; a field that does not validate is dropped (or stringified) and
        named in ``attributes``, so the attempt is still recorded."""
        fields["started_at"] = fields.pop("_given_start", None) or utcnow()
        fields["pid"] = os.getpid()
        invalid: dict[str, str] = {}
        for _ in range(len(fields)):
            try:
                if invalid:
                    fields["attributes"] = {**fields["attributes"], "taskexec_invalid": invalid}
                return TaskExecution(**fields)
            except InvalidRecord as exc:
                self._problem(f"invalid-{exc.field}", exc)
                invalid[exc.field] = str(exc)
                if exc.field in ("attributes", "parents", "causes"):
                    fields[exc.field] = rows.plain(fields[exc.field]) or ()
                    if exc.field == "attributes" and not isinstance(fields[exc.field], dict):
                        fields["attributes"] = {"value": fields["attributes"]}
                elif exc.field == "task_slug":
                    fields["task_slug"] = str(fields["task_slug"]).strip() or "unnamed"
                elif exc.field == "task_id":
                    fields["task_id"] = str(fields["task_id"])
                elif exc.field == "trace_id":
                    fields["trace_id"] = new_trace_id()
                elif exc.field in fields:
                    fields.pop(exc.field)
                else:
                    break
        raise AssertionError("unreachable")  # pragma: no cover

    def _begin(
        self,
        fields: dict[str, Any],
        trace_given: bool,
        *,
        attach: bool,
        capture: int | None = None,
    ) -> Run:
        given_start = fields.get("_given_start") is not None
        try:
            record = self._record(fields)
        except Exception as exc:  # strict mode re-raises above; anything else: a bare record
            self._problem("record", exc)
            record = TaskExecution(
                task_slug="unnamed", status="running", started_at=utcnow(), host=self.host
            )
        run = Run(self, record)
        run._given_start = given_start
        lines = capture if capture is not None else self.capture_logs
        if lines:
            run._logs = collections.deque(maxlen=lines)
            _install_log_handler()
        run._token = _CURRENT.set(run)
        try:
            # Encoded here, once (scrub, hash, JSON): the writer thread then holds the GIL only
            # for a moment, so a busy task is not held up by it.
            row = rows.encode_record(record)
            if tracing.active():  # the span takes the row's scrubbed values, and its ids win
                live = tracing.start(record, rows.as_mapping(row), trace_given, attach=attach)
                if live is not None:
                    run.record = record = dataclasses.replace(
                        record,
                        trace_id=live.trace_id,
                        span_id=live.span_id,
                        parent_span_id=live.parent_span_id,
                    )
                    run._span_id, run._trace_id = live.span_id, live.trace_id
                    row = rows.with_ids(
                        row,
                        trace_id=live.trace_id,
                        span_id=live.span_id,
                        parent_span_id=live.parent_span_id,
                    )
                    run._live = live
            self._writer.start(row, row[_HASH] is not None, now=self.durable)
        except Exception as exc:
            self._problem("start", exc)
        return run

    def _end(
        self,
        run: Run,
        exc: BaseException | None,
        status: str | None,
        error_type: str | None,
        error_message: str | None,
        stack_trace: str | None,
        ended_at: datetime | None = None,
    ) -> None:
        try:
            if (
                run._quick is not None
                and exc is None
                and ended_at is None
                and error_type is None
                and error_message is None
                and stack_trace is None
                and self._quick_finish(run, status)
            ):
                return
            started_at = run._started_at()
            if ended_at is not None or run._given_start:
                # Times known after the fact (a framework's own clock): duration from them.
                end = ended_at if ended_at is not None else utcnow()
                duration_ms = max(0.0, (end - started_at).total_seconds() * 1000.0)
            else:
                duration_ms = (time.perf_counter() - run._t0) * 1000.0
            run.status = status if status is not None else status_for(exc)
            if run._quick is not None:
                start_attributes: Mapping[str, Any] = run._quick[9]
                start_content = run._quick[8]
            else:
                start_attributes, start_content = run.record.attributes, run.record.content
            error: dict[str, Any] = {
                "error_type": error_type,
                "error_message": error_message,
                "stack_trace": stack_trace,
            }
            if exc is not None:
                # here: a process whose attempts succeed never loads traceback and sysconfig
                from .stackhash import format_stack, qualified_type, stack_hash_from_exception

                error = {
                    "error_type": error_type or qualified_type(exc),
                    "error_message": error_message or _message(exc),
                    "stack_trace": stack_trace or format_stack(exc),
                    "stack_hash": stack_hash_from_exception(exc),
                }
            outcome = Outcome(
                status=run.status,
                ended_at=started_at + timedelta(milliseconds=duration_ms),
                duration_ms=duration_ms,
                memories_retrieved=run.memories_retrieved,
                retrieval_sources=tuple(run.retrieval_sources),
                files_written=tuple(run.files_written),
                # Unchanged attributes are not encoded again: the row keeps those of its start.
                attributes=dict(run.attributes) if run.attributes != start_attributes else {},
                content=run.content if run.content != start_content else None,
                **error,
            )
            values = rows.encode_outcome(outcome)  # scrubbed once, for the span and the row
            if run._live is not None:
                try:
                    run._live.end(outcome, values)
                except Exception as span_exc:  # tracing must never break the task or its row
                    self._problem("span", span_exc)
            failed = values.get("stack_hash") is not None
            if run._quick is not None:  # the writer thread puts it in the row, or updates it
                run._ended = (values, failed, None, None, None, None)
                self._writer.push(LATER_END, run._span_id, run, False, os.getpid())
            else:
                self._writer.finish(run.span_id, values, failed, now=self.durable)
        except Exception as problem:
            self._problem("finish", problem)

    def task(
        self,
        task_slug: str,
        *,
        task_id: str | None = None,
        retries: int = 0,
        backoff: float | wait_base = 1.0,
        max_backoff: float = 60.0,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
        capture_args: bool = False,
        **track_kwargs: Any,
    ) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Decorate a sync or async function so each call is tracked, retrying on failure.

        ``retries=3`` allows up to 3 more attempts after the first; all attempts share one
        trace_id, count ``attempt`` 1, 2, 3… and point ``retry_of`` at the previous span.
        ``backoff`` is the first delay in seconds (exponential with jitter up to ``max_backoff``)
        or any tenacity wait strategy. ``capture_args=True`` keeps each call's arguments and
        return value (cut to 2,000 characters, scrubbed); ``capture_logs=N`` its last N log
        lines.
        """
        if type(retries) is not int or retries < 0:
            raise InvalidRecord("retries", f"must be an integer >= 0, got {retries!r}")
        # tenacity (and asyncio, inspect) are imported here, not at the top: a worker or
        # `taskexec run` that never decorates starts faster.
        import inspect

        from tenacity import (
            AsyncRetrying,
            Retrying,
            retry_if_exception_type,
            stop_after_attempt,
            wait_exponential_jitter,
        )
        from tenacity.wait import wait_base

        wait = (
            backoff
            if isinstance(backoff, wait_base)
            else wait_exponential_jitter(initial=backoff, max=max_backoff, jitter=backoff)
        )
        policy: dict[str, Any] = {
            "stop": stop_after_attempt(retries + 1),
            "wait": wait,
            "retry": retry_if_exception_type(retry_on),
            "reraise": True,
        }

        def decorate(fn: Callable[P, R]) -> Callable[P, R]:
            chain_kwargs = dict(task_id=task_id, **track_kwargs)
            if inspect.iscoroutinefunction(fn):
                afn: Callable[P, Awaitable[Any]] = fn

                @functools.wraps(fn)
                async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                    chain = _Chain(self, task_slug, chain_kwargs)
                    async for attempt in AsyncRetrying(**policy):
                        with attempt:
                            async with chain.next() as run:
                                if capture_args:
                                    run.record_call(args, kwargs)
                                chain.result = await afn(*args, **kwargs)
                                if capture_args:
                                    run.record_result(chain.result)
                    return chain.result

                return async_wrapper  # type: ignore[return-value]

            @functools.wraps(fn)
            def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
                chain = _Chain(self, task_slug, chain_kwargs)
                for attempt in Retrying(**policy):
                    with attempt, chain.next() as run:
                        if capture_args:
                            run.record_call(args, kwargs)
                        chain.result = fn(*args, **kwargs)
                        if capture_args:
                            run.record_result(chain.result)
                result: R = chain.result
                return result

            return wrapper

        return decorate

    def finish_span(
        self,
        span_id: str,
        status: str,
        *,
        error_type: str | None = None,
        error_message: str | None = None,
        stack_trace: str | None = None,
    ) -> None:
        """End an attempt this process did not start (or no longer has a ``Run`` for), by its
        span id: e.g. Celery's main process closing a child's attempt after a hard time limit
        or a terminating revoke. Only a running (or swept) row changes; the duration is counted
        from its start. Never raises (``strict`` aside)."""
        try:
            outcome = Outcome(
                status=status,
                ended_at=utcnow(),
                duration_ms=None,
                error_type=error_type,
                error_message=error_message,
                stack_trace=stack_trace,
            )
            values = rows.encode_outcome(outcome)
            failed = values.get("stack_hash") is not None
            self._writer.finish(str(as_span_id(span_id)), values, failed, now=self.durable)
        except Exception as exc:
            self._problem("finish", exc)

    def sweep(self, older_than: float = 3600.0) -> int:
        """Mark running rows not heard from for ``older_than`` seconds as abandoned."""
        return self.store.sweep(older_than)


#: The attempt in progress in this thread / asyncio task (for log capture).
_CURRENT: contextvars.ContextVar[Run | None] = contextvars.ContextVar("taskexec_run", default=None)


def current_run() -> Run | None:
    """The attempt in progress in this thread or asyncio task, if any."""
    return _CURRENT.get()


_HANDLER: logging.Handler | None = None


def _install_log_handler() -> None:
    """Put the capturing handler on the root logger once (it does nothing for attempts that
    do not capture): it copies log lines to the current attempt when it captures them, and
    never raises."""
    global _HANDLER
    if _HANDLER is not None:
        return
    import logging

    class _AttemptLogHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            run = _CURRENT.get()
            if run is not None and run._logs is not None and record.name != "taskexec":
                try:
                    run._logs.append(self.format(record))
                except Exception:  # noqa: BLE001 - a log line must not break the task
                    self.handleError(record)

    handler = _AttemptLogHandler(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    _HANDLER = handler


class _Dispatcher:
    """Runs on-finish hooks on a thread of their own, so a slow hook delays neither the task
    nor the writer; a failing hook is logged (with its traceback: it is the user's code)."""

    def __init__(self, hooks: list[Callable[[dict[str, Any]], object]]) -> None:
        import queue

        self.hooks, self.pid = hooks, os.getpid()
        self._queue: queue.SimpleQueue[list[dict[str, Any]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="taskexec-hooks", daemon=True)
        self._thread.start()

    def put(self, rows: list[dict[str, Any]]) -> None:
        self._queue.put(rows)

    def stop(self, timeout: float) -> None:
        """Run what is queued, then end the thread (waiting at most ``timeout`` seconds)."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            rows = self._queue.get()
            if rows is None:
                return
            for row in rows:
                for hook in list(self.hooks):
                    try:
                        hook(row)
                    except Exception:
                        _log().exception("taskexec: an on_finish callback raised (ignored)")


def _hostname() -> str:
    """This machine's name: ``socket.gethostname()``, which on POSIX is the kernel's node name
    (``os.uname``: no need to import ``socket``)."""
    uname = getattr(os, "uname", None)
    if uname is not None:
        return str(uname().nodename)
    import socket

    return socket.gethostname()


def _message(exc: BaseException) -> str | None:
    """``str(exc)``, or a placeholder when the exception's ``__str__`` itself fails."""
    try:
        return str(exc) or None
    except Exception:  # noqa: BLE001 - a broken __str__ must not replace the task's error
        return f"<{type(exc).__name__} with an unprintable message>"


class _Chain:
    """The attempts of one logical run: shared trace id, counting attempts, linking retry_of."""

    def __init__(self, recorder: Recorder, task_slug: str, kwargs: dict[str, Any]) -> None:
        self.recorder, self.task_slug, self.kwargs = recorder, task_slug, dict(kwargs)
        self.trace_id: str | None = self.kwargs.pop("trace_id", None)
        self.attempt = 0
        self.previous: Tracking | None = None
        self.result: Any = None

    def next(self) -> Tracking:
        # The previous attempt's ids are read only now: an OpenTelemetry span may have chosen
        # them when that attempt started. Every attempt stays in the first attempt's trace.
        self.attempt += 1
        previous = self.previous
        tracking = self.recorder.track(
            self.task_slug,
            trace_id=self.trace_id or (previous.trace_id if previous else None),
            attempt=self.attempt,
            retry_of=previous.span_id if previous else None,
            **self.kwargs,
        )
        self.previous = tracking
        return tracking
