"""The MCP face: three read-only tools an AI assistant calls to debug a task scheduler.

``build_server(db_path)`` returns an ``MCPServer`` with ``tasks_last_failed`` (what failed and
why), ``tasks_by_trace`` (one run's attempts with stack traces) and ``tasks_list`` (browse and
count executions). The tools are thin: the answers come from ``taskexec.mcp_tools`` as the
models of ``taskexec.mcp_models``, shared with the Datasette hook (``taskexec.datasette_mcp``).
Each call opens the database read-only and closes it (sync tools run on worker threads), so no
argument can make a tool write.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Annotated, Literal, get_args

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from . import __version__, mcp_models, mcp_tools
from .errors import TaskexecError
from .model import STATUSES
from .store import Store

Status = Literal["running", "success", "failed", "timeout", "cancelled", "abandoned"]
assert get_args(Status) == STATUSES, "Status must list taskexec.model.STATUSES"

_WHEN = (
    "ISO-8601 with a zone (e.g. 2026-11-19T00:00:00Z or 2026-11-19T02:00:00+02:00) or a window "
    "back from now (e.g. 24h, 7d, 30m, 2w). The answer's `window` says how it was understood."
)
TaskIdArg = Annotated[
    str | None,
    Field(max_length=200, description="Only this task definition id, exact (e.g. 'task_011')."),
]
TaskSlugArg = Annotated[
    str | None,
    Field(max_length=200, description="Only this task name, exact (e.g. 'sync_inbox')."),
]
StatusArg = Annotated[Status | None, Field(description="Only attempts with this status.")]
SinceArg = Annotated[
    str | None, Field(max_length=64, description=f"Only attempts started at or after. {_WHEN}")
]
UntilArg = Annotated[
    str | None, Field(max_length=64, description=f"Only attempts started before. {_WHEN}")
]
ListLimitArg = Annotated[
    int, Field(ge=1, le=200, description="How many executions to return (1-200).")
]
FailedLimitArg = Annotated[
    int, Field(ge=1, le=100, description="How many failed runs to return (1-100).")
]
TraceIdArg = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        description="The run's trace id: 32 hex characters, from tasks_list or tasks_last_failed.",
    ),
]

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)

INSTRUCTIONS = (
    "Read-only access to a taskexec database: one row per attempt of a scheduled or background "
    "task. Start with tasks_last_failed to see what failed recently and why; then "
    "tasks_by_trace(trace_id) for every attempt of one run with stack traces; use tasks_list to "
    "browse or count executions by task, status and time. Times are UTC."
)

LIST_DOC = """List task executions (one row per attempt), newest first, with how many match.

Use it to browse or count runs: "did sync_inbox run today?", "how many timeouts since Monday?",
"what ran between 02:00 and 03:00?". Filters combine with AND. `total_matching` counts all
matches (exact up to 10,000) and `truncated` says whether more exist than were returned.
For failures and their causes prefer tasks_last_failed; for one run's details, tasks_by_trace."""

TRACE_DOC = """Every attempt of one logical run (a trace), in attempt order, with error details.

Use it after tasks_list or tasks_last_failed returned a trace_id and you need the why: each
attempt's status, timing, error type, message, stack trace and stack hash (error group), and
`outcome` says whether the run finally succeeded after its retries."""

FAILED_DOC = """The most recent failed runs and why: the first tool to call when debugging.

Answers "what failed last night and why?". One entry per failed run (its latest failed attempt;
failed, timeout or abandoned), newest first, each with the error, the innermost stack frame
(`culprit`), its error group (occurrences, first seen, `is_new` when first seen less than 24h
before this failure) and how the run ended after retries (`run`). `summary` says it in words and
`distinct_errors` groups the causes. Follow up with tasks_by_trace(trace_id) for stack traces."""


def run_tool(db_path: str, answer: Callable[..., BaseModel], **kwargs: object) -> CallToolResult:
    """Open the database read-only, compute one answer, close it; return it as a tool result.

    Anticipated problems (bad arguments, a missing or foreign database, SQLite errors) become a
    ``ToolError`` whose one-line message says how to fix the call; no traceback reaches the client.
    """
    try:
        store = Store.open_readonly(db_path)
    except TaskexecError as exc:
        raise ToolError(str(exc)) from None
    try:
        return as_result(answer(store, **kwargs))
    except TaskexecError as exc:
        raise ToolError(str(exc)) from None
    except sqlite3.Error as exc:
        raise ToolError(f"database error ({exc}); retry, or check {db_path}") from None
    finally:
        store.close()


def as_result(answer: BaseModel) -> CallToolResult:
    """The answer as structured content plus the same JSON, compact, as text for clients that
    only read text (the SDK's default text is indented: a third more bytes and tokens)."""
    return CallToolResult(
        content=[TextContent(type="text", text=answer.model_dump_json())],
        structured_content=answer.model_dump(mode="json"),
    )


def build_server(db_path: str) -> MCPServer:
    """An MCP server answering the three tools from the taskexec database at ``db_path``.

    The path is not checked here: a missing database is reported by every call (the CLI checks
    it once at startup as well).
    """
    server = MCPServer("taskexec", title="taskexec", version=__version__, instructions=INSTRUCTIONS)

    def tasks_list(
        task_id: TaskIdArg = None,
        task_slug: TaskSlugArg = None,
        status: StatusArg = None,
        since: SinceArg = None,
        until: UntilArg = None,
        limit: ListLimitArg = 20,
    ) -> Annotated[CallToolResult, mcp_models.ExecutionList]:
        return run_tool(
            db_path,
            mcp_tools.list_executions,
            task_id=task_id,
            task_slug=task_slug,
            status=status,
            since=since,
            until=until,
            limit=limit,
        )

    def tasks_by_trace(trace_id: TraceIdArg) -> Annotated[CallToolResult, mcp_models.TraceDetail]:
        return run_tool(db_path, mcp_tools.trace, trace_id=trace_id)

    def tasks_last_failed(
        limit: FailedLimitArg = 10, task_slug: TaskSlugArg = None, since: SinceArg = None
    ) -> Annotated[CallToolResult, mcp_models.FailureReport]:
        return run_tool(
            db_path, mcp_tools.last_failed, limit=limit, task_slug=task_slug, since=since
        )

    for fn, title, doc in (
        (tasks_last_failed, "Latest failed runs and why", FAILED_DOC),
        (tasks_by_trace, "All attempts of one run", TRACE_DOC),
        (tasks_list, "List task executions", LIST_DOC),
    ):
        server.add_tool(fn, title=title, description=doc, annotations=READ_ONLY)
    return server
