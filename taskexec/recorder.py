"""The user-facing recording API: ``Recorder.track`` (sync and async), ``@Recorder.task`` and
``Recorder.start`` / ``Run.finish`` for event-driven frameworks.

Each attempt is written as ``running`` when it starts and updated when it ends, so a worker that
dies mid-task leaves a row for ``sweep`` to mark abandoned. Recording is fail-open: nothing here
raises into the task, replaces its exception or waits on the database (``strict=True`` aside).
Retries use tenacity (well kept, sync and async, composable wait strategies).
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import dataclasses
import functools
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypedDict, TypeVar, Unpack

from . import tracing
from .db import Store, rows
from .db.writer import DEFAULT_INTERVAL, Writer, WriterStats
from .errors import InvalidRecord
from .model import (
    Outcome,
    TaskExecution,
    as_span_id,
    as_trace_id,
    live_key,
    new_span_id,
    new_trace_id,
    utcnow,
)
from .stackhash import format_stack, qualified_type, stack_hash_from_exception

if TYPE_CHECKING:
    from tenacity.wait import wait_base

log = logging.getLogger("taskexec")
_HASH = rows.COL["stack_hash"]
P = ParamSpec("P")
R = TypeVar("R")


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

    def __init__(self, recorder: Recorder, record: TaskExecution) -> None:
        self.record = record
        self.memories_retrieved: int | None = None
        self.retrieval_sources: list[str] = []
        self.files_written: list[str] = []
        self.attributes: dict[str, Any] = dict(record.attributes)
        self.content: str | None = record.content
        self.status: str = "running"
        self._recorder = recorder
        self._t0 = time.perf_counter()
        self._live: tracing.LiveSpan | None = None  # the OpenTelemetry span, when tracing
        self._done = threading.Lock()
        self._finished = False
        self._given_start = False  # started_at came from the caller, not the clock
        self._logs: collections.deque[str] | None = None  # the last log lines, when captured
        self._token: contextvars.Token[Run | None] | None = None

    @property
    def span_id(self) -> str:
        return self.record.span_id

    @property
    def trace_id(self) -> str:
        return self.record.trace_id

    @property
    def attempt(self) -> int:
        return self.record.attempt

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
        with self._done:
            if self._finished:
                return
            self._finished = True
        if self._token is not None:
            with contextlib.suppress(ValueError):  # finished in another context than started
                _CURRENT.reset(self._token)
            self._token = None
        elif _CURRENT.get() is self:
            _CURRENT.set(None)
        if self._logs:
            self.attributes["log_tail"] = list(self._logs)
        self._recorder._end(self, exc, status, error_type, error_message, stack_trace, ended_at)


class Tracking:
    """Context manager (sync and async) that starts an attempt and finishes it on exit."""

    def __init__(self, recorder: Recorder, fields: dict[str, Any], trace_given: bool) -> None:
        self._recorder, self._fields, self._trace_given = recorder, fields, trace_given
        self.span_id: str = fields["span_id"]
        self.trace_id: str = fields["trace_id"]
        self.capture: int | None = None
        self._run: Run | None = None

    def __enter__(self) -> Run:
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
        self.host = host if host is not None else socket.gethostname()
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
        fields = self._fields(task_slug, options)
        tracking = Tracking(self, fields, trace_given=options.get("trace_id") is not None)
        tracking.capture = options.get("capture_logs")
        return tracking

    def start(self, task_slug: str, **options: Unpack[AttemptOptions]) -> Run:
        """Start an attempt without a ``with`` block (for framework signals); end it with
        ``run.finish(exc=None, status=None, ...)`` from any thread. Never raises."""
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
            log.warning("taskexec: %s (recording goes on; this is said once)", exc)

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
            if ended_at is not None or run._given_start:
                # Times known after the fact (a framework's own clock): duration from them.
                end = ended_at if ended_at is not None else utcnow()
                duration_ms = max(0.0, (end - run.record.started_at).total_seconds() * 1000.0)
            else:
                duration_ms = (time.perf_counter() - run._t0) * 1000.0
            run.status = status if status is not None else status_for(exc)
            error: dict[str, Any] = {
                "error_type": error_type,
                "error_message": error_message,
                "stack_trace": stack_trace,
            }
            if exc is not None:
                error = {
                    "error_type": error_type or qualified_type(exc),
                    "error_message": error_message or _message(exc),
                    "stack_trace": stack_trace or format_stack(exc),
                    "stack_hash": stack_hash_from_exception(exc),
                }
            outcome = Outcome(
                status=run.status,
                ended_at=run.record.started_at + timedelta(milliseconds=duration_ms),
                duration_ms=duration_ms,
                memories_retrieved=run.memories_retrieved,
                retrieval_sources=tuple(run.retrieval_sources),
                files_written=tuple(run.files_written),
                # Unchanged attributes are not encoded again: the row keeps those of its start.
                attributes=dict(run.attributes) if run.attributes != run.record.attributes else {},
                content=run.content if run.content != run.record.content else None,
                **error,
            )
            values = rows.encode_outcome(outcome)  # scrubbed once, for the span and the row
            if run._live is not None:
                try:
                    run._live.end(outcome, values)
                except Exception as span_exc:  # tracing must never break the task or its row
                    self._problem("span", span_exc)
            failed = values.get("stack_hash") is not None
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


class _AttemptLogHandler(logging.Handler):
    """Copies log lines to the current attempt when it captures them; never raises."""

    def emit(self, record: logging.LogRecord) -> None:
        run = _CURRENT.get()
        if run is not None and run._logs is not None and record.name != log.name:
            try:
                run._logs.append(self.format(record))
            except Exception:  # noqa: BLE001 - a log line must not break the task
                self.handleError(record)


_HANDLER: _AttemptLogHandler | None = None


def _install_log_handler() -> None:
    """Put the capturing handler on the root logger once (it does nothing for attempts that
    do not capture)."""
    global _HANDLER
    if _HANDLER is None:
        _HANDLER = _AttemptLogHandler(logging.DEBUG)
        _HANDLER.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(_HANDLER)


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
                        log.exception("taskexec: an on_finish callback raised (ignored)")


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
