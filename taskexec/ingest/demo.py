"""A deterministic, realistic synthetic history: the fixture behind the demo and every face.

Several task slugs with their own lognormal durations, ~5–15% failures drawn from a few dozen
distinct bugs (some only recently introduced), retries that sometimes succeed, a few abandoned
runs, retrieval metadata and written files, and now and then a slot that two workers both ran
(a scheduler that fired twice). The same seed, run count, days and anchor give the same rows.

Rows are keyed like live recordings (``model.live_key`` of the span id), and the span and trace
ids are salted with all four parameters: two databases generated with different parameters
(another seed, or the same seed at another anchor) share no row, so merging them keeps every
row, while generating the same database again adds nothing.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..model import TaskExecution, format_ts, live_key

SOURCES = ("semantic", "episodic", "procedural", "web", "calendar")
#: Share of runs that are a second firing of the previous run's slot (another worker ran it too).
DOUBLE_FIRE = 0.003


@dataclass(frozen=True)
class DemoTask:
    """A task definition of the synthetic scheduler."""

    slug: str
    task_id: str
    median_ms: float
    sigma: float
    failure_rate: float
    weight: float
    retrieves: bool
    writes: str | None


TASKS = (
    DemoTask("daily_reflection", "task_007", 4200, 0.45, 0.06, 1.0, True, "notes/{day}.md"),
    DemoTask("idea_generation", "task_008", 9500, 0.60, 0.12, 1.2, True, "ideas/{day}-{n}.md"),
    DemoTask("sync_inbox", "task_011", 850, 0.35, 0.08, 3.0, False, None),
    DemoTask("memory_consolidation", "task_012", 21000, 0.50, 0.05, 0.6, True, "memory/{n}.json"),
    DemoTask("embed_documents", "task_015", 3100, 0.80, 0.10, 1.5, False, "vectors/{n}.npy"),
    DemoTask("web_research", "task_018", 15000, 0.90, 0.15, 0.8, True, "research/{n}.md"),
    DemoTask("send_digest", "task_021", 620, 0.30, 0.04, 0.5, True, None),
    DemoTask("cleanup_tmp", "task_030", 240, 0.70, 0.05, 0.7, False, None),
)

_MODULES = ("scheduler", "pipeline", "clients", "storage", "prompts", "retrieval", "notify")
_ERRORS = (
    ("ConnectionError", "connection to {ip}:5432 refused", True),
    ("TimeoutError", "request to model API timed out after {n}s", True),
    ("KeyError", "'{field}'", False),
    ("ValueError", "invalid literal for int() with base 10: '{field}'", False),
    ("json.decoder.JSONDecodeError", "Expecting value: line 1 column {n} (char {n})", False),
    ("PermissionError", "[Errno 13] Permission denied: '/data/{field}.lock'", False),
    ("httpx.HTTPStatusError", "Server error '503 Service Unavailable' for user {email}", True),
    ("sqlite3.OperationalError", "no such column: {field}", False),
    ("RuntimeError", "rate limited: retry after {n} ms (key {uuid})", True),
    ("FileNotFoundError", "[Errno 2] No such file or directory: 'notes/{field}.md'", False),
    ("TypeError", "unsupported operand type(s) for +: 'NoneType' and 'int'", False),
    ("AssertionError", "embedding dimension mismatch: {n} != 1536", False),
)
_FIELDS = ("user_id", "title", "summary", "embedding", "due", "owner", "tags", "score")


@dataclass(frozen=True)
class Bug:
    """One distinct defect: its exception, message template, frames and where it strikes."""

    error_type: str
    template: str
    transient: bool
    frames: tuple[tuple[str, str], ...]
    slugs: tuple[str, ...]
    introduced: float  # fraction of the period after which it appears


def make_bugs(rng: random.Random, count: int = 36) -> list[Bug]:
    """A few dozen distinct bugs, each with its own stack; the last few are recent."""
    bugs = []
    for i in range(count):
        etype, template, transient = _ERRORS[i % len(_ERRORS)]
        depth = _randint(rng, 2, 5)
        frames = tuple(
            (f"taskexec_demo/{rng.choice(_MODULES)}.py", f"{rng.choice(_VERBS)}_{i}_{k}")
            for k in range(depth)
        )
        slugs = tuple(t.slug for t in rng.sample(TASKS, _randint(rng, 1, 3)))
        introduced = 0.0 if i < count - 4 else 0.97 + 0.0075 * (i - (count - 4))
        bugs.append(Bug(etype, template, transient, frames, slugs, introduced))
    return bugs


_VERBS = ("load", "fetch", "parse", "write", "embed", "score", "render", "sync", "merge")


def _randint(rng: random.Random, low: int, high: int) -> int:
    """Like rng.randint, about three times cheaper (this sits on the 1M-row path)."""
    return low + int(rng.random() * (high - low + 1))


def _stack(rng: random.Random, bug: Bug, message: str) -> str:
    lines = ["Traceback (most recent call last):"]
    for path, func in bug.frames:
        lineno = _randint(rng, 20, 400)  # lines move between deploys; the hash must not care
        lines.append(f'  File "/srv/app/{path}", line {lineno}, in {func}')
        lines.append(f"    result = {func}(payload)")
    lines.append(f"{bug.error_type}: {message}")
    return "\n".join(lines) + "\n"


def _message(rng: random.Random, template: str) -> str:
    return template.format(
        ip=f"10.{_randint(rng, 0, 255)}.{_randint(rng, 0, 255)}.{_randint(rng, 1, 254)}",
        n=_randint(rng, 1, 120),
        field=rng.choice(_FIELDS),
        email=f"user{_randint(rng, 1, 999)}@example.com",
        uuid=f"{rng.getrandbits(128):032x}"[:8]
        + "-1234-4abc-8def-"
        + f"{rng.getrandbits(48):012x}",
    )


def default_anchor() -> datetime:
    """The demo's end time when none is given: now, floored to the hour (UTC)."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


#: Runs per block: each block after the first draws from its own seeded stream, so blocks can
#: be generated apart (in parallel, by ``parts``) and still give the same rows.
BLOCK = 50_000
#: At most this many attempts per run (the ids a part of the demo may use).
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class _Plan:
    """What every block of one demo shares: its period, bugs, weights and salts."""

    runs: int
    start: datetime
    step: float
    bugs: list[Bug]
    phases: list[float]
    candidates: dict[tuple[str, float], list[Bug]]
    cum_weights: list[float]
    trace_salt: int
    span_salt: int
    salt: bytes


def _plan(runs: int, days: int, seed: int, end: datetime | None) -> tuple[_Plan, random.Random]:
    rng = random.Random(seed)
    end = end or default_anchor()
    start = end - timedelta(days=days)
    span_us = days * 86_400_000_000
    bugs = make_bugs(rng)
    # Bugs each task can hit, by how far into the period we are (recent bugs join late).
    phases = sorted({b.introduced for b in bugs})
    candidates = {
        (t.slug, phase): [b for b in bugs if t.slug in b.slugs and b.introduced <= phase]
        or bugs[:1]
        for t in TASKS
        for phase in phases
    }
    # Ids are salted with everything that makes this database, so no other one shares them.
    salt = hashlib.sha256(f"demo\x1f{seed}\x1f{runs}\x1f{days}\x1f{format_ts(end)}".encode())
    plan = _Plan(
        runs=runs,
        start=start,
        step=span_us / max(runs, 1),
        bugs=bugs,
        phases=phases,
        candidates=candidates,
        cum_weights=list(itertools.accumulate(t.weight for t in TASKS)),
        trace_salt=int.from_bytes(salt.digest()[:16], "big"),
        span_salt=int.from_bytes(salt.digest()[16:24], "big"),
        salt=salt.digest(),
    )
    return plan, rng


def _block(plan: _Plan, block: int, rng: random.Random | None = None) -> Iterator[TaskExecution]:
    """The attempts of the runs of one block (the first continues the plan's own stream)."""
    if rng is None:
        rng = random.Random(hashlib.sha256(plan.salt + b"block%d" % block).digest())
    twice = random.Random(plan.salt if block == 0 else plan.salt + b"twice%d" % block)
    first = block * BLOCK
    yield from _runs(plan, rng, twice, first, min(plan.runs, first + BLOCK))


def generate(
    runs: int = 20_000, days: int = 30, seed: int = 7, end: datetime | None = None
) -> Iterator[TaskExecution]:
    """Yield the attempts of ``runs`` logical runs spread over ``days`` days ending at ``end``."""
    plan, rng = _plan(runs, days, seed, end)
    for block in range(-(-runs // BLOCK)):
        yield from _block(plan, block, rng if block == 0 else None)


def parts(
    runs: int, days: int, seed: int, end: datetime | None, count: int
) -> list[tuple[int, Callable[[], Iterator[TaskExecution]]]]:
    """``generate`` cut into ``count`` parts that can be made apart (in other processes): each
    is (the first id its rows may take, a function yielding its rows), in order, and together
    they yield exactly what ``generate`` yields. A part's ids stay below the next part's."""
    plan, _ = _plan(runs, days, seed, end)
    blocks = -(-runs // BLOCK)
    size = max(1, -(-blocks // max(1, count)))
    out: list[tuple[int, Callable[[], Iterator[TaskExecution]]]] = []
    for lo in range(0, blocks, size):
        hi = min(blocks, lo + size)

        def make(lo: int = lo, hi: int = hi) -> Iterator[TaskExecution]:
            for block in range(lo, hi):
                # the first block continues the stream that made the bugs
                yield from _block(plan, block, _first_stream(seed) if block == 0 else None)

        out.append((lo * BLOCK * MAX_ATTEMPTS + 1, make))
    return out


def _first_stream(seed: int) -> random.Random:
    """The main stream as the first block finds it: just past the bugs."""
    rng = random.Random(seed)
    make_bugs(rng)
    return rng


def _runs(
    plan: _Plan, rng: random.Random, twice: random.Random, first: int, stop: int
) -> Iterator[TaskExecution]:
    """The attempts of runs ``first`` to ``stop - 1``."""
    runs, start, step = plan.runs, plan.start, plan.step
    cum_weights, phases, candidates = plan.cum_weights, plan.phases, plan.candidates
    trace_salt, span_salt = plan.trace_salt, plan.span_salt
    hosts = [f"worker-{i}" for i in range(1, 5)]
    total, last = cum_weights[-1] + 0.0, len(TASKS) - 1
    previous_slot: tuple[DemoTask, datetime] | None = None
    for i in range(first, stop):
        # rng.choices(TASKS, cum_weights=cum_weights)[0], inlined (the same draw)
        task = TASKS[bisect.bisect_right(cum_weights, rng.random() * total, 0, last)]
        frac = i / max(runs, 1)
        scheduled = start + timedelta(microseconds=int(i * step))
        if previous_slot is not None and twice.random() < DOUBLE_FIRE:
            task, scheduled = previous_slot  # the scheduler fired the last slot again
        previous_slot = (task, scheduled)
        trace_id = f"{(rng.getrandbits(128) ^ trace_salt) | 1:032x}"
        previous: str | None = None
        t = scheduled + timedelta(milliseconds=_randint(rng, 5, 900))
        # Failure odds drift a little over time and by hour so the trend charts have a shape.
        hour_bump = 1.6 if scheduled.hour in (2, 3) else 1.0
        p_fail = task.failure_rate * hour_bump * (0.7 + 0.4 * frac)
        phase = phases[bisect.bisect_right(phases, frac) - 1]
        bug = rng.choice(candidates[task.slug, phase])
        for attempt in range(1, 4):
            span_id = f"{(rng.getrandbits(64) ^ span_salt) | 1:016x}"
            duration = rng.lognormvariate(math.log(task.median_ms), task.sigma)
            where = (task, trace_id, span_id, attempt, previous, scheduled, t, rng.choice(hosts))
            if rng.random() < 0.002:  # the worker died: no end recorded
                yield _record(where, rng, "abandoned", None)
                break
            failed = rng.random() < (p_fail if attempt == 1 else (0.35 if bug.transient else 0.9))
            if not failed:
                yield _record(where, rng, "success", duration)
                break
            message = _message(rng, bug.template)
            yield _record(
                where,
                rng,
                "timeout" if bug.error_type == "TimeoutError" else "failed",
                duration,
                bug.error_type,
                message,
                _stack(rng, bug, message),
            )
            if rng.random() > 0.6:  # not every failure is retried
                break
            previous = span_id
            t = t + timedelta(milliseconds=duration + _randint(rng, 1000, 30000))


#: Which attempt of which run a record is, and where and when it started: (task, trace id,
#: span id, attempt, retry_of, scheduled, started, host). A plain tuple: a frozen dataclass
#: built per attempt cost more than the record's own fields.
_Where = tuple[DemoTask, str, str, int, str | None, datetime, datetime, str]


def _record(
    where: _Where,
    rng: random.Random,
    status: str,
    duration: float | None,
    error_type: str | None = None,
    message: str | None = None,
    stack: str | None = None,
) -> TaskExecution:
    """The record of one attempt that ended with ``status`` (``duration`` None: no end)."""
    task, trace_id, span_id, attempt, retry_of, scheduled, started, host = where
    n = _randint(rng, 1, 9999)
    memories = sources = None
    if task.retrieves:
        memories = _randint(rng, 0, 40)
        sources = tuple(rng.sample(SOURCES, _randint(rng, 1, 3)))
    files: tuple[str, ...] = ()
    if task.writes and status == "success":
        files = (task.writes.format(day=started.isoformat()[:10], n=n),)
    if status == "success":
        summary = f"{task.slug} finished: " + (
            f"used {memories} memories from {', '.join(sources or ())}"
            if memories
            else "no retrieval"
        )
    else:
        summary = f"{task.slug} attempt {attempt} ended {status}"
    return TaskExecution(
        task_slug=task.slug,
        task_id=task.task_id,
        status=status,
        trace_id=trace_id,
        span_id=span_id,
        idempotency_key=live_key(span_id),
        attempt=attempt,
        retry_of=retry_of,
        scheduled_at=scheduled,
        started_at=started,
        ended_at=started + timedelta(milliseconds=duration) if duration is not None else None,
        duration_ms=round(duration, 3) if duration is not None else None,
        error_type=error_type,
        error_message=message,
        stack_trace=stack,
        memories_retrieved=memories,
        retrieval_sources=sources or (),
        files_written=files,
        host=host,
        pid=1000 + n,
        content=summary,
        attributes={"queue": "default" if task.median_ms < 5000 else "slow"},
    )
