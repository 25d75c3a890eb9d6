"""arq: every try of every job becomes one row, from the worker's job hooks.

    from taskexec import Recorder
    from taskexec.integrations.arq import connect

    class WorkerSettings:
        functions = [download, resize]
        on_job_start = my_on_job_start        # optional: kept, and called
        redis_settings = RedisSettings(...)

    connect(WorkerSettings, Recorder(os.environ.get("TASKEXEC_DB", "tasks.db")))

``connect`` changes the settings (a class, a dict, or an ``arq.worker.Worker``) in place:

- ``on_job_start`` and ``on_job_end`` become hooks that call the ones you had, then do
  taskexec's part;
- each function (and cron job) is wrapped in a coroutine that keeps its name, timeout and
  ``max_tries``: arq's hooks only get ``ctx`` (``job_id``, ``job_try``, ``enqueue_time``,
  ``score``), neither the function's name nor how the job ended, and the wrapper sees both.

The attempt starts when the function starts (in its task: its log lines can be captured) and
ends in ``on_job_end``, before arq writes the result to redis. ``on_job_end`` tells a timeout
(``asyncio.wait_for`` cancelled the job after its ``timeout``) from a job aborted with
``Job.abort()`` and from a worker shutting down (its own task is being cancelled).

Ids, the same in every worker: ``trace_id`` the job id (arq's are 32 hex digits already; a
custom ``_job_id`` is hashed), ``attempt`` = ``job_try`` (counted in redis by arq),
``span_id`` = ``derive_span_id(job_id, job_try)``, ``retry_of`` the previous try's.
``scheduled_at`` is the job's score: when arq considered it due (its enqueue time, plus
``_defer_by`` / ``_defer_until``, plus the delay of a ``Retry(defer=...)``).

Statuses: success; failed (an exception, ``arq.worker.Retry``); timeout; cancelled (aborted,
or the worker shut down mid-job: arq runs it again). See docs/integrations.md.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from ..db.rows import preview
from ..model import derive_span_id, format_ts, uuid_hex
from ..recorder import Recorder, Run, status_for

log = logging.getLogger("taskexec")

#: The key of taskexec's state in a job's ``ctx`` (private; use ``current_run()`` in a job).
CTX_KEY = "_taskexec"
#: Attribute keys whose values are ids (allow-list them in the scrubber to keep the values).
ID_ATTRIBUTES = ("arq_job_id",)
#: A cancellation this close to the job's timeout (seconds) is the timeout.
_TIMEOUT_SLACK = 0.005
#: arq's default queue (``arq.constants.default_queue_name``), not repeated in every row.
_DEFAULT_QUEUE = "arq:queue"

Hook = Callable[[dict[Any, Any]], Awaitable[Any]]


def span_id_for(job_id: str, job_try: int) -> str:
    """The span id of try ``job_try`` of an arq job id: what every worker computes."""
    return derive_span_id(job_id, job_try)


def trace_id_for(job_id: str) -> str:
    """The trace id of an arq job id: its 32 hex digits (any other id is hashed)."""
    return uuid_hex(job_id) or hashlib.sha256(str(job_id).encode()).hexdigest()[:32]


@dataclasses.dataclass
class _State:
    """One job in this worker, from ``on_job_start`` to ``on_job_end`` (kept in its ctx)."""

    integration: ArqIntegration
    t0: float  # the loop's time at on_job_start, before arq starts the timeout's clock
    run: Run | None = None
    timeout_s: float | None = None
    outcome: str = "running"  # running, returned, raised, cancelled
    exc: BaseException | None = None
    cancelled_at: float | None = None
    result: Any = None


class ArqIntegration:
    """What one ``connect`` call set up: the recorder and options for one worker's jobs."""

    def __init__(
        self,
        settings: Any,
        recorder: Recorder,
        capture_args: bool,
        capture_logs: int,
        queue: str | None,
        job_timeout: float | None,
        max_tries: int | None,
        retry_jobs: bool = True,
    ) -> None:
        self.settings = settings
        self.retry_jobs = retry_jobs
        self.recorder = recorder
        self.capture_args = capture_args
        self.capture_logs = capture_logs
        self.queue = queue
        self.job_timeout = job_timeout
        self.max_tries = max_tries
        self._warned: set[str] = set()

    def _problem(self, where: str, exc: BaseException) -> None:
        if where not in self._warned:
            self._warned.add(where)
            log.warning(
                "taskexec: the arq %s step failed (%r); recording goes on, this is said once",
                where,
                exc,
            )

    # -- the steps ---------------------------------------------------------------------------

    def on_job_start(self, ctx: dict[Any, Any]) -> None:
        try:
            ctx[CTX_KEY] = _State(self, asyncio.get_running_loop().time())
        except Exception as exc:  # noqa: BLE001 - recording never breaks a job
            self._problem("on_job_start", exc)

    def begin(
        self,
        state: _State,
        ctx: dict[Any, Any],
        name: str,
        function: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        """The function starts (in its own task): start the attempt."""
        try:
            job_id = str(ctx.get("job_id"))
            job_try = ctx.get("job_try") or 1
            timeout = getattr(function, "timeout_s", None)
            state.timeout_s = timeout if timeout is not None else self.job_timeout
            max_tries = getattr(function, "max_tries", None) or self.max_tries
            attributes: dict[str, Any] = {}
            trace_id = uuid_hex(job_id)
            if trace_id is None:  # a custom id: the trace id is its hash, keep the id itself
                trace_id = trace_id_for(job_id)
                attributes["arq_job_id"] = job_id
            if self.queue and self.queue != _DEFAULT_QUEUE:
                attributes["queue"] = self.queue
            if max_tries:
                attributes["max_tries"] = max_tries
            if hasattr(function, "next_run"):  # a CronJob
                attributes["cron"] = True
            scheduled = _from_ms(ctx.get("score"))
            enqueued = ctx.get("enqueue_time")
            if isinstance(enqueued, datetime) and scheduled is not None:
                enqueued = _aware(enqueued)
                if abs((scheduled - enqueued).total_seconds()) >= 0.001:
                    attributes["enqueued_at"] = format_ts(enqueued)
            if self.capture_args:
                attributes["args"] = preview(list(args))
                if kwargs:
                    attributes["kwargs"] = preview(dict(kwargs))
            options: dict[str, Any] = {
                "task_id": name,
                "trace_id": trace_id,
                "span_id": span_id_for(job_id, job_try),
                "attempt": job_try,
                "retry_of": span_id_for(job_id, job_try - 1) if job_try > 1 else None,
                "scheduled_at": scheduled,
                "attributes": attributes,
            }
            if self.capture_logs:
                options["capture_logs"] = self.capture_logs
            state.run = self.recorder.start(name, **options)
        except Exception as exc:  # noqa: BLE001 - recording never breaks a job
            self._problem("start", exc)

    def on_job_end(self, ctx: dict[Any, Any], hook_error: BaseException | None = None) -> None:
        """The job ended (or one of your hooks raised): end the attempt."""
        state = ctx.pop(CTX_KEY, None) if isinstance(ctx, dict) else None
        if not isinstance(state, _State) or state.run is None:
            return
        try:
            self._finish(state, hook_error)
        except Exception as exc:  # noqa: BLE001 - recording never breaks a job
            self._problem("on_job_end", exc)

    def _finish(self, state: _State, hook_error: BaseException | None) -> None:
        run = state.run
        assert run is not None
        if state.outcome == "returned":
            if hook_error is not None:
                run.set(hook_failed=True)
            if self.capture_args:
                run.record_result(state.result)
            run.finish(status="success")
        elif state.outcome == "raised" and state.exc is not None:
            exc = state.exc
            if type(exc).__name__ == "Retry" and type(exc).__module__.startswith("arq"):
                defer = getattr(exc, "defer_score", None)
                if defer:
                    run.set(retry_defer_s=defer / 1000)
            run.finish(exc, status=status_for(exc))
        elif state.outcome == "cancelled":
            self._cancelled(run, state)
        else:  # not seen to end (cannot happen once arq calls on_job_end): say so
            run.finish(status="cancelled", error_message="ended without the function returning")

    def _cancelled(self, run: Run, state: _State) -> None:
        task = asyncio.current_task()
        elapsed = (state.cancelled_at or 0.0) - state.t0
        if task is not None and task.cancelling():  # arq's run_job itself: a shutdown
            run.finish(
                state.exc,
                status="cancelled",
                error_type="asyncio.CancelledError",
                error_message="cancelled: the worker is shutting down"
                + (" (arq runs the job again)" if self.retry_jobs else ""),
            )
        elif state.timeout_s and elapsed >= state.timeout_s - _TIMEOUT_SLACK:
            run.finish(
                state.exc,
                status="timeout",
                error_type="TimeoutError",
                error_message=f"the job ran longer than its timeout ({state.timeout_s:g} s)",
            )
        else:
            run.finish(
                state.exc,
                status="cancelled",
                error_type="asyncio.CancelledError",
                error_message="cancelled: aborted (Job.abort)",
            )

    # -- what connect installs ---------------------------------------------------------------

    def wrap(self, name: str, function: Any, coroutine: Callable[..., Awaitable[Any]]) -> Any:
        """The coroutine function arq runs instead of ``coroutine``: same name, same call."""

        @functools.wraps(coroutine)
        async def job(ctx: Any, *args: Any, **kwargs: Any) -> Any:
            state = ctx.get(CTX_KEY) if isinstance(ctx, dict) else None
            if not isinstance(state, _State):  # run without our hooks: not recorded
                return await coroutine(ctx, *args, **kwargs)
            state.integration.begin(state, ctx, name, function, args, kwargs)
            try:
                result = await coroutine(ctx, *args, **kwargs)
            except asyncio.CancelledError as exc:
                state.outcome, state.exc = "cancelled", exc
                state.cancelled_at = asyncio.get_running_loop().time()
                raise
            except BaseException as exc:
                state.outcome, state.exc = "raised", exc
                raise
            state.outcome, state.result = "returned", result
            return result

        job.__taskexec_arq__ = coroutine  # type: ignore[attr-defined]
        return job


def _from_ms(value: Any) -> datetime | None:
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        return None
    try:
        return datetime.fromtimestamp(value / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _aware(value: datetime) -> datetime:
    return value if value.utcoffset() is not None else value.replace(tzinfo=UTC)


def _chain_start(integration: ArqIntegration, theirs: Hook | None) -> Hook:
    async def on_job_start(ctx: dict[Any, Any]) -> None:
        if theirs is not None:
            await theirs(ctx)
        # Last, so the clock starts with arq's (its timeout counts from right after this).
        integration.on_job_start(ctx)

    on_job_start.__taskexec_arq__ = (integration, theirs)  # type: ignore[attr-defined]
    return on_job_start


def _chain_end(integration: ArqIntegration, theirs: Hook | None) -> Hook:
    async def on_job_end(ctx: dict[Any, Any]) -> None:
        try:
            if theirs is not None:
                await theirs(ctx)
        except BaseException as exc:
            integration.on_job_end(ctx, hook_error=exc)
            raise
        integration.on_job_end(ctx)

    on_job_end.__taskexec_arq__ = (integration, theirs)  # type: ignore[attr-defined]
    return on_job_end


class _Settings:
    """Read and write worker settings given as a class, a dict or a ``Worker``."""

    def __init__(self, target: Any) -> None:
        from arq.worker import Worker

        self.target = target
        self.is_dict = isinstance(target, dict)
        self.is_worker = isinstance(target, Worker)

    def get(self, name: str, default: Any = None) -> Any:
        if self.is_dict:
            return self.target.get(name, default)
        if isinstance(self.target, type):  # arq reads the class's own __dict__
            return vars(self.target).get(name, default)
        return getattr(self.target, name, default)

    def set(self, name: str, value: Any) -> None:
        if self.is_dict:
            self.target[name] = value
        else:
            setattr(self.target, name, value)


def _wrapped(integration: ArqIntegration, entry: Any) -> Any:
    """A Function / CronJob whose coroutine is wrapped (once)."""
    from arq.worker import func

    if not hasattr(entry, "next_run"):  # a coroutine, an import path, a Function
        entry = func(entry)
    coroutine = entry.coroutine
    original = getattr(coroutine, "__taskexec_arq__", None)
    if original is not None:
        coroutine = original
    return dataclasses.replace(entry, coroutine=integration.wrap(entry.name, entry, coroutine))


def connect(
    worker_settings: Any,
    recorder: Recorder,
    *,
    capture_args: bool = False,
    capture_logs: int = 0,
) -> ArqIntegration:
    """Record every try of every job an arq worker runs with these ``worker_settings``.

    ``worker_settings`` is what you give ``arq`` / ``run_worker`` (a class or a dict), or a
    ``Worker`` already made; it is changed in place (hooks chained, functions wrapped), so
    call ``connect`` before the worker is made from it: in the settings module, at import.
    Idempotent: a second call re-wraps nothing and keeps your own hooks once.
    ``capture_args`` keeps each try's arguments and return value in ``attributes`` (cut to
    2,000 characters and scrubbed); ``capture_logs=N`` its last N log lines.
    """
    from arq.constants import default_queue_name
    from arq.utils import to_seconds

    settings = _Settings(worker_settings)
    start_hook = settings.get("on_job_start")
    end_hook = settings.get("on_job_end")
    previous = getattr(start_hook, "__taskexec_arq__", None)
    if previous is not None:  # connected before: keep the user's hooks, not ours
        integration, theirs_start = previous
        theirs_end = (getattr(end_hook, "__taskexec_arq__", None) or (None, end_hook))[1]
        integration.recorder = recorder
        integration.capture_args = capture_args
        integration.capture_logs = capture_logs
    else:
        theirs_start, theirs_end = start_hook, end_hook
        if settings.is_worker:
            queue = worker_settings.queue_name
            job_timeout = worker_settings.job_timeout_s
            max_tries = worker_settings.max_tries
            retry_jobs = worker_settings.retry_jobs
        else:  # arq's defaults (Worker.__init__) where the settings say nothing
            queue = settings.get("queue_name") or default_queue_name
            job_timeout = to_seconds(settings.get("job_timeout", 300))
            max_tries = settings.get("max_tries", 5)
            retry_jobs = settings.get("retry_jobs", True)
        integration = ArqIntegration(
            worker_settings,
            recorder,
            capture_args,
            capture_logs,
            queue,
            job_timeout,
            max_tries,
            bool(retry_jobs),
        )
    settings.set("on_job_start", _chain_start(integration, theirs_start))
    settings.set("on_job_end", _chain_end(integration, theirs_end))
    if settings.is_worker:
        functions = worker_settings.functions
        for name, entry in list(functions.items()):
            functions[name] = _wrapped(integration, entry)
    else:
        functions = settings.get("functions") or ()
        settings.set("functions", [_wrapped(integration, entry) for entry in functions])
        crons = settings.get("cron_jobs")
        if crons:
            settings.set("cron_jobs", [_wrapped(integration, entry) for entry in crons])
    return integration


__all__ = [
    "CTX_KEY",
    "ID_ATTRIBUTES",
    "ArqIntegration",
    "connect",
    "span_id_for",
    "trace_id_for",
]
