"""``taskexec metadata`` prints the Datasette metadata; ``taskexec serve`` runs Datasette on it."""

from __future__ import annotations

import socket
import threading
import time
import webbrowser
from pathlib import Path

import click

from ..db import Store
from ..errors import TaskexecError
from ..faces.datasette.metadata import DASHBOARD, DEFAULT_DATABASE, build_metadata, to_yaml
from ._common import db_argument, friendly_errors, require_extra

HOST = "127.0.0.1"


@click.command("metadata")
@click.option(
    "--database",
    default=DEFAULT_DATABASE,
    show_default=True,
    help="Database name to write it for (Datasette names it after the file).",
)
@friendly_errors
def metadata(database: str) -> None:
    """Print the Datasette metadata (YAML): canned queries from the probes, the dashboard.

    The committed metadata.yml is `taskexec metadata > metadata.yml`; `taskexec serve`
    builds the same thing in process, so no file is needed to serve.
    """
    require_extra("metadata", "datasette", ("yaml",))
    text = to_yaml(build_metadata(database))
    click.echo(text, nl=False)


@click.command()
@db_argument
@click.option(
    "--port",
    default=8001,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Port on 127.0.0.1.",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the dashboard in a browser.")
@friendly_errors
def serve(db: str, port: int, open_browser: bool) -> None:
    """Browse DB in Datasette on 127.0.0.1: dashboard, canned queries, trace pages, search."""
    require_extra("serve", "datasette")
    Store.open_readonly(db).close()  # a missing or foreign file stops here with one line
    import uvicorn

    from ..faces.datasette.plugin import make_datasette

    _check_port(port)
    datasette = make_datasette(db)
    base = f"http://{HOST}:{port}"
    dashboard = f"{base}/-/dashboards/{DASHBOARD}"
    click.echo(f"Serving {db} at {base}/  (Ctrl-C to stop)")
    click.echo(f"  dashboard:  {dashboard}")
    click.echo(f"  executions: {base}{datasette.urls.table(Path(db).stem, 'task_executions')}")
    server = uvicorn.Server(
        uvicorn.Config(datasette.app(), host=HOST, port=port, log_level="warning")
    )
    if open_browser:
        threading.Thread(target=_open_when_up, args=(server, dashboard), daemon=True).start()
    server.run()


def _check_port(port: int) -> None:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            raise TaskexecError(
                f"port {port} on {HOST} is in use; pick another with --port"
            ) from None


def _open_when_up(server: object, url: str) -> None:
    for _ in range(200):
        if getattr(server, "started", False):
            webbrowser.open(url)
            return
        time.sleep(0.05)
