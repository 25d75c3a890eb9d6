"""What the MCP tools answer, as plain functions over a read-only Store (models: ``models.py``).

The tools declared in ``declare.py`` call these, for ``taskexec mcp`` and the Datasette hook
alike, so the answers are the same whichever way an assistant connects. Nothing here knows about
MCP or SQL: bad arguments raise ``InvalidRecord`` naming the argument and saying how to fix it;
the tools turn that into a tool error.
"""

from __future__ import annotations

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
    Alert,
    AlertCounts,
    AlertList,
    Attempt,
    ErrorGroupInfo,
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
    now: datetime | None = None,
) -> ExecutionList:
    """Executions matching the filters, newest first, with the total that match."""
    window, since_dt, until_dt = make_window(since, until, now)
    filters: dict[str, Any] = dict(
        task_id=task_id, task_slug=task_slug, status=status, since=since_dt, until=until_dt
    )
    rows = store.list_executions(**filters, limit=limit)
    total = len(rows) if len(rows) < limit else store.count_executions(**filters, cap=COUNT_CAP)
    hint = None
    if not rows:
        hint = _empty_hint(store, task_id=task_id, task_slug=task_slug, window=window)
    return ExecutionList(
        window=window,
        executions=[_summary(r) for r in rows],
        returned=len(rows),
        total_matching=min(total, COUNT_CAP),
        total_is_exact=total <= COUNT_CAP,
        truncated=total > len(rows),
        hint=hint,
    )


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
    now: datetime | None = None,
) -> FailureReport:
    """The most recent failed runs, each with its error group and the run's final outcome.

    Retries make one broken run fail several times; a person wants that once, so failed
    attempts are folded into their run (the latest failed attempt represents it).
    """
    window, since_dt, _ = make_window(since, None, now)
    runs, more = _recent_failed_runs(store, limit, task_slug, since_dt)
    attempts = store.attempts_of(list(runs))
    failures = [
        _failure(rows[0], attempts.get(trace_id) or [(rows[0]["attempt"], rows[0]["status"])])
        for trace_id, rows in runs.items()
    ]
    errors = _distinct_errors(failures)
    hint = None
    if not failures:
        hint = _empty_hint(store, task_slug=task_slug, window=window, what="failures")
    return FailureReport(
        window=window,
        summary=_report_summary(window, failures, errors, more),
        failures=failures,
        distinct_errors=errors,
        returned=len(failures),
        truncated=more,
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
    store: Store, limit: int, task_slug: str | None, since: datetime | None
) -> tuple[dict[str, list[dict[str, Any]]], bool]:
    """The newest ``limit`` runs with a failed attempt (newest failed attempt first), and
    whether older ones exist. Reads failed attempts in growing batches until enough runs."""
    fetch = limit * 2 + 1
    while True:
        rows = store.last_failed(limit=min(fetch, MAX_LIMIT), task_slug=task_slug, since=since)
        runs: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            runs.setdefault(row["trace_id"], []).append(row)
        exhausted = len(rows) < fetch
        if len(runs) > limit or exhausted or fetch >= MAX_LIMIT:
            break
        fetch *= 4
    more = len(runs) > limit or not exhausted
    return dict(list(runs.items())[:limit]), more


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
        span_id=row["span_id"],
        task_slug=row["task_slug"],
        task_id=row["task_id"],
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
    group = None
    if row["stack_hash"] and row["group_first_seen"]:
        first_seen = row["group_first_seen"]
        age = _instant(row["started_at"]) - _instant(first_seen)
        group = ErrorGroupInfo(
            stack_hash=row["stack_hash"],
            occurrences=row["group_occurrences"],
            first_seen=first_seen,
            last_seen=row["group_last_seen"],
            is_new=age < NEW_ERROR_AGE,
            first_occurrence=bool(row["first_seen_error"]),
        )
    return Failure(
        trace_id=row["trace_id"],
        span_id=row["span_id"],
        task_slug=row["task_slug"],
        task_id=row["task_id"],
        attempt=row["attempt"],
        failed_attempts=sum(1 for _, status in attempts if status in FAILURE_STATUSES),
        status=row["status"],
        started_at=row["started_at"],
        duration_ms=row["duration_ms"],
        error_type=row["error_type"],
        error_message=row["error_message"],
        culprit=culprit(row["stack_trace"]),
        error_group=group,
        run=run_outcome(attempts),
    )


def _distinct_errors(failures: list[Failure]) -> list[ErrorSummary]:
    out: dict[str, ErrorSummary] = {}
    for failure in failures:
        group = failure.error_group
        if group is None:
            continue
        seen = out.get(group.stack_hash)
        if seen is None:
            out[group.stack_hash] = ErrorSummary(
                stack_hash=group.stack_hash,
                error_type=failure.error_type,
                error_message=_short(failure.error_message),
                runs_listed=1,
                occurrences=group.occurrences,
                first_seen=group.first_seen,
                is_new=group.is_new,
            )
        else:
            seen.runs_listed += 1
            seen.is_new = seen.is_new or group.is_new
    return sorted(out.values(), key=lambda e: (not e.is_new, -e.runs_listed))


def _report_summary(
    window: Window, failures: list[Failure], errors: list[ErrorSummary], more: bool
) -> str:
    """A few sentences a person can read: what failed, why, is it new, did retries fix it."""
    if not failures:
        return f"No failed runs ({window.understood_as})."
    n = len(failures)
    if more:
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
    no_error = sum(1 for f in failures if f.error_group is None)
    if no_error:
        statuses = sorted({f.status for f in failures if f.error_group is None})
        parts.append(f"{no_error} run(s) recorded no error ({', '.join(statuses)})")
    recovered = sum(1 for f in failures if f.run.succeeded)
    running = sum(1 for f in failures if f.run.final_status == "running")
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
