"""``taskexec mcp``: the read-only tools over stdio or streamable HTTP for one database.

``build_server(db_path)`` returns an ``MCPServer`` with ``tasks_last_failed`` (what failed and
why), ``tasks_by_trace`` (one run's attempts with stack traces), ``tasks_list`` (browse and
count executions) and ``tasks_alerts`` (what ``taskexec check`` found), as declared in
``declare.py``; every call reads ``db_path``.
"""

from __future__ import annotations

from mcp.server.mcpserver import Context, MCPServer

from ...version import __version__
from .declare import register_tools

INSTRUCTIONS = (
    "Read-only access to a taskexec database: one row per attempt of a scheduled or background "
    "task. Start with tasks_last_failed to see what failed recently and why; then "
    "tasks_by_trace(trace_id) for every attempt of one run with stack traces; use tasks_list to "
    "browse or count executions by task, status and time; tasks_alerts for missed, late, stuck "
    "or slow runs and new errors that taskexec check found. Times are UTC."
)


def build_server(db_path: str) -> MCPServer:
    """An MCP server answering the tools from the taskexec database at ``db_path``.

    The path is not checked here: a missing database is reported by every call (the CLI checks
    it once at startup as well).
    """
    server = MCPServer("taskexec", title="taskexec", version=__version__, instructions=INSTRUCTIONS)

    async def this_database(ctx: Context, database: str | None) -> str:
        return db_path

    register_tools(server, this_database)
    return server
