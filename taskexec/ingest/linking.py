"""Retry links for imported records: attempt N+1 of a run shares attempt N's trace and points
``retry_of`` at it.

Result files rarely say which attempt a retry retried. ``link_retries`` reads a stream of
records and links attempt N+1 of a task to its attempt N when

- N did not succeed, and N+1 did not start before N did; and
- both name a scheduled slot and it is the same one; or, without that, N ended (it failed,
  timed out, was cancelled or abandoned) and N+1 started at or after N's end (``ended_at``,
  else its start), less ``skew`` for the clocks of two hosts, and at most ``window`` after it
  (default one hour).

Among several candidates the one that ended last before N+1 started wins (then: the same host).
A record that already has ``retry_of`` is left as it is; one that carries its own trace id (not
the one ``trace_of_key`` derives from its key) is only linked to an attempt in that same trace.
N+1 takes N's trace once N has its final one, so a chain 1, 2, 3 ends up in one trace. Keys and
span ids are never changed.

An attempt N is retried at most once: a second candidate retry looks for another attempt.

The stream may come in any order (files are read in name order). Up to ``hold`` records are
held back and taken in order of their start, so attempts N come before their retries and the
best candidate is known; a retry whose attempt N still has not come waits for it (again at most
``hold`` of them; the oldest then goes on unlinked). Attempts that may be retried are
remembered (a few ids and times each, at most ``memory`` of them). So memory stays bounded
whatever the input's size. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ..model import TaskExecution

#: How long after attempt N ended its retry may start and still be linked without a slot.
DEFAULT_WINDOW = timedelta(hours=1)
#: How much earlier than N's recorded end a retry may start (clocks of two hosts disagree).
DEFAULT_SKEW = timedelta(seconds=1)
#: Attempts remembered as possible attempts N (about 200 bytes each).
DEFAULT_MEMORY = 100_000
#: Records held back to be taken in order of start, and retries waiting for their attempt N.
DEFAULT_HOLD = 10_000

#: Statuses of an attempt that a later one may retry without a shared slot (a running one,
#: say a crashed worker's, only with a slot: it has no end to measure the window from).
_RETRIED = frozenset(("failed", "timeout", "cancelled", "abandoned"))

Key = tuple[object, ...]


def trace_of_key(key: str) -> str:
    """The trace id an importer derives for a record that names none: one per execution, from
    its idempotency key (the retries of a run get attempt 1's through ``link_retries``)."""
    return hashlib.sha256(f"trace\x1f{key}".encode()).hexdigest()[:32]


@dataclass(slots=True, eq=False)
class _Prior:
    """What is remembered of an attempt that a later one may have retried."""

    span_id: str
    trace_id: str
    scheduled_at: datetime | None
    started_at: datetime
    end: datetime
    retried: bool  # its status is one a retry follows without a shared slot
    host: str | None
    claimed: bool = False  # a retry of it was linked already

    @classmethod
    def of(cls, record: TaskExecution) -> _Prior:
        end = record.ended_at if record.ended_at is not None else record.started_at
        return cls(
            record.span_id,
            record.trace_id,
            record.scheduled_at,
            record.started_at,
            end,
            record.status in _RETRIED,
            record.host,
        )


@dataclass(eq=False, slots=True)
class _Waiting:
    """A retry held back until its attempt N comes (or ``hold`` is full, or the input ends)."""

    record: TaskExecution
    keys: list[Key] = field(default_factory=list)
    done: bool = False  # released: linked, or gone on unlinked


def _derived(record: TaskExecution) -> bool:
    """Whether the record's trace id is the one derived from its key (it named none itself)."""
    return record.trace_id == trace_of_key(record.idempotency_key)


class _Linker:
    def __init__(self, window: timedelta, skew: timedelta, memory: int, hold: int) -> None:
        if window <= timedelta(0) or skew < timedelta(0) or memory < 1 or hold < 1:
            raise ValueError("window must be positive, skew >= 0, memory and hold >= 1")
        self.window, self.skew, self.memory, self.hold = window, skew, memory, hold
        self.bucket_s = window.total_seconds()
        # Possible attempts N, by ("slot", task, attempt, slot) or ("win", task, attempt,
        # bucket of their end); ``order`` evicts the oldest.
        self.seen: dict[Key, list[_Prior]] = {}
        self.order: deque[tuple[Key, _Prior]] = deque()
        # Retries waiting for their attempt N, by the keys that attempt would be seen under.
        self.waiting: dict[Key, list[_Waiting]] = {}
        self.queue: deque[_Waiting] = deque()  # arrival order (released ones are skipped)
        self.held = 0  # how many of them still wait

    def bucket(self, when: datetime, shift: float = 0.0) -> int:
        """The window-sized slice of time ``when`` (moved by ``shift`` seconds) falls in; in
        seconds since the epoch, so no datetime is computed past the year 9999."""
        return int((when.timestamp() + shift) // self.bucket_s)

    # -- matching ----------------------------------------------------------------------------

    def matches(self, prior: _Prior, retry: TaskExecution) -> bool:
        """Whether ``retry`` retried ``prior`` (same task, attempt + 1: given by the keys)."""
        if prior.claimed or retry.started_at < prior.started_at:
            return False
        if retry.trace_id != prior.trace_id and not _derived(retry):
            return False  # it names its own run, and that is not prior's
        if prior.scheduled_at is not None and retry.scheduled_at is not None:
            return prior.scheduled_at == retry.scheduled_at  # (prior did not succeed)
        return prior.retried and -self.skew <= retry.started_at - prior.end <= self.window

    @staticmethod
    def best(retry: TaskExecution, candidates: list[_Prior]) -> _Prior:
        return max(
            candidates,
            key=lambda p: (p.end <= retry.started_at, p.end, p.host == retry.host),
        )

    def prior_keys(self, retry: TaskExecution) -> list[Key]:
        """Where attempt N of ``retry`` would be remembered."""
        task, attempt = retry.task_id, retry.attempt - 1
        keys: list[Key] = []
        if retry.scheduled_at is not None:
            keys.append(("slot", task, attempt, retry.scheduled_at))
        first = self.bucket(retry.started_at, -self.window.total_seconds())
        last = self.bucket(retry.started_at, self.skew.total_seconds())
        keys.extend(("win", task, attempt, b) for b in range(first, last + 1))
        return keys

    def seen_keys(self, prior: _Prior, record: TaskExecution) -> list[Key]:
        """Where ``record`` is remembered as a possible attempt N."""
        keys: list[Key] = []
        if record.scheduled_at is not None:
            keys.append(("slot", record.task_id, record.attempt, record.scheduled_at))
        if prior.retried:
            keys.append(("win", record.task_id, record.attempt, self.bucket(prior.end)))
        return keys

    # -- the stream --------------------------------------------------------------------------

    def take(self, record: TaskExecution) -> Iterator[TaskExecution]:
        """Records ready to go out after ``record`` came in (it, and retries it released)."""
        if record.attempt > 1 and record.retry_of is None:
            found = [
                p
                for key in self.prior_keys(record)
                for p in self.seen.get(key, ())
                if self.matches(p, record)
            ]
            if not found:
                yield from self.wait(record)
                return
            record = _link(record, self.best(record, found))
        elif record.status == "success":  # nobody retries it: nothing to remember (the usual)
            yield record
            return
        yield from self.release(record)

    def wait(self, record: TaskExecution) -> Iterator[TaskExecution]:
        waiting = _Waiting(record, self.prior_keys(record))
        for key in waiting.keys:
            self.waiting.setdefault(key, []).append(waiting)
        self.queue.append(waiting)
        self.held += 1
        while self.held > self.hold:  # the oldest waits no longer: out, unlinked
            oldest = self.queue.popleft()
            if not oldest.done:
                self.unwait(oldest)
                yield from self.release(oldest.record)
        if len(self.queue) > 2 * self.hold:  # drop the released ones behind a long wait
            self.queue = deque(w for w in self.queue if not w.done)

    def unwait(self, waiting: _Waiting) -> None:
        waiting.done = True
        self.held -= 1
        for key in waiting.keys:
            group = self.waiting.get(key)
            if group is not None:
                group.remove(waiting)
                if not group:
                    del self.waiting[key]

    def release(self, record: TaskExecution) -> Iterator[TaskExecution]:
        """Send ``record`` out, remember it, and do the same for the retries it unblocks."""
        ready = deque([record])
        while ready:
            current = ready.popleft()
            yield current
            if current.status == "success":
                continue
            prior = _Prior.of(current)
            for key in self.seen_keys(prior, current):
                self.remember(key, prior)
                if key not in self.waiting:
                    continue
                woken = [w for w in self.waiting[key] if self.matches(prior, w.record)]
                for waiting in woken:
                    self.unwait(waiting)
                    ready.append(_link(waiting.record, prior))

    def remember(self, key: Key, prior: _Prior) -> None:
        self.seen.setdefault(key, []).append(prior)
        self.order.append((key, prior))
        while len(self.order) > self.memory:
            old_key, old = self.order.popleft()
            group = self.seen[old_key]
            group.remove(old)
            if not group:
                del self.seen[old_key]

    def finish(self) -> Iterator[TaskExecution]:
        """The retries still waiting when the input ends: out, unlinked, in arrival order."""
        while self.queue:
            waiting = self.queue.popleft()
            if not waiting.done:
                self.unwait(waiting)
                yield from self.release(waiting.record)


_FIELDS = tuple(TaskExecution.__dataclass_fields__)


def _link(retry: TaskExecution, prior: _Prior) -> TaskExecution:
    """``retry`` in ``prior``'s trace, retrying it. A field-by-field copy: both ids come from
    records that were validated when built, and ``dataclasses.replace`` (which validates the
    whole record again) costs three times as much."""
    prior.claimed = True
    linked = object.__new__(TaskExecution)
    setter = object.__setattr__
    for name in _FIELDS:
        setter(linked, name, getattr(retry, name))
    setter(linked, "trace_id", prior.trace_id)
    setter(linked, "retry_of", prior.span_id)
    return linked


def link_retries(
    records: Iterable[TaskExecution],
    *,
    window: timedelta = DEFAULT_WINDOW,
    skew: timedelta = DEFAULT_SKEW,
    memory: int = DEFAULT_MEMORY,
    hold: int = DEFAULT_HOLD,
) -> Iterator[TaskExecution]:
    """Every record of ``records``, retries linked to the attempt they retried (see the module
    docstring for the rules), each once: in order of start as far as a window of ``hold``
    records sorts them, and a retry whose attempt N has not come yet held back until it does
    (at most ``hold`` of them)."""
    linker = _Linker(window, skew, memory, hold)
    # A heap of (start in seconds, arrival, record): earliest start first. Floats compare
    # several times faster than datetimes; arrival breaks ties, so records never compare.
    held: list[tuple[float, int, TaskExecution]] = []
    for number, record in enumerate(records):
        item = (record.started_at.timestamp(), number, record)
        if len(held) < hold:
            heapq.heappush(held, item)
            continue
        record = heapq.heappushpop(held, item)[2]
        if record.status == "success" and (record.attempt == 1 or record.retry_of is not None):
            yield record  # links nothing and is never retried: the usual record, fast
        else:
            yield from linker.take(record)
    while held:
        yield from linker.take(heapq.heappop(held)[2])
    yield from linker.finish()
