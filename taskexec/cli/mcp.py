"""The ``mcp`` command: serve the MCP tools over stdio (default) or streamable HTTP."""

from __future__ import annotations

import gc
import os

import click
from click.core import ParameterSource

from ..db import Store
from ._common import db_argument, friendly_errors, require_extra

HOST = "127.0.0.1"


@click.command()
@db_argument
@click.option(
    "--http", "http", is_flag=True, help=f"Serve streamable HTTP on {HOST} instead of stdio."
)
@click.option(
    "--port",
    default=8002,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Port for --http.",
)
@friendly_errors
def mcp(db: str, http: bool, port: int) -> None:
    """Answer AI assistants over MCP: tasks_last_failed, tasks_by_trace, tasks_list.

    Read-only. Speaks stdio by default (for desktop MCP clients); with --http it serves
    streamable HTTP at http://127.0.0.1:PORT/mcp.
    """
    if not http and click.get_current_context().get_parameter_source("port") != (
        ParameterSource.DEFAULT
    ):
        raise click.UsageError("--port only applies with --http")
    require_extra("mcp", "mcp")
    path = os.path.abspath(db)
    Store.open_readonly(path).close()  # a missing or foreign database fails here, in one line
    from ..faces.mcp.server import build_server  # the [mcp] extra; imported only when used

    server = build_server(path)
    # Everything imported so far lives as long as the process: keep it out of the cyclic GC,
    # whose full collections over it otherwise add ~50 ms pauses to an unlucky call.
    gc.freeze()
    if http:
        click.echo(f"taskexec MCP on http://{HOST}:{port}/mcp (read-only {path})", err=True)
        server.run("streamable-http", host=HOST, port=port)
    else:
        server.run("stdio")
