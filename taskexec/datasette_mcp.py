"""datasette-mcp hook: the taskexec MCP tools at Datasette's ``/-/mcp``, next to its SQL tools.

For every database Datasette serves that is a taskexec database (it has the
``_taskexec_migrations`` table), ``tasks_last_failed``, ``tasks_by_trace`` and ``tasks_list``
answer exactly as ``taskexec mcp`` does: same parameters, same descriptions, same answers from
``taskexec.mcp_tools``. They take one extra, optional ``database`` argument, needed only when
several taskexec databases are served. Datasette's view permissions apply to the caller.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Annotated, Any

from datasette import hookimpl

from .errors import TaskexecError
from .store import Store

if TYPE_CHECKING:
    from datasette.app import Datasette

# Datasette imports every plugin module at startup. Without the [mcp] extra (and therefore
# without datasette-mcp, which needs it) there is nothing to register, and Datasette must still
# start: so these imports may fail and the hook below is then never called.
try:
    import anyio.to_thread
    from mcp.server.mcpserver import Context, MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import CallToolResult
    from pydantic import Field

    from . import mcp_models, mcp_tools
    from .mcp_server import (
        FAILED_DOC,
        LIST_DOC,
        READ_ONLY,
        TRACE_DOC,
        FailedLimitArg,
        ListLimitArg,
        SinceArg,
        StatusArg,
        TaskIdArg,
        TaskSlugArg,
        TraceIdArg,
        UntilArg,
        run_tool,
    )

    DatabaseArg = Annotated[
        str | None,
        Field(
            max_length=200,
            description="Which taskexec database (its Datasette name, see list_databases); "
            "optional when only one is served.",
        ),
    ]
except ImportError:  # pragma: no cover - exercised by a subprocess test
    pass


def taskexec_databases(datasette: Datasette) -> dict[str, str]:
    """Name -> file path of the served databases that are taskexec databases, by name."""
    found = {}
    for name, db in sorted(datasette.databases.items()):
        if name == "_internal" or db.is_memory or not db.path:
            continue
        try:
            Store.open_readonly(db.path).close()  # checks for _taskexec_migrations
        except TaskexecError:
            continue
        found[name] = db.path
    return found


@hookimpl
def register_mcp_tools(datasette: Datasette, mcp: MCPServer) -> None:
    """Register the three taskexec tools on datasette-mcp's server (if a taskexec DB is served)."""
    databases = taskexec_databases(datasette)
    if not databases:
        return

    async def answer(ctx: Context, database: str | None, fn: Any, **kwargs: Any) -> CallToolResult:
        path = await _database_path(datasette, databases, ctx, database)
        return await anyio.to_thread.run_sync(functools.partial(run_tool, path, fn, **kwargs))

    async def tasks_list(
        ctx: Context,
        task_id: TaskIdArg = None,
        task_slug: TaskSlugArg = None,
        status: StatusArg = None,
        since: SinceArg = None,
        until: UntilArg = None,
        limit: ListLimitArg = 20,
        database: DatabaseArg = None,
    ) -> Annotated[CallToolResult, mcp_models.ExecutionList]:
        return await answer(
            ctx,
            database,
            mcp_tools.list_executions,
            task_id=task_id,
            task_slug=task_slug,
            status=status,
            since=since,
            until=until,
            limit=limit,
        )

    async def tasks_by_trace(
        ctx: Context, trace_id: TraceIdArg, database: DatabaseArg = None
    ) -> Annotated[CallToolResult, mcp_models.TraceDetail]:
        return await answer(ctx, database, mcp_tools.trace, trace_id=trace_id)

    async def tasks_last_failed(
        ctx: Context,
        limit: FailedLimitArg = 10,
        task_slug: TaskSlugArg = None,
        since: SinceArg = None,
        database: DatabaseArg = None,
    ) -> Annotated[CallToolResult, mcp_models.FailureReport]:
        return await answer(
            ctx, database, mcp_tools.last_failed, limit=limit, task_slug=task_slug, since=since
        )

    for fn, title, doc in (
        (tasks_last_failed, "Latest failed runs and why", FAILED_DOC),
        (tasks_by_trace, "All attempts of one run", TRACE_DOC),
        (tasks_list, "List task executions", LIST_DOC),
    ):
        mcp.add_tool(fn, title=title, description=doc, annotations=READ_ONLY)


async def _database_path(
    datasette: Datasette, databases: dict[str, str], ctx: Context, database: str | None
) -> str:
    """The file of the database the caller named (or the only one they may see).

    Only databases this caller may view are named, in answers and in errors alike, so a hidden
    database looks exactly like one that does not exist.
    """
    actor = _actor(ctx)
    visible = [name for name in databases if await _may_view(datasette, actor, name)]
    if database is None and len(visible) == 1:
        return databases[visible[0]]
    if database is not None and database in visible:
        return databases[database]
    if not visible:
        raise ToolError("no taskexec database is available to you here")
    names = ", ".join(visible)
    if database is None:
        raise ToolError(f"several taskexec databases are served; pass database= one of {names}")
    raise ToolError(f"no taskexec database {database!r} is available here; use one of: {names}")


async def _may_view(datasette: Datasette, actor: dict[str, Any] | None, database: str) -> bool:
    """Datasette's own rule for showing the task_executions table to this actor."""
    visible, _ = await datasette.check_visibility(
        actor,
        permissions=[
            ("view-table", (database, "task_executions")),
            ("view-database", database),
            "view-instance",
        ],
    )
    return bool(visible)


def _actor(ctx: Context) -> dict[str, Any] | None:
    """The Datasette actor of the HTTP request behind this MCP call, if any."""
    try:
        request = ctx.request_context.request
    except (AttributeError, ValueError):
        return None
    scope = getattr(request, "scope", None)
    actor = scope.get("actor") if isinstance(scope, dict) else None
    return actor if isinstance(actor, dict) else None
