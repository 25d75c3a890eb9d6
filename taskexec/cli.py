"""The ``taskexec`` command: a click group that only wires commands to the library."""

from __future__ import annotations

import click

from . import __version__
from .commands import core, probes


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="taskexec")
def cli() -> None:
    """Record task executions into one SQLite file; browse, chart and query them.

    Every command that takes DB defaults to $TASKEXEC_DB, then ./taskexec.db.
    """


for _command in (core.init, core.demo, core.sweep, core.prune, probes.list_probes, probes.run_probe):
    cli.add_command(_command)
# Faces register their commands below, one line each.
