"""RQ: every job attempt becomes one row, recorded by the worker that runs it.

    TASKEXEC_DB=/var/lib/proj/tasks.db rq worker --worker-class taskexec.integrations.rq.Worker

or in code (``SimpleWorker`` and ``SpawnWorker`` too; ``RecordingMixin`` for your own class)::

    from taskexec import Recorder
    from taskexec.integrations.rq import Worker, connect

    connect(Recorder("tasks.db"), capture_args=True)   # optional: else $TASKEXEC_DB
    Worker(["default"], connection=redis).work()

    connect(Recorder("tasks.db"), worker=existing_worker)  # make any worker instance record

RQ runs each job in a forked *work horse* that ends with ``os._exit``. The worker process
starts the attempt's ``Run`` just before the fork (its own writer thread writes the row, so a
horse never opens the database) and finishes it when the horse has ended: with the outcome the
horse sent back over a pipe (status, exception text, result, log lines, what the job set on
``current_run()``), or, when the horse sent none, with what the worker saw: the horse died
(killed, out of memory: ``abandoned``), was stopped (the stop-job command, a cold shutdown:
``cancelled``) or was killed by RQ's monitor past the job's timeout (``timeout``).
``SimpleWorker`` runs jobs in the worker process and records them there.

Ids (computed from the job, so every run of a job id agrees with the one before):

- ``trace_id``: the job id (a UUID: its 32 hex digits; an id of your own is hashed);
- ``attempt``: counted by taskexec in ``job.meta["taskexec"]`` (written with the worker's own
  bookkeeping when the attempt starts): 1, then one more for every run of the same job id, which
  is RQ's retries (``Retry(max=...)`` and a returned ``Retry``) and ``rq requeue``;
- ``span_id``: ``span_id_for(job_id, attempt)`` = ``derive_span_id(job_id, attempt)``;
  ``retry_of``: ``span_id_for(job_id, attempt - 1)``. A repeated job (``Repeat``) starts again
  at attempt 1 and its span ids also count the repetition.

``scheduled_at``: a retry's due time (its interval); a job scheduled with ``enqueue_at`` /
``enqueue_in`` through ``taskexec.integrations.rq.Queue``: the exact due time; through a plain
``rq.Queue``: when RQ's scheduler moved it to the queue (RQ keeps due times to the whole
second and polls every second: within about a second of the due time). See
docs/integrations.md.

This module imports RQ only when one of its classes is first used (``Worker``, ``SimpleWorker``,
``SpawnWorker``, ``Queue`` are made on first access).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import logging
import os
import signal
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..config import default_db
from ..db.rows import preview
from ..model import derive_span_id, format_ts, parse_ts, utcnow, uuid_hex
from ..recorder import Recorder, Run, status_for
from ..stackhash import format_stack, qualified_type

if TYPE_CHECKING:
    from rq.worker import BaseWorker as _MixinBase
else:
    _MixinBase = object

log = logging.getLogger("taskexec")

#: ``job.meta`` key holding taskexec's bookkeeping: ``attempt`` (this run's number),
#: ``repeat`` (repetitions of a ``Repeat`` job so far), ``scheduled_at`` (this run's due time),
#: ``due`` (the next run's due time, set when RQ schedules a retry).
META_KEY = "taskexec"
#: Attribute keys whose values are ids (RQ's job ids are UUIDs, which the scrubber replaces with
#: ``<uuid>`` unless these keys are allow-listed).
ID_ATTRIBUTES = ("rq_job_id",)
#: Environment variables read when no ``connect`` call chose the options (the ``rq`` CLI):
#: ``1`` keeps each job's arguments and return value; ``N`` keeps its last N log lines.
CAPTURE_ARGS_ENV = "TASKEXEC_CAPTURE_ARGS"
CAPTURE_LOGS_ENV = "TASKEXEC_CAPTURE_LOGS"
#: A job first run this long after it was created, and not a dependent, was scheduled: its
#: ``enqueued_at`` (when RQ's scheduler moved it to the queue) becomes ``scheduled_at``.
SCHEDULED_GAP = timedelta(seconds=0.5)


def span_id_for(job_id: str, attempt: int, repeat: int = 0) -> str:
    """The span id of attempt ``attempt`` of an RQ job (of repetition ``repeat`` of a repeated
    job): what the worker and its work horse both compute."""
    if repeat:
        return derive_span_id(job_id, attempt, "repeat", repeat)
    return derive_span_id(job_id, attempt)


def trace_id_for(job_id: str) -> str:
    """The trace id of a job: the 32 hex digits of its id when that is a UUID (RQ's own ids
    are), else the first 32 hex digits of the id's SHA-256."""
    return uuid_hex(job_id) or hashlib.sha256(str(job_id).encode()).hexdigest()[:32]


@dataclass
class Attempt:
    """What every process computes for one run of a job."""

    job_id: str
    attempt: int
    repeat: int
    scheduled_at: datetime | None

    @property
    def span_id(self) -> str:
        return span_id_for(self.job_id, self.attempt, self.repeat)

    @property
    def retry_of(self) -> str | None:
        if self.attempt <= 1:
            return None
        return span_id_for(self.job_id, self.attempt - 1, self.repeat)


class RQIntegration:
    """The recorder and options of the recording workers (one per ``connect`` call, or the
    default one made from ``$TASKEXEC_DB`` and the environment)."""

    def __init__(
        self, recorder: Recorder | None = None, *, capture_args: bool = False, capture_logs: int = 0
    ) -> None:
        self._recorder = recorder
        self.capture_args = capture_args
        self.capture_logs = capture_logs

    @property
    def recorder(self) -> Recorder:
        """The recorder (made from ``$TASKEXEC_DB``, default ``taskexec.db``, on first use)."""
        if self._recorder is None:
            self._recorder = Recorder(default_db())
        return self._recorder

    # -- ids and bookkeeping -----------------------------------------------------------------

    def prepare(self, job: Any) -> Attempt:
        """In the worker process, before the run: count the attempt in ``job.meta`` (the work
        horse inherits it; the worker writes it with its own bookkeeping)."""
        state = _state(job)
        previous = state.get("attempt")
        if type(previous) is int and previous >= 0:
            attempt = previous + 1
        else:  # never run under taskexec: count RQ's own returned-Retry runs, if any
            attempt = 1 + (getattr(job, "number_of_retries", None) or 0)
        repeat = state.get("repeat") if type(state.get("repeat")) is int else 0
        scheduled = _when(state.get("due"))
        if scheduled is None and attempt == 1:
            scheduled = _scheduled_by_rq(job)
        new: dict[str, Any] = {"attempt": attempt}
        if repeat:
            new["repeat"] = repeat
        if scheduled is not None:
            new["scheduled_at"] = format_ts(scheduled)
        _set_state(job, new)
        return Attempt(str(job.id), attempt, repeat or 0, scheduled)

    def attempt_of(self, job: Any) -> Attempt:
        """The attempt the worker prepared (read by the work horse, which may be a spawned
        process that fetched the job again)."""
        state = _state(job)
        attempt = state.get("attempt")
        if type(attempt) is not int or attempt < 1:
            return self.prepare(job)
        repeat = state.get("repeat")
        return Attempt(
            str(job.id),
            attempt,
            repeat if type(repeat) is int else 0,
            _when(state.get("scheduled_at")),
        )

    def options(self, worker: Any, job: Any, attempt: Attempt) -> dict[str, Any]:
        """``Recorder.start`` options for this attempt. The Recorder keeps no log lines: the
        integration keeps the job's own (``_LogTail``), in the process that runs it."""
        attributes: dict[str, Any] = {
            "rq_job_id": str(job.id),
            "queue": getattr(job, "origin", None) or None,
            "worker": getattr(worker, "name", None),
        }
        if attempt.repeat:
            attributes["rq_repeat"] = attempt.repeat
        if self.capture_args:  # in the running row: kept when the worker closes it
            with contextlib.suppress(Exception):  # arguments that cannot be loaded
                attributes["args"] = preview(list(job.args or ()))
                if job.kwargs:
                    attributes["kwargs"] = preview(dict(job.kwargs))
        options: dict[str, Any] = {
            "task_id": _name(job),
            "trace_id": trace_id_for(str(job.id)),
            "span_id": attempt.span_id,
            "attempt": attempt.attempt,
            "retry_of": attempt.retry_of,
            "scheduled_at": attempt.scheduled_at,
            "attributes": {k: v for k, v in attributes.items() if v is not None},
            "capture_logs": 0,
        }
        return options

    @property
    def log_lines(self) -> int:
        """How many of a job's last log lines to keep (this integration's, else the
        Recorder's ``capture_logs``)."""
        return self.capture_logs or self.recorder.capture_logs

    def start(self, worker: Any, job: Any) -> Run:
        attempt = self.attempt_of(job)
        return self.recorder.start(_name(job), **self.options(worker, job, attempt))


# -- reading and writing job.meta --------------------------------------------------------------


def _state(job: Any) -> dict[str, Any]:
    meta = getattr(job, "meta", None)
    state = meta.get(META_KEY) if isinstance(meta, dict) else None
    return state if isinstance(state, dict) else {}


def _set_state(job: Any, state: dict[str, Any]) -> None:
    meta = getattr(job, "meta", None)
    if isinstance(meta, dict) and getattr(job, "_unreadable_meta", None) is None:
        meta[META_KEY] = state


def _meta_bytes(job: Any) -> bytes | None:
    """``job.meta`` as RQ stores it, or None when this process could not read the stored meta
    (it is then left alone)."""
    if getattr(job, "_unreadable_meta", None) is not None:
        return None
    data: bytes = job.serializer.dumps(job.meta)
    return data


def _remember_due(job: Any, when: Any) -> None:
    """Keep a scheduled run's due time in ``job.meta`` (saved by RQ with the job)."""
    due = _aware(when)
    if due is not None:
        _set_state(job, {**_state(job), "due": format_ts(due)})


def _aware(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    if value.utcoffset() is None:  # RQ reads a naive time as the machine's local time
        value = value.astimezone()
    return value.astimezone(UTC)


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_ts(value)
    except Exception:  # noqa: BLE001 - a hand-edited meta must not break the worker
        return None


def _scheduled_by_rq(job: Any) -> datetime | None:
    """A first run that RQ's scheduler released (``enqueue_at``/``enqueue_in`` through a plain
    ``rq.Queue``, a ``Repeat`` interval): when it was moved to the queue."""
    created, enqueued = _aware(job.created_at), _aware(job.enqueued_at)
    if created is None or enqueued is None or getattr(job, "_dependency_ids", None):
        return None
    return enqueued if enqueued - created >= SCHEDULED_GAP else None


def _name(job: Any) -> str:
    try:
        name = job.func_name
    except Exception:  # noqa: BLE001 - a job whose data cannot be loaded still gets a row
        name = None
    return str(name) if name else "rq.unknown"


def _status(exc: BaseException | None) -> str:
    """RQ's exceptions mapped to a status (by name: no import needed)."""
    name = type(exc).__name__ if exc is not None else ""
    if name in ("JobTimeoutException", "HorseMonitorTimeoutException"):
        return "timeout"
    if name in ("ShutDownImminentException", "StopRequested"):
        return "cancelled"
    return status_for(exc)


def _signal_text(ret_val: Any) -> str:
    """How a work horse ended, from ``os.wait4``'s status."""
    if not isinstance(ret_val, int):
        return "it ended unexpectedly"
    if os.WIFSIGNALED(ret_val):
        number = os.WTERMSIG(ret_val)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = str(number)
        return f"it was killed by signal {number} ({name})"
    return f"it exited with status {os.WEXITSTATUS(ret_val)}"


_WARNED: set[str] = set()


def _problem(where: str, exc: BaseException) -> None:
    """Recording never breaks a worker: one warning per hook, never a traceback."""
    if where not in _WARNED:
        _WARNED.add(where)
        log.warning(
            "taskexec: the RQ %s hook failed (%r); recording goes on, this is said once",
            where,
            exc,
        )


# -- the work horse's side of a forked attempt ----------------------------------------------------

#: Environment variable naming the pipe a spawned work horse writes its outcome to.
OUTCOME_FD_ENV = "TASKEXEC_RQ_OUTCOME_FD"
#: The most a work horse writes to its pipe (a pipe holds 64 KiB; the worker reads it only
#: after the horse ended, so the horse must never wait on it).
_PAYLOAD_LIMIT = 60_000


class _HorseOutcome:
    """In a work horse: how the attempt ended, collected by the same hooks that finish a
    ``Run`` in a worker that runs jobs itself, and written to the worker over a pipe as the
    horse ends. The horse never opens the database."""

    def __init__(self, run: Run | None, capture_logs: int) -> None:
        self.run = run  # the horse's copy of the worker's Run: what the job set on it counts
        self.values: dict[str, Any] | None = None
        self.extra: dict[str, Any] = {}
        self.tail = _LogTail(capture_logs) if capture_logs else None

    def body_done(self) -> None:
        """The job's body has ended: RQ's bookkeeping that follows is not the job's."""
        if self.tail is not None:
            self.tail.stop()

    def finish(
        self,
        exc: BaseException | None = None,
        *,
        status: str | None = None,
        error_type: str | None = None,
        error_message: str | None = None,
        stack_trace: str | None = None,
    ) -> None:
        if self.values is not None:
            return
        if exc is not None:
            error_type = error_type or qualified_type(exc)
            error_message = error_message or _message(exc)
            stack_trace = stack_trace or format_stack(exc)
        self.values = {
            "status": status or _status(exc),
            "error_type": error_type,
            "error_message": error_message,
            "stack_trace": stack_trace,
        }

    def record_result(self, value: Any) -> None:
        self.extra["result"] = preview(value)

    def send(self, fd: int, ok: bool) -> None:
        """Write the outcome to the worker (never blocking), then close the pipe."""
        self.body_done()
        if self.values is None:
            self.finish(status="success" if ok else "failed")
        payload: dict[str, Any] = {**(self.values or {})}
        attributes = dict(self.run.attributes) if self.run is not None else {}
        attributes.update(self.extra)
        if self.tail is not None and self.tail.lines:
            attributes["log_tail"] = list(self.tail.lines)
        payload["attributes"] = attributes
        run = self.run
        if run is not None:
            if run.content != run.record.content:
                payload["content"] = run.content
            if run.memories_retrieved is not None:
                payload["retrieved"] = [run.memories_retrieved, run.retrieval_sources]
            if run.files_written:
                payload["files"] = run.files_written
        data = _pack(payload)
        try:
            os.set_blocking(fd, False)
            os.write(fd, data)
        finally:
            os.close(fd)


class _LogTail(logging.Handler):
    """The job's last log lines, as ``capture_logs`` keeps them: any logger, as records reach
    the root logger from the thread running the job, while its body runs; RQ's own loggers
    (``rq.*``) and taskexec's are left out."""

    def __init__(self, size: int) -> None:
        super().__init__(logging.DEBUG)
        self.lines: collections.deque[str] = collections.deque(maxlen=size)
        self.thread = threading.get_ident()
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        name = record.name
        if record.thread != self.thread or name.split(".", 1)[0] in ("rq", "taskexec"):
            return
        try:
            self.lines.append(self.format(record))
        except Exception:  # noqa: BLE001 - a log line must not break the job
            self.handleError(record)

    def stop(self) -> None:
        logging.getLogger().removeHandler(self)


class _HereOutcome:
    """In a worker that runs the job itself (``SimpleWorker``): ends the attempt's ``Run``,
    with the job's log lines."""

    def __init__(self, run: Run, capture_logs: int) -> None:
        self.run = run
        self.tail = _LogTail(capture_logs) if capture_logs else None

    def body_done(self) -> None:
        if self.tail is not None:
            self.tail.stop()

    def record_result(self, value: Any) -> None:
        self.run.record_result(value)

    def finish(
        self,
        exc: BaseException | None = None,
        *,
        status: str | None = None,
        error_type: str | None = None,
        error_message: str | None = None,
        stack_trace: str | None = None,
    ) -> None:
        self.body_done()
        if self.tail is not None and self.tail.lines and self.run.status == "running":
            self.run.set(log_tail=list(self.tail.lines))
        self.run.finish(
            exc,
            status=status,
            error_type=error_type,
            error_message=error_message,
            stack_trace=stack_trace,
        )


def _pack(payload: dict[str, Any]) -> bytes:
    """The payload as JSON within the pipe's limit: a huge stack or attribute set is cut."""
    data = json.dumps(payload, default=str).encode()
    if len(data) <= _PAYLOAD_LIMIT:
        return data
    stack = payload.get("stack_trace") or ""
    payload["stack_trace"] = ("...\n" + stack[-8000:]) if len(stack) > 8000 else stack
    payload["attributes"] = {
        k: v for k, v in payload.get("attributes", {}).items() if k in ("args", "kwargs")
    }
    payload["attributes"]["taskexec_truncated"] = True
    data = json.dumps(payload, default=str).encode()
    if len(data) <= _PAYLOAD_LIMIT:
        return data
    keep = {k: payload.get(k) for k in ("status", "error_type")}
    keep["error_message"] = str(payload.get("error_message") or "")[:2000]
    return json.dumps(keep, default=str).encode()


def _read_all(fd: int) -> bytes:
    os.set_blocking(fd, False)
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _message(exc: BaseException) -> str | None:
    try:
        return str(exc) or None
    except Exception:  # noqa: BLE001 - a broken __str__ must not lose the outcome
        return f"<{type(exc).__name__} with an unprintable message>"


# -- the worker classes --------------------------------------------------------------------------


class RecordingMixin(_MixinBase):
    """Makes an RQ worker class record every job attempt: ``class MyWorker(RecordingMixin,
    HerokuWorker)``. Everything RQ does is unchanged; each hook only adds a record.

    A worker that forks a work horse per job (``rq.Worker`` and its subclasses) starts the
    attempt's ``Run`` itself, just before the fork, and finishes it when the horse has ended:
    with what the horse reported over a pipe, or, when the horse died or was stopped, with what
    the worker saw. A worker that runs jobs itself (``SimpleWorker``) records them in place.
    """

    #: Set by ``connect(recorder, worker=...)``; else the module's default integration.
    _taskexec: RQIntegration | None = None
    _te_attempt: Attempt | None = None  # the attempt this worker process is running
    _te_pending: Any = None  # a job whose meta is to be written with prepare_execution's writes
    _te_run: Run | None = None  # the attempt's Run, in the worker process
    _te_pipe: tuple[int, int] | None = None  # (read, write): the horse's outcome
    _te_seen: tuple[str, str] | None = None  # (status, message) the worker saw: horse died
    _te_horse_status: Any = None  # os.wait4's status of a work horse that died
    _te_horse: _HorseOutcome | None = None  # in a work horse: its outcome so far
    _te_here: _HereOutcome | None = None  # a job this process runs itself (SimpleWorker)
    _te_exc: BaseException | None = None  # the exception handle_exception was given

    @property
    def taskexec(self) -> RQIntegration:
        return self._taskexec or _default()

    def _te_forks(self) -> bool:
        from rq.worker import Worker as ForkingWorker

        return isinstance(self, ForkingWorker)

    # The worker process -----------------------------------------------------------------

    def execute_job(self, job: Any, queue: Any) -> Any:
        try:
            integration = self.taskexec
            self._te_attempt = attempt = integration.prepare(job)
            self._te_pending = job
            self._te_seen = self._te_horse_status = None
            if self._te_forks():
                self._te_run = integration.recorder.start(
                    _name(job), **integration.options(self, job, attempt)
                )
                self._te_pipe = os.pipe()
        except Exception as exc:  # noqa: BLE001
            _problem("execute_job", exc)
        ended = False
        try:
            result = super().execute_job(job, queue)
            ended = True
            return result
        finally:
            try:
                self._te_close(job, interrupted=not ended)
            except Exception as exc:  # noqa: BLE001
                _problem("execute_job", exc)
            self._te_attempt = self._te_pending = self._te_run = self._te_pipe = None

    def _te_close(self, job: Any, interrupted: bool) -> None:
        """The horse has ended (or the worker is leaving): finish the attempt's Run."""
        run, pipe = self._te_run, self._te_pipe
        payload = None
        if pipe is not None:
            try:
                data = _read_all(pipe[0])
            finally:
                for fd in pipe:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            if data:
                with contextlib.suppress(ValueError):
                    payload = json.loads(data)
        if run is None:
            return
        if isinstance(payload, dict):
            _apply(run, payload)
        elif self._te_seen is not None:
            status, message = self._te_seen
            run.finish(status=status, error_message=message)
        elif interrupted:  # a cold shutdown: RQ killed the horse and is exiting
            run.finish(
                status="cancelled",
                error_message="cold shutdown: the worker killed the work horse and exited",
            )
            self.taskexec.recorder.flush(2.0)
        else:  # the horse ended without a word (its recording failed): ask RQ
            try:
                finished = str(job.get_status(refresh=True)) in ("finished", "JobStatus.FINISHED")
            except Exception:  # noqa: BLE001
                finished = False
            run.finish(
                status="success" if finished else "failed",
                error_message=None if finished else "the work horse reported no outcome",
            )

    def prepare_execution(self, job: Any) -> Any:
        try:
            return super().prepare_execution(job)
        finally:
            if self._te_pending is job:  # set_state was not handed RQ's pipeline: write alone
                self._te_pending = None
                try:
                    data = _meta_bytes(job)
                    if data is not None:
                        job.connection.hset(job.key, "meta", data)
                except Exception as exc:  # noqa: BLE001
                    _problem("prepare_execution", exc)

    def set_state(self, state: Any, pipeline: Any = None) -> Any:
        pending = self._te_pending
        if pending is not None and pipeline is not None:
            # prepare_execution marks the worker busy in its pipeline: the attempt count goes
            # to Redis in that same round trip.
            self._te_pending = None
            try:
                data = _meta_bytes(pending)
                if data is not None:
                    pipeline.hset(pending.key, "meta", data)
            except Exception as exc:  # noqa: BLE001
                _problem("set_state", exc)
        return super().set_state(state, pipeline=pipeline)

    def handle_work_horse_killed(self, job: Any, retpid: Any, ret_val: Any, rusage: Any) -> Any:
        self._te_horse_status = ret_val
        return super().handle_work_horse_killed(job, retpid, ret_val, rusage)

    # The process that runs the job (the work horse, or the worker itself) -------------------

    def perform_job(self, job: Any, queue: Any, *args: Any, **kwargs: Any) -> bool:
        # In a work horse with the worker's pipe, the outcome goes to the worker, which owns
        # the attempt; anywhere else (SimpleWorker, a horse without a pipe) it ends here.
        fd = self._te_outcome_fd()
        sink: _HereOutcome | _HorseOutcome | None = None
        try:
            integration = self.taskexec
            if fd is not None:
                sink = self._te_horse = _HorseOutcome(self._te_run, integration.log_lines)
            else:
                run = integration.start(self, job)
                sink = self._te_here = _HereOutcome(run, integration.log_lines)
            self._te_exc = None
        except Exception as exc:  # noqa: BLE001
            _problem("perform_job", exc)
        ok = False
        try:
            ok = super().perform_job(job, queue, *args, **kwargs)
            return ok
        finally:
            self._te_here = self._te_horse = self._te_exc = None
            try:
                if isinstance(sink, _HorseOutcome) and fd is not None:
                    sink.send(fd, ok)
                elif isinstance(sink, _HereOutcome):
                    # Hooks below ended it; this is for a path they do not see.
                    sink.finish(status="success" if ok else "failed")
                    if self._is_horse:  # a horse without a pipe: write before os._exit
                        self.taskexec.recorder.close()
            except Exception as exc:  # noqa: BLE001
                _problem("perform_job", exc)

    def _te_outcome_fd(self) -> int | None:
        if not self._is_horse:
            return None
        if self._te_pipe is not None:  # a forked horse: the worker's pipe, inherited
            return self._te_pipe[1]
        value = os.environ.get(OUTCOME_FD_ENV, "")  # a spawned horse
        return int(value) if value.isdigit() else None

    def _te_sink(self) -> _HereOutcome | _HorseOutcome | None:
        """What ends the attempt in this process: the horse's outcome, or the in-place Run."""
        return self._te_horse or self._te_here

    def handle_execution_ended(self, job: Any, queue: Any, *args: Any, **kwargs: Any) -> Any:
        sink = self._te_sink()
        if sink is not None:  # the job's body has ended: RQ's bookkeeping follows
            with contextlib.suppress(Exception):
                sink.body_done()
        return super().handle_execution_ended(job, queue, *args, **kwargs)

    def handle_exception(self, job: Any, *exc_info: Any) -> Any:
        if self._te_sink() is not None and len(exc_info) > 1:
            value = exc_info[1]
            if isinstance(value, BaseException):
                self._te_exc = value
        return super().handle_exception(job, *exc_info)

    def handle_job_success(self, job: Any, queue: Any, *args: Any, **kwargs: Any) -> Any:
        sink = self._te_sink()
        if sink is not None:
            try:
                # A Repeat job runs again: attempt 1 of its next round.
                if getattr(job, "repeats_left", None):
                    repeat = _state(job).get("repeat")
                    rounds = repeat if type(repeat) is int else 0
                    _set_state(job, {"attempt": 0, "repeat": rounds + 1})
            except Exception as exc:  # noqa: BLE001
                _problem("handle_job_success", exc)
        result = super().handle_job_success(job, queue, *args, **kwargs)
        if sink is not None:
            try:
                if self.taskexec.capture_args:
                    sink.record_result(getattr(job, "_result", None))
                sink.finish(status="success")
            except Exception as exc:  # noqa: BLE001
                _problem("handle_job_success", exc)
        return result

    def handle_job_retry(self, job: Any, queue: Any, retry: Any, *args: Any, **kwargs: Any) -> Any:
        # The job returned rq.Retry: this attempt failed and asks for another.
        sink, done = self._te_sink(), None
        if sink is not None:
            try:
                count = job.number_of_retries or 0
                done = count >= retry.max
                if not done:
                    from rq.job import Retry

                    interval = Retry.get_interval(count, retry.intervals)
                    if interval:
                        _remember_due(job, utcnow() + timedelta(seconds=interval))
            except Exception as exc:  # noqa: BLE001
                _problem("handle_job_retry", exc)
        try:
            return super().handle_job_retry(job, queue, retry, *args, **kwargs)
        finally:
            if sink is not None:
                text = f"returned {retry!r}" + (
                    f"; no retries left (max={retry.max})" if done else ""
                )
                sink.finish(status="failed", error_type="rq.job.Retry", error_message=text)

    def handle_job_failure(self, job: Any, queue: Any, *args: Any, **kwargs: Any) -> Any:
        sink, attempt = self._te_sink(), self._te_attempt
        mine = sink is not None or (attempt is not None and attempt.job_id == str(job.id))
        stopped = self._stopped_job_id == job.id
        elapsed = None
        if mine:
            try:
                if job.should_retry and not stopped:
                    interval = job.get_retry_interval()
                    if interval:
                        _remember_due(job, utcnow() + timedelta(seconds=interval))
                started = _aware(getattr(job, "started_at", None))
                elapsed = (utcnow() - started).total_seconds() if started else None
            except Exception as exc:  # noqa: BLE001
                _problem("handle_job_failure", exc)
        try:
            return super().handle_job_failure(job, queue, *args, **kwargs)
        finally:
            if mine:
                try:
                    self._te_failed(job, sink, stopped, elapsed, args, kwargs)
                except Exception as exc:  # noqa: BLE001
                    _problem("handle_job_failure", exc)

    def _te_failed(
        self,
        job: Any,
        sink: _HereOutcome | _HorseOutcome | None,
        stopped: bool,
        elapsed: float | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        if sink is not None:  # this process ran the job: handle_exception saw the exception
            exc = self._te_exc
            if exc is not None:
                sink.finish(exc, status=_status(exc))
            else:
                text = kwargs.get("exc_string") or (args[1] if len(args) > 1 else "")
                sink.finish(status="failed", error_message=_last_line(text) or None)
            return
        # The worker process: its work horse was stopped or died; _te_close writes it.
        if stopped:
            self._te_seen = ("cancelled", "stopped on request: the worker killed the work horse")
            return
        how = _signal_text(self._te_horse_status)
        timeout = getattr(job, "timeout", None)
        if elapsed is not None and timeout and timeout > 0 and elapsed >= timeout:
            message = f"the work horse ran past the job timeout ({timeout:g} s) and {how}"
            self._te_seen = ("timeout", message)
        else:
            self._te_seen = ("abandoned", f"the work horse died while running the job: {how}")


def _apply(run: Run, payload: dict[str, Any]) -> None:
    """Finish the worker's Run with what its work horse reported."""
    attributes = payload.get("attributes")
    if isinstance(attributes, dict) and attributes:
        run.set(**{str(k): v for k, v in attributes.items()})
    content = payload.get("content")
    if isinstance(content, str):
        run.summary(content)
    retrieved = payload.get("retrieved")
    if isinstance(retrieved, list) and len(retrieved) == 2 and type(retrieved[0]) is int:
        run.memories_retrieved = None
        run.retrieved(retrieved[0], retrieved[1] or ())
    files = payload.get("files")
    if isinstance(files, list):
        run.files_written = [str(f) for f in files]
    status = payload.get("status")
    run.finish(
        status=status if isinstance(status, str) else "failed",
        error_type=payload.get("error_type"),
        error_message=payload.get("error_message"),
        stack_trace=payload.get("stack_trace"),
    )


def _last_line(text: Any) -> str:
    lines = [line for line in str(text or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


# -- connect, the default integration, the classes made on first access -------------------------

_DEFAULT: RQIntegration | None = None


def _default() -> RQIntegration:
    global _DEFAULT
    if _DEFAULT is None:
        logs = os.environ.get(CAPTURE_LOGS_ENV, "").strip()
        _DEFAULT = RQIntegration(
            None,
            capture_args=os.environ.get(CAPTURE_ARGS_ENV, "").strip().lower()
            in ("1", "true", "yes", "on"),
            capture_logs=int(logs) if logs.isdigit() else 0,
        )
    return _DEFAULT


def connect(
    recorder: Recorder | None = None,
    *,
    worker: Any = None,
    capture_args: bool = False,
    capture_logs: int = 0,
) -> RQIntegration:
    """Choose the recorder and options of the recording workers in this process.

    Without ``worker``: every ``taskexec.integrations.rq`` worker class (and ``RecordingMixin``
    subclass) in this process uses them; call it before the worker starts. With ``worker``, an
    RQ worker instance of any class (``rq.SimpleWorker``, your own): that worker records with
    them, whatever the others do (its class is swapped for a recording subclass; a
    ``SpawnWorker`` must use ``taskexec.integrations.rq.SpawnWorker`` instead). ``recorder``
    None: ``$TASKEXEC_DB`` (default ``taskexec.db``). ``capture_args`` keeps each job's
    arguments and return value in ``attributes`` (cut to 2,000 characters, scrubbed);
    ``capture_logs=N`` its last N log lines. Returns the integration.
    """
    global _DEFAULT
    integration = RQIntegration(recorder, capture_args=capture_args, capture_logs=capture_logs)
    if worker is None:
        _DEFAULT = integration
        return integration
    cls = type(worker)
    if not issubclass(cls, RecordingMixin):
        worker.__class__ = _recording_subclass(cls)
    worker._taskexec = integration
    return integration


_SUBCLASSES: dict[type, type] = {}


def _recording_subclass(cls: type) -> type:
    sub = _SUBCLASSES.get(cls)
    if sub is None:
        sub = type(cls.__name__, (RecordingMixin, cls), {"__module__": cls.__module__})
        _SUBCLASSES[cls] = sub
    return sub


_CLASSES: dict[str, type] = {}
_LAZY = ("Worker", "SimpleWorker", "SpawnWorker", "Queue")


def _make_classes() -> None:
    import rq
    from rq.worker import SpawnWorker as RQSpawnWorker

    class Worker(RecordingMixin, rq.Worker):
        """``rq.Worker`` (a forked work horse per job) that records every attempt:
        ``rq worker --worker-class taskexec.integrations.rq.Worker``."""

    class SimpleWorker(RecordingMixin, rq.SimpleWorker):
        """``rq.SimpleWorker`` (jobs run in the worker process) that records every attempt."""

    class SpawnWorker(RecordingMixin, RQSpawnWorker):
        """``rq.worker.SpawnWorker`` (a spawned work horse per job) that records every attempt;
        the horse finds its pipe and options in the environment this worker sets."""

        def fork_work_horse(self, job: Any, queue: Any) -> Any:
            # The spawned horse is a new interpreter: it finds its pipe and options here.
            pipe = self._te_pipe
            integration = self.taskexec
            if pipe is not None:
                os.set_inheritable(pipe[1], True)
                os.environ[OUTCOME_FD_ENV] = str(pipe[1])
            os.environ[CAPTURE_ARGS_ENV] = "1" if integration.capture_args else ""
            os.environ[CAPTURE_LOGS_ENV] = str(integration.capture_logs or "")
            try:
                return super().fork_work_horse(job, queue)
            finally:
                os.environ.pop(OUTCOME_FD_ENV, None)

    class Queue(rq.Queue):
        """``rq.Queue`` that keeps a scheduled job's exact due time (``enqueue_at``,
        ``enqueue_in``) in ``job.meta`` for ``scheduled_at``; otherwise unchanged."""

        def schedule_job(self, job: Any, datetime: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                _remember_due(job, datetime)
            except Exception as exc:  # noqa: BLE001
                _problem("schedule_job", exc)
            return super().schedule_job(job, datetime, *args, **kwargs)

    for cls in (Worker, SimpleWorker, SpawnWorker, Queue):
        cls.__module__ = __name__
        cls.__qualname__ = cls.__name__
        _CLASSES[cls.__name__] = cls


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        if not _CLASSES:
            _make_classes()
        return _CLASSES[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Worker, SimpleWorker, SpawnWorker and Queue are made on first access (``__getattr__``).
__all__ = [
    "CAPTURE_ARGS_ENV",
    "CAPTURE_LOGS_ENV",
    "ID_ATTRIBUTES",
    "META_KEY",
    "Attempt",
    "RQIntegration",
    "RecordingMixin",
    "connect",
    "span_id_for",
    "trace_id_for",
]
