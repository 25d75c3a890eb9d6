"""The ``taskexec`` command: a click group that only wires commands to the library.

Each face keeps its commands in ``taskexec/cli/<face>.py`` and imports its heavy
dependencies (Datasette, MCP, Jupyter, OpenTelemetry) inside the command, so ``taskexec
--help`` and a worker that only records stay light.
"""

from __future__ import annotations

import click

from ..version import __version__
from . import core, health, importers, mcp, notebooks, probes, serve


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="taskexec")
def cli() -> None:
    """Record task executions into one SQLite file; browse, chart and query them.

    Every command that takes DB defaults to $TASKEXEC_DB, then ./taskexec.db.
    """


for _command in (
    # core
    core.init,
    core.demo,
    core.sweep,
    core.prune,
    probes.list_probes,
    probes.run_probe,
    # Datasette
    serve.serve,
    serve.metadata,
    # MCP
    mcp.mcp,
    # notebooks
    notebooks.report,
    notebooks.notebooks,
    # filling the database from outside
    importers.backfill,
    importers.import_otlp,
    importers.export_otlp,
    importers.merge,
    # the file's health and the spool
    health.doctor,
    health.replay,
):
    cli.add_command(_command)
