"""``taskexec report`` runs the notebooks headlessly; ``taskexec notebooks`` opens JupyterLab."""

from __future__ import annotations

import os
import sys

import click

from ..db import Store
from ..faces.jupyter import report as notebook_report
from ..model import window_start
from ._common import EXTRAS, db_argument, friendly_errors, require_extra

notebooks_option = click.option(
    "--notebooks",
    "folder",
    default=None,
    type=click.Path(file_okay=False, exists=True),
    help="Folder with the .ipynb files (default: notebooks/ of the source checkout).",
)


@click.command()
@db_argument
@click.option(
    "--out",
    default="reports",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for the HTML reports and PNGs.",
)
@click.option(
    "--window",
    default=None,
    metavar="WINDOW",
    help="Window back from the newest row: 30m, 24h, 7d, 2w, 1.5d, an ISO-8601 time with a "
    "zone, or all (default: 14d).",
)
@notebooks_option
@friendly_errors
def report(db: str, out: str, window: str | None, folder: str | None) -> None:
    """Execute both notebooks against DB; write OUT/<name>.html and every chart as PNG.

    The notebooks run in fresh kernels with TASKEXEC_DB set to DB, side by side.
    """
    require_extra("report", "notebooks")
    if window is not None:
        window_start(window, name="--window")  # a bad window fails here, before any kernel
    Store.open_readonly(db).close()  # so does a missing or foreign database, before Jupyter loads
    result = notebook_report.write_report(db, out, folder=folder, window=window)
    for path in result.html:
        click.echo(f"wrote {path}")
    click.echo(f"wrote {len(result.images)} chart(s) as PNG in {out} ({result.seconds:.1f} s)")


@click.command()
@db_argument
@click.option(
    "--port",
    default=8888,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Port for JupyterLab on 127.0.0.1.",
)
@click.option("--no-browser", is_flag=True, help="Do not open a browser window.")
@notebooks_option
@friendly_errors
def notebooks(db: str, port: int, no_browser: bool, folder: str | None) -> None:
    """Open JupyterLab on the notebooks folder, with TASKEXEC_DB set to DB.

    Binds 127.0.0.1 only. Stop it with Ctrl-C.
    """
    require_extra("notebooks", "notebooks", ("jupyterlab", *EXTRAS["notebooks"]))
    source = notebook_report.notebooks_dir(folder)
    env = notebook_report.lab_env(db)
    command = notebook_report.lab_command(source, port=port, open_browser=not no_browser)
    click.echo(f"JupyterLab on {source} with TASKEXEC_DB={env['TASKEXEC_DB']}", err=True)
    sys.stderr.flush()
    os.execve(command[0], command, env)  # JupyterLab replaces us: signals reach it directly
