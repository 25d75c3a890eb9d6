"""The one declaration of the MCP tools: names, typed and bounded parameters, descriptions
(the docstrings), annotations and output models.

``register_tools(mcp, find_database)`` adds them to an ``MCPServer``; both faces of the tools use
it and only say which database file a call reads: ``taskexec mcp`` (``server.py``) always its
own, the Datasette hook (``datasette_hook.py``) the served database named by the extra
``database`` argument, which only it offers. Each call reads that file on a worker thread
through a read-only connection (``reader``: kept open while the file and its schema stay the
same), so no argument can make a tool write; the answers come from ``tools.py`` as the models
of ``models.py``.
"""

from __future__ import annotations

import functools
import inspect
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, get_args

import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from ...db import Store
from ...errors import TaskexecError
from ...model import STATUSES, WINDOW_FORMS
from . import models
from . import tools as answers

#: How a tool call finds its database: given the call's context and its ``database`` argument
#: (None when not passed, and always None where the argument is not offered), the path of the
#: taskexec database file to read. Raise ``ToolError`` to refuse the call.
FindDatabase = Callable[[Context, str | None], Awaitable[str]]

Status = Literal["running", "success", "failed", "timeout", "cancelled", "abandoned"]
assert get_args(Status) == STATUSES, "Status must list taskexec.model.STATUSES"

_WHEN = (
    f"The same window as every taskexec face: {WINDOW_FORMS}; a window counts back from now "
    "(e.g. 24h), ISO-8601 needs a zone (e.g. 2026-11-19T00:00:00Z or "
    "2026-11-19T02:00:00+02:00). The answer's `window` says how it was understood."
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
    int,
    Field(
        ge=1,
        le=models.LIST_PAGE,
        description=f"How many executions a page holds (1-{models.LIST_PAGE}); "
        "`next_cursor` continues.",
    ),
]
FailedLimitArg = Annotated[
    int,
    Field(
        ge=1,
        le=models.FAILED_PAGE,
        description=f"How many failed runs a page holds (1-{models.FAILED_PAGE}); "
        "`next_cursor` continues.",
    ),
]
CursorArg = Annotated[
    str | None,
    Field(
        max_length=1000,
        description="The `next_cursor` of the previous answer, to get the page after it "
        "(filters may be left out: the cursor carries them).",
    ),
]
AlertStateArg = Annotated[
    Literal["open", "resolved", "all"],
    Field(description="Which alerts: open (still found by the latest check), resolved, or all."),
]
AlertLimitArg = Annotated[
    int, Field(ge=1, le=200, description="How many alerts to return (1-200).")
]
TraceIdArg = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        description="The run's trace id: 32 hex characters, from tasks_list or tasks_last_failed.",
    ),
]
DatabaseArg = Annotated[
    str | None,
    Field(
        max_length=200,
        description="Which taskexec database (its Datasette name, see list_databases); "
        "optional when only one is served.",
    ),
]

#: The extra argument of the Datasette hook's tools (see ``register_tools``).
_DATABASE = inspect.Parameter(
    "database", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=DatabaseArg
)


READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)


# -- the tools: each a plain function of a read-only Store and its typed arguments ---------------
# Parameters, defaults and bounds become the input schema; the docstring is the description; the
# return type is the output model. ``register_tools`` adds how the Store is found.


def tasks_last_failed(
    store: Store,
    limit: FailedLimitArg = 10,
    task_slug: TaskSlugArg = None,
    since: SinceArg = None,
    cursor: CursorArg = None,
) -> models.FailureReport:
    """The most recent failed runs and why: the first tool to call when debugging.

    Answers "what failed last night and why?". One entry per failed run (its latest failed attempt;
    failed, timeout or abandoned), newest first, each with the error, the innermost stack frame
    (`culprit`), its error group (`stack_hash`) and how the run ended after retries (`run`,
    `final_status`). `distinct_errors` describes each error group once (occurrences, first seen,
    `is_new` when first seen less than 24h before a listed failure); `summary` says it in words.
    More than a page: pass `next_cursor` as `cursor`. Follow up with tasks_by_trace(trace_id).
    """
    return answers.last_failed(store, limit=limit, task_slug=task_slug, since=since, cursor=cursor)


def tasks_by_trace(store: Store, trace_id: TraceIdArg) -> models.TraceDetail:
    """Every attempt of one logical run (a trace), in attempt order, with error details.

    Use it after tasks_list or tasks_last_failed returned a trace_id and you need the why: each
    attempt's status, timing, error type, message, stack trace and stack hash (error group), and
    `outcome` says whether the run finally succeeded after its retries.
    """
    return answers.trace(store, trace_id)


def tasks_list(
    store: Store,
    task_id: TaskIdArg = None,
    task_slug: TaskSlugArg = None,
    status: StatusArg = None,
    since: SinceArg = None,
    until: UntilArg = None,
    limit: ListLimitArg = 20,
    cursor: CursorArg = None,
) -> models.ExecutionList:
    """List task executions (one row per attempt), newest first, with how many match.

    Use it to browse or count runs: "did sync_inbox run today?", "how many timeouts since Monday?",
    "what ran between 02:00 and 03:00?". Filters combine with AND. `total_matching` counts all
    matches (exact up to 10,000); `truncated` says more exist than this page holds, and passing
    `next_cursor` as `cursor` returns the next page. Each row is compact (the error's first line);
    for failures and their causes prefer tasks_last_failed, for one run's details tasks_by_trace.
    """
    return answers.list_executions(
        store,
        task_id=task_id,
        task_slug=task_slug,
        status=status,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )


def tasks_alerts(
    store: Store,
    state: AlertStateArg = "open",
    task_slug: TaskSlugArg = None,
    limit: AlertLimitArg = 50,
) -> models.AlertList:
    """Alerts found by `taskexec check`: missed, late, stuck or overlong runs, new or returning
    errors and failure-rate spikes, newest first; the first tool for "is anything wrong now?".

    Each alert says its kind, task, a one-line title and the numbers behind it (`detail`), since
    when the problem exists, when it opened and, once gone, resolved, and how often it opened
    (`times_opened` above 1: it keeps coming back). `state` picks open (default), resolved or all
    alerts; `counts` gives how many are open and resolved either way. When an alert names a run,
    pass its `trace_id` to tasks_by_trace; for failures in general use tasks_last_failed.
    """
    return answers.alerts(store, state=state, task_slug=task_slug, limit=limit)


#: The tools in the order clients list them, with their titles.
TOOLS: tuple[tuple[Callable[..., BaseModel], str], ...] = (
    (tasks_last_failed, "Latest failed runs and why"),
    (tasks_by_trace, "All attempts of one run"),
    (tasks_list, "List task executions"),
    (tasks_alerts, "Open and recent alerts"),
)


def register_tools(
    mcp: MCPServer, find_database: FindDatabase, *, database_argument: bool = False
) -> None:
    """Add ``tasks_last_failed``, ``tasks_by_trace``, ``tasks_list`` and ``tasks_alerts`` to
    ``mcp``.

    Each call asks ``find_database`` for its file, then computes the answer on a worker thread
    from the file opened read-only. With ``database_argument`` every tool also takes the
    optional ``database`` argument (passed to ``find_database``); without, it has no such
    argument and ``find_database`` gets None.
    """
    for declared, title in TOOLS:
        tool = _mcp_tool(declared, find_database, database_argument)
        mcp.add_tool(tool, title=title, description=inspect.getdoc(declared), annotations=READ_ONLY)


def _mcp_tool(
    declared: Callable[..., BaseModel], find_database: FindDatabase, database_argument: bool
) -> Callable[..., Awaitable[CallToolResult]]:
    """The callable the SDK registers for a declared tool.

    Its signature (which the SDK reads for the input and output schemas) is the declared one
    with the Store replaced by the SDK's Context, plus ``database`` when offered, and returning
    the answer already as a ``CallToolResult`` (see ``as_result``), published under the
    model's compact schema (``models.published``).
    """

    async def tool(ctx: Context, **arguments: Any) -> CallToolResult:
        path = await find_database(ctx, arguments.pop("database", None))
        return await anyio.to_thread.run_sync(
            functools.partial(run_tool, path, declared, **arguments)
        )

    declared_signature = inspect.signature(declared, eval_str=True)
    _store, *parameters = declared_signature.parameters.values()  # the Store is ours to pass
    context = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Context)
    extra = [_DATABASE] if database_argument else []
    signature = inspect.Signature(
        [context, *parameters, *extra],
        return_annotation=Annotated[
            CallToolResult, models.published(declared_signature.return_annotation)
        ],
    )
    tool.__name__ = tool.__qualname__ = declared.__name__
    tool.__doc__ = declared.__doc__
    tool.__signature__ = signature  # type: ignore[attr-defined]
    tool.__annotations__ = {
        **{p.name: p.annotation for p in signature.parameters.values()},
        "return": signature.return_annotation,
    }
    return tool


def run_tool(db_path: str, compute: Callable[..., BaseModel], **kwargs: object) -> CallToolResult:
    """Compute one answer from the database opened read-only; return it as a tool result.

    Anticipated problems (bad arguments, a missing or foreign database, SQLite errors) become a
    ``ToolError`` whose one-line message says how to fix the call; no traceback reaches the client.
    """
    try:
        store = reader(db_path)
    except TaskexecError as exc:
        raise ToolError(str(exc)) from None
    try:
        return as_result(compute(store, **kwargs))
    except TaskexecError as exc:
        raise ToolError(str(exc)) from None
    except sqlite3.Error as exc:
        raise ToolError(f"database error ({exc}); retry, or check {db_path}") from None


#: Read-only stores kept open between calls, by path, newest used last (at most ``_KEEP``).
_READERS: OrderedDict[str, tuple[Store, tuple[int, int] | None, int]] = OrderedDict()
_READERS_LOCK = threading.Lock()
_KEEP = 8


def reader(db_path: str) -> Store:
    """The database at ``db_path`` opened read-only, kept open from call to call.

    Opening costs more than most answers (SQLite reads and parses the whole schema, rollup
    triggers included: milliseconds), so the store stays open and is reused while the same
    file with the same schema is at that path; a file put in its place, removed, or migrated
    is opened (and checked) again. Calls share it: the store serialises its queries. A reader
    dropped from the cache is closed by the garbage collector once no call uses it.
    """
    with _READERS_LOCK:
        found = _READERS.get(db_path)
        if found is not None:
            store, identity, version = found
            if store.file_identity() == identity and store.schema_version() == version:
                _READERS.move_to_end(db_path)
                return store
            del _READERS[db_path]
        store = Store.open_readonly(db_path)
        _READERS[db_path] = (store, store.file_identity(), store.schema_version())
        while len(_READERS) > _KEEP:
            _READERS.popitem(last=False)
        return store


def as_result(answer: BaseModel) -> CallToolResult:
    """The answer as structured content plus the same JSON, compact, as text for clients that
    only read text (the SDK's default text is indented: a third more bytes and tokens).
    Fields without a value are left out of both."""
    return CallToolResult(
        content=[TextContent(type="text", text=answer.model_dump_json(exclude_none=True))],
        structured_content=answer.model_dump(mode="json", exclude_none=True),
    )
