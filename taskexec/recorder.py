"""The user-facing recording API: ``Recorder.track`` (sync and async) and ``@Recorder.task``.

Each attempt is written as ``running`` when it starts and updated when it ends, so a worker that
dies mid-task leaves a row for ``sweep`` to mark abandoned. Retries use tenacity (well kept,
sync and async, composable wait strategies) instead of a hand-rolled loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import logging
import os
import socket
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from tenacity import (
    AsyncRetrying,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)
from tenacity.wait import wait_base

from . import otel_live
from .errors import InvalidRecord
from .model import TaskExecution, new_span_id, new_trace_id, utcnow
from .stackhash import format_stack, qualified_type, stack_hash_from_exception
from .store import Store

log = logging.getLogger("taskexec")
P = ParamSpec("P")
R = TypeVar("R")


def status_for(exc: BaseException | None) -> str:
    """Map how a body ended to a status: timeouts and cancellations are not plain failures."""
    if exc is None:
        return "success"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit | GeneratorExit):
        return "cancelled"
    return "failed"


class Run:
    """One attempt in progress: lets the body attach retrieval metadata, files, attributes."""

    def __init__(self, record: TaskExecution) -> None:
        self.record = record
        self.memories_retrieved: int | None = None
        self.retrieval_sources: list[str] = []
        self.files_written: list[str] = []
        self.attributes: dict[str, Any] = {}
        self.content: str | None = None
        self.status: str = "running"
        self._t0 = time.perf_counter()
        self._live: otel_live.LiveSpan | None = None  # the OpenTelemetry span, when tracing

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
            raise InvalidRecord("memories_retrieved", f"must be an integer >= 0, got {count!r}")
        self.memories_retrieved = (self.memories_retrieved or 0) + count
        for source in sources:
            if source not in self.retrieval_sources:
                self.retrieval_sources.append(str(source))

    def wrote(self, *paths: str | os.PathLike[str]) -> None:
        """Add files to the attempt's I/O manifest."""
        self.files_written.extend(os.fspath(p) for p in paths)

    def set(self, **attributes: Any) -> None:
        """Attach extra attributes (JSON-able) to the attempt."""
        self.attributes.update(attributes)

    def summary(self, text: str) -> None:
        """A one-paragraph summary of what the attempt did; it is full-text searchable."""
        self.content = text


class _Tracking:
    """Context manager (sync and async) that writes the running row and then the outcome."""

    def __init__(self, recorder: Recorder, fields: dict[str, Any], trace_given: bool) -> None:
        self._recorder, self._fields, self._trace_given = recorder, fields, trace_given
        self.span_id: str = fields["span_id"]
        self.trace_id: str = fields["trace_id"]
        self._run: Run | None = None

    def __enter__(self) -> Run:
        record = TaskExecution(started_at=utcnow(), pid=os.getpid(), **self._fields)
        live = otel_live.start(record, self._trace_given)  # None unless OpenTelemetry is set up
        if live is not None:  # the span chose the ids; the row takes them
            record = dataclasses.replace(
                record,
                trace_id=live.trace_id,
                span_id=live.span_id,
                parent_span_id=live.parent_span_id,
            )
            self.span_id, self.trace_id = live.span_id, live.trace_id
        try:
            self._run = self._recorder._begin(record)
        except BaseException:
            if live is not None:
                live.discard()
            raise
        self._run._live = live
        return self._run

    def __exit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._run is not None
        self._recorder._end(self._run, exc)

    async def __aenter__(self) -> Run:
        return self.__enter__()

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(et, exc, tb)


class Recorder:
    """Records task executions into one SQLite file (created and migrated on first use)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        host: str | None = None,
        strict: bool = False,
        background_checkpoint: bool = True,
    ) -> None:
        self.store = Store(path, background_checkpoint=background_checkpoint)
        self.host = host if host is not None else socket.gethostname()
        self.strict = strict

    def close(self) -> None:
        """Flush and close the database (also runs at interpreter exit via the store)."""
        self.store.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def track(
        self,
        task_slug: str,
        *,
        task_id: str | None = None,
        trace_id: str | None = None,
        parent_span_id: str | None = None,
        attempt: int = 1,
        retry_of: str | None = None,
        scheduled_at: datetime | None = None,
        attributes: Mapping[str, Any] | None = None,
        parents: Sequence[Any] = (),
        causes: Sequence[Any] = (),
        content: str | None = None,
    ) -> _Tracking:
        """Track one attempt: ``with rec.track("slug") as run:`` or ``async with``.

        An exception in the body marks the attempt failed (timeout/cancelled for those) and is
        re-raised. Pass ``trace_id``/``attempt``/``retry_of`` to continue a logical run, and
        ``scheduled_at`` so a later backfill of the same run gets the same idempotency key.
        """
        fields = {
            "task_slug": task_slug,
            "task_id": task_id or task_slug,
            "status": "running",
            "trace_id": trace_id or new_trace_id(),
            "span_id": new_span_id(),
            "parent_span_id": parent_span_id,
            "attempt": attempt,
            "retry_of": retry_of,
            "scheduled_at": scheduled_at,
            "parents": tuple(parents),
            "causes": tuple(causes),
            "host": self.host,
            "content": content,
            "attributes": dict(attributes or {}),
        }
        return _Tracking(self, fields, trace_given=trace_id is not None)

    def _begin(self, record: TaskExecution) -> Run:
        run = Run(record)
        run.attributes.update(record.attributes)
        run.content = record.content
        try:
            self.store.start(record)
        except sqlite3.Error:
            if self.strict:
                raise
            log.exception("taskexec: could not record the start of %s", record.task_slug)
        return run

    def _end(self, run: Run, exc: BaseException | None) -> None:
        duration_ms = (time.perf_counter() - run._t0) * 1000.0
        run.status = status_for(exc)
        error: dict[str, Any] = {}
        if exc is not None:
            error = {
                "error_type": qualified_type(exc),
                "error_message": str(exc) or None,
                "stack_trace": format_stack(exc),
                "stack_hash": stack_hash_from_exception(exc),
            }
        if run._live is not None:
            try:
                run._live.end(run, duration_ms, error)
            except Exception:  # tracing must never break the task or its row
                log.exception("taskexec: could not end the OpenTelemetry span of %s", run.span_id)
        try:
            self.store.finish(
                run.span_id,
                status=run.status,
                ended_at=run.record.started_at + timedelta(milliseconds=duration_ms),
                duration_ms=duration_ms,
                memories_retrieved=run.memories_retrieved,
                retrieval_sources=run.retrieval_sources,
                files_written=run.files_written,
                attributes=run.attributes or None,
                content=run.content if run.content != run.record.content else None,
                **error,
            )
        except sqlite3.Error:
            if self.strict:
                raise
            log.exception("taskexec: could not record the end of %s", run.record.task_slug)

    def task(
        self,
        task_slug: str,
        *,
        task_id: str | None = None,
        retries: int = 0,
        backoff: float | wait_base = 1.0,
        max_backoff: float = 60.0,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
        **track_kwargs: Any,
    ) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Decorate a sync or async function so each call is tracked, retrying on failure.

        ``retries=3`` allows up to 3 more attempts after the first; all attempts share one
        trace_id, count ``attempt`` 1, 2, 3… and point ``retry_of`` at the previous span.
        ``backoff`` is the first delay in seconds (exponential with jitter up to ``max_backoff``)
        or any tenacity wait strategy.
        """
        if type(retries) is not int or retries < 0:
            raise InvalidRecord("retries", f"must be an integer >= 0, got {retries!r}")
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
                                chain.result = await afn(*args, **kwargs)
                                del run
                    return chain.result

                return async_wrapper  # type: ignore[return-value]

            @functools.wraps(fn)
            def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
                chain = _Chain(self, task_slug, chain_kwargs)
                for attempt in Retrying(**policy):
                    with attempt, chain.next():
                        chain.result = fn(*args, **kwargs)
                return chain.result

            return wrapper

        return decorate

    def sweep(self, older_than: float = 3600.0) -> int:
        """Mark running rows older than ``older_than`` seconds as abandoned; returns how many."""
        return self.store.sweep(older_than)


class _Chain:
    """The attempts of one logical run: shared trace id, counting attempts, linking retry_of."""

    def __init__(self, recorder: Recorder, task_slug: str, kwargs: dict[str, Any]) -> None:
        self.recorder, self.task_slug, self.kwargs = recorder, task_slug, dict(kwargs)
        self.trace_id: str | None = self.kwargs.pop("trace_id", None)
        self.attempt = 0
        self.previous: _Tracking | None = None
        self.result: Any = None

    def next(self) -> _Tracking:
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
