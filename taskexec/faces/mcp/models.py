"""The answers of the MCP tools as pydantic models, whose JSON schemas are the output schemas.

Field descriptions reach the client in the output schema, so they say what a value means.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

#: Counting matches stops here: an exact count over a million rows costs tens of milliseconds,
#: and "at least 10,000" is as useful to a reader as the exact number.
COUNT_CAP = 10_000


class Window(BaseModel):
    """How the time arguments were understood: canonical UTC bounds plus a phrase."""

    since: str | None = Field(description="Inclusive lower bound on started_at (UTC), if any.")
    until: str | None = Field(None, description="Exclusive upper bound on started_at (UTC).")
    understood_as: str = Field(description="The bounds in words, e.g. 'last 24h'.")


class ExecutionSummary(BaseModel):
    """One attempt, compact: enough to pick what to look at next."""

    trace_id: str = Field(description="The logical run; pass it to tasks_by_trace.")
    span_id: str
    task_slug: str
    task_id: str
    attempt: int
    status: str
    started_at: str
    duration_ms: float | None
    error_type: str | None
    error_message: str | None = Field(description="First line, shortened.")


class ExecutionList(BaseModel):
    """Answer of tasks_list."""

    window: Window
    executions: list[ExecutionSummary] = Field(description="Newest first.")
    returned: int
    total_matching: int = Field(
        description=f"How many executions match the filters; counting stops at {COUNT_CAP:,}."
    )
    total_is_exact: bool = Field(description=f"False when at least {COUNT_CAP:,} match.")
    truncated: bool = Field(description="True when more match than were returned.")
    hint: str | None = Field(None, description="What to try when the answer is empty.")


class RunOutcome(BaseModel):
    """How a logical run (all attempts of one trace) ended."""

    final_status: str = Field(description="Status of the last attempt recorded.")
    succeeded: bool
    attempts: int = Field(description="Attempts recorded for the run.")
    recovered: bool = Field(description="A failed attempt was followed by a successful retry.")
    summary: str


class Attempt(BaseModel):
    """One attempt of a run with everything needed to debug it."""

    attempt: int
    span_id: str
    retry_of: str | None
    status: str
    started_at: str
    ended_at: str | None
    duration_ms: float | None
    error_type: str | None
    error_message: str | None
    stack_trace: str | None
    stack_hash: str | None = Field(description="Error group fingerprint.")
    first_occurrence: bool = Field(description="This attempt is the first ever of its error group.")
    host: str | None
    content: str | None
    attributes: dict[str, Any]


class TraceDetail(BaseModel):
    """Answer of tasks_by_trace."""

    trace_id: str
    task_slug: str
    task_id: str
    outcome: RunOutcome
    attempts: list[Attempt] = Field(description="In attempt order.")


class ErrorGroupInfo(BaseModel):
    """The error group (same stack hash) a failure belongs to."""

    stack_hash: str
    occurrences: int = Field(description="Failures with this stack hash, all time.")
    first_seen: str
    last_seen: str
    is_new: bool = Field(description="First seen less than 24h before this failure.")
    first_occurrence: bool = Field(description="This failure is the group's first occurrence.")


class Failure(BaseModel):
    """One failed run: its latest failed attempt, that error's group, and how the run ended."""

    trace_id: str = Field(description="Pass it to tasks_by_trace for every attempt and stack.")
    span_id: str = Field(description="The latest failed attempt of the run.")
    task_slug: str
    task_id: str
    attempt: int = Field(description="Number of that attempt.")
    failed_attempts: int = Field(description="Attempts of this run that failed.")
    status: str
    started_at: str
    duration_ms: float | None
    error_type: str | None
    error_message: str | None
    culprit: str | None = Field(description="Innermost stack frame: file:line in function.")
    error_group: ErrorGroupInfo | None = Field(description="None when no error was recorded.")
    run: RunOutcome


class ErrorSummary(BaseModel):
    """One distinct error among the failed runs returned."""

    stack_hash: str
    error_type: str | None
    error_message: str | None
    runs_listed: int = Field(description="How many of the listed runs failed with it.")
    occurrences: int = Field(description="Failed attempts with this stack hash, all time.")
    first_seen: str
    is_new: bool


class FailureReport(BaseModel):
    """Answer of tasks_last_failed."""

    window: Window
    summary: str = Field(description="The answer in a few sentences.")
    failures: list[Failure] = Field(description="One per failed run, newest first.")
    distinct_errors: list[ErrorSummary] = Field(
        description="New errors first, then the most frequent in this list."
    )
    returned: int
    truncated: bool = Field(description="True when older failed runs were left out.")
    hint: str | None = None


class Alert(BaseModel):
    """One alert that `taskexec check` opened: what it found, about which task, since when."""

    kind: str = Field(
        description="What was found: missed (no run for a due slot), late (started after its "
        "slot plus grace), stuck (running, not heard from), long (longer than expected), "
        "new_error (an error group never seen before), regression (a known error back after a "
        "quiet spell or a streak of successes) or spike (failure rate jumped)."
    )
    task_slug: str
    title: str = Field(description="One line: what was found.")
    detail: str | None = Field(description="The numbers behind it (allowance, durations, text).")
    state: str = Field(description="open, or resolved once a check no longer found it.")
    since: str | None = Field(description="When the problem started, if known (UTC).")
    opened_at: str = Field(description="When a check opened it (its latest opening, UTC).")
    last_seen_at: str = Field(description="The latest check that still found it (UTC).")
    resolved_at: str | None = Field(description="When it resolved (UTC); null while open.")
    trace_id: str | None = Field(
        description="The run to look at, when the finding names one; pass it to tasks_by_trace."
    )
    span_id: str | None = Field(description="The attempt to look at, when the finding names one.")
    stack_hash: str | None = Field(description="The error group, for new_error and regression.")
    times_opened: int = Field(description="How often it opened; above 1 it keeps coming back.")


class AlertCounts(BaseModel):
    """How many alerts there are in each state (for the task, when one is given)."""

    open: int
    resolved: int = Field(description=f"Counting stops at {COUNT_CAP:,}.")


class AlertList(BaseModel):
    """Answer of tasks_alerts."""

    summary: str = Field(description="The answer in one line.")
    state: str = Field(description="Which alerts were asked for: open, resolved or all.")
    alerts: list[Alert] = Field(description="Newest opened first.")
    counts: AlertCounts
    returned: int
    truncated: bool = Field(description="True when more alerts match than were returned.")
    hint: str | None = Field(None, description="What to try when the answer is empty.")
