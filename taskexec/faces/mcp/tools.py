"""What the MCP tools answer, as plain functions over a read-only Store (models: ``models.py``).

The tools declared in ``declare.py`` call these, for ``taskexec mcp`` and the Datasette hook
alike, so the answers are the same whichever way an assistant connects. Nothing here knows about
MCP or SQL: bad arguments raise ``InvalidRecord`` naming the argument and saying how to fix it;
the tools turn that into a tool error.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sqlite3
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from ...db import awareness
from ...db.store import MAX_LIMIT, Store
from ...errors import InvalidRecord
from ...model import FAILURE_STATUSES, check_trace_id, parse_ts, utcnow, window_start
from .. import empty_note
from .models import (
    COUNT_CAP,
    FAILED_PAGE,
    LIST_PAGE,
    Alert,
    AlertCounts,
    AlertList,
    Attempt,
    ErrorSummary,
    ExecutionList,
    ExecutionSummary,
    Failure,
    FailureReport,
    RunOutcome,
    TraceDetail,
    Window,
)

#: A failure whose error group was first seen less than this before it counts as a new error.
NEW_ERROR_AGE = timedelta(hours=24)
#: Compact rows keep the first line of the error message, at most this many characters.
SHORT_MESSAGE = 160
#: Longer stack traces are cut (the head and the innermost frames are kept).
MAX_STACK = 8000
#: What tasks_alerts may be asked for.
ALERT_STATES = ("open", "resolved", "all")
#: What a tasks_list page reads of each row (``ExecutionSummary``), not the stack or content.
SUMMARY_COLUMNS = (
    "trace_id",
    "task_slug",
    "attempt",
    "status",
    "started_at",
    "duration_ms",
    "error_type",
    "error_message",
)
#: What a tasks_last_failed page reads of each failed attempt (``Failure``).
FAILURE_COLUMNS = (*SUMMARY_COLUMNS, "stack_trace", "stack_hash")
_FRAME_RE = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<func>\S+)', re.M)

# -- argument parsing ----------------------------------------------------------------------------


def parse_time_bound(value: str | None, name: str, now: datetime) -> tuple[str | None, str | None]:
    """Parse a since/until argument into (canonical UTC text, phrase); (None, None) if absent.

    The one window grammar of every face (``model.window_start``): a window back from ``now``
    (``30m``, ``24h``, ``7d``, ``2w``, ``1.5d``), ISO-8601 with a zone, or ``all`` (no bound);
    anything else is an InvalidRecord naming the argument and the accepted forms.
    """
    if value is None or not value.strip():
        return None, None
    text = value.strip()
    stamp = window_start(text, name=name, now=now)
    if text.lower() == "all":
        return None, None
    if _timestamp(text) is None:  # a window back from now
        return stamp, (f"last {text}" if name == "since" else f"until {text} ago")
    return stamp, f"{name} {stamp}"


def _timestamp(text: str) -> datetime | None:
    try:
        return parse_ts(text)
    except InvalidRecord:
        return None


def make_window(
    since: str | None, until: str | None = None, now: datetime | None = None
) -> tuple[Window, datetime | None, datetime | None]:
    """The Window for since/until plus the bounds as datetimes for the store."""
    now = now or utcnow()
    since_ts, since_words = parse_time_bound(since, "since", now)
    until_ts, until_words = parse_time_bound(until, "until", now)
    if since_ts and until_ts and since_ts >= until_ts:
        raise InvalidRecord("until", f"{until_ts} is not after since {since_ts}; swap them")
    words = " ".join(w for w in (since_words, until_words) if w) or "all time"
    window = Window(since=since_ts, until=until_ts, understood_as=words)
    return window, _dt(since_ts), _dt(until_ts)


def _dt(stamp: str | None) -> datetime | None:
    return parse_ts(stamp) if stamp else None


def _instant(stamp: str) -> datetime:
    """A stored timestamp (canonical, so no validation needed) as a datetime; fast."""
    return datetime.fromisoformat(stamp)


def normalise_trace_id(value: str) -> str:
    """Accept surrounding spaces and upper case; reject anything else with a usable message."""
    candidate = value.strip().lower() if isinstance(value, str) else value
    try:
        return check_trace_id(candidate)
    except InvalidRecord as exc:
        raise InvalidRecord(
            "trace_id",
            f"expected 32 hex characters (a W3C trace id), got {value!r}; copy the trace_id "
            "field of a tasks_list or tasks_last_failed result",
        ) from exc


# -- pages: a cursor carries the question and where its last page ended ---------------------------


def write_cursor(tool: str, asked: dict[str, Any], window: Window, after: tuple[str, int]) -> str:
    """An opaque cursor for the page after ``after`` (``started_at``, ``id`` of the last row):
    the filters as asked, the window as understood then (so ``since='24h'`` does not move
    between pages) and the position, as URL-safe base64 JSON."""
    filters = {k: v for k, v in asked.items() if v is not None}
    data = {"t": tool, "f": filters, "w": window.model_dump(exclude_none=True), "a": list(after)}
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=True)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def read_cursor(
    cursor: str, tool: str, asked: dict[str, Any]
) -> tuple[dict[str, Any], Window, tuple[str, int]]:
    """The filters, window and position a cursor of ``tool`` carries. Filters passed along
    with it must be the ones it was made for (or be left out); anything else is an
    InvalidRecord saying what to pass."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        window, (started, row_id) = Window(**data["w"]), data["a"]
        if data["t"] != tool or not set(data["f"]) <= set(asked) or not isinstance(row_id, int):
            raise ValueError(tool)
        filters = {name: data["f"].get(name) for name in asked}
        after = (str(started), row_id)
    except (ValueError, TypeError, KeyError, binascii.Error, AttributeError):
        raise InvalidRecord(
            "cursor",
            f"not a {tool} cursor; pass the next_cursor of a {tool} answer exactly as returned",
        ) from None
    for name, value in asked.items():
        if value is not None and value != filters[name]:
            raise InvalidRecord(
                "cursor",
                f"it continues a list with {name}={filters[name]!r}, not {value!r}; pass the "
                "cursor alone (or with the same filters), or start over without it",
            )
    return filters, window, after


def _check_page(limit: int, most: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= most:
        raise InvalidRecord("limit", f"expected a whole number from 1 to {most}, got {limit!r}")
    return limit


# -- the answers ---------------------------------------------------------------------------------


def list_executions(
    store: Store,
    *,
    task_id: str | None = None,
    task_slug: str | None = None,
    status: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int = 20,
    cursor: str | None = None,
    now: datetime | None = None,
) -> ExecutionList:
    """Executions matching the filters, newest first, a page at a time, with the total that
    match. ``cursor`` (a ``next_cursor``) continues the same list after its last page."""
    limit = _check_page(limit, LIST_PAGE)
    asked: dict[str, Any] = dict(
        task_id=task_id, task_slug=task_slug, status=status, since=since, until=until
    )
    after = None
    if cursor is not None:
        asked, window, after = read_cursor(cursor, "tasks_list", asked)
        since_dt, until_dt = _dt(window.since), _dt(window.until)
    else:
        window, since_dt, until_dt = make_window(since, until, now)
    filters: dict[str, Any] = dict(
        task_id=asked["task_id"],
        task_slug=asked["task_slug"],
        status=asked["status"],
        since=since_dt,
        until=until_dt,
    )
    rows = store.list_executions(**filters, limit=limit + 1, after=after, columns=SUMMARY_COLUMNS)
    more = len(rows) > limit
    rows = rows[:limit]
    exact = None  # a count of every match, not stopped at the cap
    if after is None and not more:
        total = len(rows)
    else:
        if asked["task_id"] is None and since_dt is None and until_dt is None:
            exact = _rollup_total(store, asked["status"], asked["task_slug"])
        total = exact if exact is not None else store.count_executions(**filters, cap=COUNT_CAP)
    hint = None
    if not rows and cursor is None:
        hint = _empty_hint(
            store, task_id=asked["task_id"], task_slug=asked["task_slug"], window=window
        )
    last = rows[-1] if rows else None
    return ExecutionList(
        window=window,
        executions=[_summary(r) for r in rows],
        returned=len(rows),
        total_matching=total if exact is not None else min(total, COUNT_CAP),
        total_is_exact=exact is not None or total <= COUNT_CAP,
        truncated=more,
        next_cursor=write_cursor("tasks_list", asked, window, (last["started_at"], last["id"]))
        if more and last
        else None,
        hint=hint,
    )


def _rollup_total(store: Store, status: str | None, task_slug: str | None) -> int | None:
    """How many executions have this status and task (None: any), exact at any size: the
    rollups count them. None for a database from before the rollups (read-only, so not
    upgraded): then counting stops at the cap as before."""
    try:
        return store.rollup_count(
            statuses=None if status is None else [status],
            tasks=None if task_slug is None else [task_slug],
        )
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
        return None


def trace(store: Store, trace_id: str) -> TraceDetail:
    """Every attempt of one logical run, in attempt order, and how the run ended."""
    trace_id = normalise_trace_id(trace_id)
    rows = store.trace(trace_id)
    if not rows:
        raise InvalidRecord(
            "trace_id",
            f"no execution has trace_id {trace_id!r} in this database; find trace ids with "
            "tasks_list or tasks_last_failed",
        )
    last = rows[-1]
    return TraceDetail(
        trace_id=trace_id,
        task_slug=last["task_slug"],
        task_id=last["task_id"],
        outcome=run_outcome([(r["attempt"], r["status"]) for r in rows]),
        attempts=[_attempt(r) for r in rows],
    )


def last_failed(
    store: Store,
    *,
    limit: int = 10,
    task_slug: str | None = None,
    since: str | None = None,
    cursor: str | None = None,
    now: datetime | None = None,
) -> FailureReport:
    """The most recent failed runs, each with why it failed and how the run ended, a page at a
    time; the error groups they failed with in ``distinct_errors``.

    Retries make one broken run fail several times; a person wants that once, so each run is
    listed once, at its latest failed attempt.
    """
    limit = _check_page(limit, FAILED_PAGE)
    asked: dict[str, Any] = dict(task_slug=task_slug, since=since)
    after = None
    if cursor is not None:
        asked, window, after = read_cursor(cursor, "tasks_last_failed", asked)
        since_dt = _dt(window.since)
    else:
        window, since_dt, _ = make_window(since, None, now)
    runs, more = _recent_failed_runs(store, limit, asked["task_slug"], since_dt, after)
    failures = [_failure(row, attempts) for row, attempts in runs]
    errors = _distinct_errors([row for row, _ in runs])
    hint = None
    if not failures and cursor is None:
        hint = _empty_hint(store, task_slug=asked["task_slug"], window=window, what="failures")
    last = runs[-1][0] if runs else None
    return FailureReport(
        window=window,
        summary=_report_summary(window, failures, errors, more, continued=after is not None),
        failures=failures,
        distinct_errors=errors,
        returned=len(failures),
        truncated=more,
        next_cursor=write_cursor(
            "tasks_last_failed", asked, window, (last["started_at"], last["id"])
        )
        if more and last
        else None,
        hint=hint,
    )


def alerts(
    store: Store, *, state: str = "open", task_slug: str | None = None, limit: int = 50
) -> AlertList:
    """Alerts in one state (or all), newest opened first, with how many are open and resolved.

    Alerts are what ``taskexec check`` found; a database it never looked at has none (and one
    written before alerts existed has no alerts table yet: it answers empty, with a hint).
    """
    if state not in ALERT_STATES:
        raise InvalidRecord(
            "state", f"expected 'open', 'resolved' or 'all', got {state!r}; 'open' is the default"
        )
    limit = _check_alert_limit(limit)
    try:
        open_rows = awareness.list_alerts(
            store, state="open", task_slug=task_slug, limit=COUNT_CAP + 1
        )
        resolved_rows = awareness.list_alerts(
            store, state="resolved", task_slug=task_slug, limit=COUNT_CAP + 1
        )
        if state == "open":
            rows = open_rows[:limit]
        elif state == "resolved":
            rows = resolved_rows[:limit]
        else:
            rows = awareness.list_alerts(store, task_slug=task_slug, limit=limit)
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
        return AlertList(
            summary="No alerts: this database has no alerts table yet.",
            state=state,
            alerts=[],
            counts=AlertCounts(open=0, resolved=0),
            returned=0,
            truncated=False,
            hint="It was written by a taskexec from before alerts; `taskexec check DB` upgrades "
            "it and looks for missed, late, stuck and slow runs and new errors.",
        )
    counts = AlertCounts(
        open=min(len(open_rows), COUNT_CAP), resolved=min(len(resolved_rows), COUNT_CAP)
    )
    matching = {"open": len(open_rows), "resolved": len(resolved_rows)}.get(
        state, len(open_rows) + len(resolved_rows)
    )
    listed = [_alert(r) for r in rows]
    truncated = matching > len(listed)
    return AlertList(
        summary=_alerts_summary(state, task_slug, listed, counts, truncated),
        state=state,
        alerts=listed,
        counts=counts,
        returned=len(listed),
        truncated=truncated,
        hint=None if listed else _alerts_hint(store, state, task_slug, counts),
    )


# -- helpers -------------------------------------------------------------------------------------


def _check_alert_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 200:
        raise InvalidRecord("limit", f"expected a whole number from 1 to 200, got {limit!r}")
    return limit


def _alert(row: dict[str, Any]) -> Alert:
    return Alert(
        kind=row["kind"],
        task_slug=row["task_slug"],
        title=row["title"],
        detail=row["detail"],
        state=row["state"],
        since=row["since"],
        opened_at=row["opened_at"],
        last_seen_at=row["last_seen_at"],
        resolved_at=row["resolved_at"],
        trace_id=row["trace_id"],
        span_id=row["span_id"],
        stack_hash=row["stack_hash"],
        times_opened=row["times_opened"],
    )


def _alerts_summary(
    state: str, task_slug: str | None, listed: list[Alert], counts: AlertCounts, truncated: bool
) -> str:
    """One line: how many alerts of what kinds, the newest, and the totals."""
    where = f" for {task_slug}" if task_slug else ""
    totals = f"in all: {counts.open} open, {counts.resolved} resolved"
    which = "" if state == "all" else f"{state} "
    if not listed:
        return f"No {which}alerts{where} ({totals})."
    kinds = ", ".join(f"{n} {kind}" for kind, n in Counter(a.kind for a in listed).most_common())
    lead = (
        f"The {len(listed)} newest {which}alert(s)"
        if truncated
        else f"{len(listed)} {which}alert(s)"
    )
    newest = listed[0]
    return (
        f"{lead}{where}: {kinds}; newest: {_short(newest.title)} ({newest.state}, opened "
        f"{newest.opened_at}); {totals}."
    )


def _alerts_hint(store: Store, state: str, task_slug: str | None, counts: AlertCounts) -> str:
    """Say why no alert matched: another state has some, an unknown task, or no check yet."""
    if state == "open" and counts.resolved:
        return (
            f"Nothing is open; {counts.resolved} resolved alert(s) are in the history: pass "
            "state='resolved' or state='all' to see them."
        )
    if state == "resolved" and counts.open:
        return f"Nothing has resolved yet; {counts.open} alert(s) are open: pass state='open'."
    if task_slug is not None:
        others = sorted({r["task_slug"] for r in awareness.list_alerts(store, limit=200)})
        if others:
            return f"No alerts for task_slug {task_slug!r}; tasks with alerts: {', '.join(others)}."
    scheduled = len(awareness.schedules(store))
    return (
        "No alerts recorded: `taskexec check` opens them (run it from cron, or `taskexec "
        f"watch`). {scheduled} task(s) have a schedule, needed to tell a missed run."
    )


def run_outcome(attempts: Sequence[tuple[int, str]]) -> RunOutcome:
    """Summarise a run from its (attempt, status) pairs in attempt order."""
    final_attempt, final = attempts[-1]
    n = len(attempts)
    failed_before = any(s in FAILURE_STATUSES for _, s in attempts[:-1])
    succeeded = final == "success"
    if succeeded:
        summary = (
            "succeeded on the first attempt"
            if n == 1
            else f"succeeded on attempt {final_attempt} after {n - 1} failed attempt(s)"
        )
    elif final == "running":
        summary = f"attempt {final_attempt} is still running"
    else:
        summary = f"ended {final} after {n} attempt(s); no later retry recorded"
    return RunOutcome(
        final_status=final,
        succeeded=succeeded,
        attempts=n,
        recovered=succeeded and failed_before,
        summary=summary,
    )


def _recent_failed_runs(
    store: Store,
    limit: int,
    task_slug: str | None,
    since: datetime | None,
    after: tuple[str, int] | None,
) -> tuple[list[tuple[dict[str, Any], list[tuple[int, str]]]], bool]:
    """The newest ``limit`` runs with a failed attempt (after ``after``), each as its latest
    failed attempt with the (attempt, status) of all its attempts, and whether more exist.

    A run is listed at its latest failed attempt only, so an earlier failed attempt of a run
    that a previous page listed never lists it again. Reads failed attempts in growing
    batches until enough runs."""
    fetch = limit * 2 + 1
    while True:
        rows = store.last_failed(
            limit=min(fetch, MAX_LIMIT),
            task_slug=task_slug,
            since=since,
            after=after,
            columns=FAILURE_COLUMNS,
        )
        attempts = store.attempts_of([r["trace_id"] for r in rows])
        runs: dict[str, tuple[dict[str, Any], list[tuple[int, str]]]] = {}
        for row in rows:
            trace_id = row["trace_id"]
            of_run = attempts.get(trace_id) or [(row["attempt"], row["status"])]
            latest = max((a for a, s in of_run if s in FAILURE_STATUSES), default=row["attempt"])
            if trace_id not in runs and row["attempt"] >= latest:
                runs[trace_id] = (row, of_run)
        exhausted = len(rows) < fetch
        if len(runs) > limit or exhausted or fetch >= MAX_LIMIT:
            break
        fetch *= 4
    more = len(runs) > limit or not exhausted
    return list(runs.values())[:limit], more


def culprit(stack_trace: str | None) -> str | None:
    """The innermost frame of a Python traceback as ``dir/file.py:line in function``."""
    if not stack_trace:
        return None
    frames = list(_FRAME_RE.finditer(stack_trace))
    if not frames:
        return None
    last = frames[-1]
    path = "/".join(last["file"].replace("\\", "/").split("/")[-2:])
    return f"{path}:{last['line']} in {last['func']}"


def _short(message: str | None) -> str | None:
    if not message:
        return message
    line = message.strip().splitlines()[0] if message.strip() else ""
    return line if len(line) <= SHORT_MESSAGE else line[: SHORT_MESSAGE - 1] + "…"


def _cut_stack(stack: str | None) -> str | None:
    if stack is None or len(stack) <= MAX_STACK:
        return stack
    head, tail = stack[: MAX_STACK // 4], stack[-(MAX_STACK * 3 // 4) :]
    return f"{head}\n... ({len(stack) - len(head) - len(tail)} characters cut) ...\n{tail}"


def _summary(row: dict[str, Any]) -> ExecutionSummary:
    return ExecutionSummary(
        trace_id=row["trace_id"],
        task_slug=row["task_slug"],
        attempt=row["attempt"],
        status=row["status"],
        started_at=row["started_at"],
        duration_ms=row["duration_ms"],
        error_type=row["error_type"],
        error_message=_short(row["error_message"]),
    )


def _attempt(row: dict[str, Any]) -> Attempt:
    return Attempt(
        attempt=row["attempt"],
        span_id=row["span_id"],
        retry_of=row["retry_of"],
        status=row["status"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        duration_ms=row["duration_ms"],
        error_type=row["error_type"],
        error_message=row["error_message"],
        stack_trace=_cut_stack(row["stack_trace"]),
        stack_hash=row["stack_hash"],
        first_occurrence=bool(row["first_seen_error"]),
        host=row["host"],
        content=row["content"],
        attributes=row["attributes"],
    )


def _failure(row: dict[str, Any], attempts: list[tuple[int, str]]) -> Failure:
    outcome = run_outcome(attempts)
    return Failure(
        trace_id=row["trace_id"],
        task_slug=row["task_slug"],
        status=row["status"],
        started_at=row["started_at"],
        attempt=row["attempt"],
        failed_attempts=sum(1 for _, status in attempts if status in FAILURE_STATUSES),
        duration_ms=row["duration_ms"],
        error_type=row["error_type"],
        error_message=_short(row["error_message"]),
        culprit=culprit(row["stack_trace"]),
        stack_hash=row["stack_hash"],
        final_status=outcome.final_status,
        run=outcome.summary,
    )


def _is_new(row: dict[str, Any]) -> bool:
    """Whether the failure's error group was first seen less than a day before it."""
    age = _instant(row["started_at"]) - _instant(row["group_first_seen"])
    return age < NEW_ERROR_AGE


def _distinct_errors(rows: list[dict[str, Any]]) -> list[ErrorSummary]:
    """The error groups of the listed failures (their latest failed attempts), once each."""
    out: dict[str, ErrorSummary] = {}
    for row in rows:
        if not row["stack_hash"] or not row["group_first_seen"]:
            continue
        seen = out.get(row["stack_hash"])
        if seen is None:
            out[row["stack_hash"]] = ErrorSummary(
                stack_hash=row["stack_hash"],
                error_type=row["error_type"],
                error_message=_short(row["error_message"]),
                runs_listed=1,
                occurrences=row["group_occurrences"],
                first_seen=row["group_first_seen"],
                last_seen=row["group_last_seen"],
                is_new=_is_new(row),
            )
        else:
            seen.runs_listed += 1
            seen.is_new = seen.is_new or _is_new(row)
    return sorted(out.values(), key=lambda e: (not e.is_new, -e.runs_listed))


def _report_summary(
    window: Window,
    failures: list[Failure],
    errors: list[ErrorSummary],
    more: bool,
    continued: bool = False,
) -> str:
    """A few sentences a person can read: what failed, why, is it new, did retries fix it
    (``continued``: on a page after the first)."""
    if not failures:
        return f"No {'more ' if continued else ''}failed runs ({window.understood_as})."
    n = len(failures)
    if continued:
        lead = f"The next {n} failed run(s)" if more else f"The last {n} failed run(s)"
    elif more:
        lead = "The most recent failed run" if n == 1 else f"The {n} most recent failed runs"
    else:
        lead = f"{n} failed run(s)"
    parts = [f"{lead} ({window.understood_as}), newest at {failures[0].started_at}"]
    if errors:
        described = []
        for e in errors[:3]:
            age = "NEW, first seen" if e.is_new else "known since"
            described.append(
                f"{e.error_type}: {e.error_message} ({e.runs_listed} run(s); {age} "
                f"{e.first_seen}; {e.occurrences} occurrence(s) in all)"
            )
        rest = f" and {len(errors) - 3} more" if len(errors) > 3 else ""
        parts.append(f"{len(errors)} distinct error(s): " + "; ".join(described) + rest)
    grouped = {e.stack_hash for e in errors}
    no_error = [f for f in failures if f.stack_hash not in grouped]
    if no_error:
        statuses = sorted({f.status for f in no_error})
        parts.append(f"{len(no_error)} run(s) recorded no error ({', '.join(statuses)})")
    recovered = sum(1 for f in failures if f.final_status == "success")
    running = sum(1 for f in failures if f.final_status == "running")
    fate = f"After retries: {recovered} recovered, {n - recovered - running} ended failed"
    parts.append(fate + (f", {running} still running" if running else ""))
    return ". ".join(parts) + "."


def _empty_hint(
    store: Store,
    *,
    window: Window,
    task_id: str | None = None,
    task_slug: str | None = None,
    what: str = "executions",
) -> str:
    """Say why nothing matched: an unknown task, or a window after the newest data."""
    for column, value in (("task_slug", task_slug), ("task_id", task_id)):
        if value is not None:
            known = store.distinct_values(column)
            if value not in known:
                return f"No {column} {value!r} in this database. Known: {', '.join(known)}."
    span = store.data_range()
    if span.last_started_at is None:
        return "The database has no executions yet."
    note = empty_note(span.first_started_at, span.last_started_at, window.since, what)
    note = note[:1].upper() + note[1:] + "."
    if window.since and window.since > span.last_started_at:
        return f"{note} Pass since='all', an earlier ISO-8601 time or a longer window."
    return note
