"""datasette-mcp hook: the taskexec MCP tools at Datasette's ``/-/mcp``, next to its SQL tools.

For every database Datasette serves that is a taskexec database (it has the
``_taskexec_migrations`` table), ``tasks_last_failed``, ``tasks_by_trace``, ``tasks_list`` and
``tasks_alerts`` answer exactly as ``taskexec mcp`` does: the same declaration
(``declare.py``), plus one optional ``database`` argument, needed only when several taskexec
databases are served. This module only says which file a call reads; Datasette's view
permissions apply to the caller.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from datasette.hookspecs import hookimpl

from ...db import Store
from ...errors import TaskexecError

if TYPE_CHECKING:
    from datasette.app import Datasette

# Datasette imports every plugin module at startup. Without the [mcp] extra (and therefore
# without datasette-mcp, which needs it) there is nothing to register, and Datasette must still
# start: so these imports may fail and the hook below is then never called.
try:
    from mcp.server.mcpserver import Context, MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    from .declare import register_tools
except ImportError:  # pragma: no cover - exercised by a subprocess test
    pass


def _mcp_databases(datasette: Datasette) -> dict[str, str]:
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
    """Register the taskexec tools on datasette-mcp's server (if a taskexec DB is served)."""
    databases = _mcp_databases(datasette)
    if not databases:
        return

    async def chosen_database(ctx: Context, database: str | None) -> str:
        return await _database_path(datasette, databases, ctx, database)

    register_tools(mcp, chosen_database, database_argument=True)


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
