"""The ``taskexec`` command: a click group that only wires commands to the library.

Each face keeps its commands in ``taskexec/cli/<face>.py`` and imports its heavy
dependencies (Datasette, MCP, Jupyter, OpenTelemetry) inside the command, so ``taskexec
--help`` and a worker that only records stay light.
"""

from __future__ import annotations

import importlib

import click

from ..version import __version__
from ._common import Group

#: Each command and where it lives (``taskexec/cli/<module>.py``, attribute). Modules are
#: imported only when their command runs (or for ``--help``), so ``taskexec run -- CMD`` does
#: not pay for the other commands' imports.
COMMANDS: dict[str, tuple[str, str]] = {
    # core
    "init": ("core", "init"),
    "demo": ("core", "demo"),
    "sweep": ("core", "sweep"),
    "prune": ("core", "prune"),
    "probes": ("probes", "list_probes"),
    "probe": ("probes", "run_probe"),
    # Datasette
    "serve": ("serve", "serve"),
    "metadata": ("serve", "metadata"),
    # MCP
    "mcp": ("mcp", "mcp"),
    # notebooks
    "report": ("notebooks", "report"),
    "notebooks": ("notebooks", "notebooks"),
    # filling the database from outside
    "backfill": ("importers", "backfill"),
    "import-otlp": ("importers", "import_otlp"),
    "export-otlp": ("importers", "export_otlp"),
    "merge": ("importers", "merge"),
    # the file's health and the spool
    "doctor": ("health", "doctor"),
    "replay": ("health", "replay"),
    "rollup": ("rollup", "rollup"),
    # any command: taskexec run -- CMD ARGS...
    "run": ("run", "run"),
    # be told: schedules, detections, alerts
    "check": ("alerts", "check_command"),
    "watch": ("alerts", "watch"),
    "schedule": ("alerts", "schedule"),
}


class LazyGroup(Group):
    """A group that imports a command's module only when that command is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        where = COMMANDS.get(cmd_name)
        if where is None:
            return None
        module = importlib.import_module(f"{__package__}.{where[0]}")
        command = getattr(module, where[1])
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="taskexec")
def cli() -> None:
    """Record task executions into one SQLite file; browse, chart and query them.

    Every command that takes DB defaults to $TASKEXEC_DB, then ./taskexec.db.
    """


def all_commands() -> dict[str, click.Command]:
    """Every command by name (imports them all: for docs and tests)."""
    ctx = click.Context(cli)
    found = {name: cli.get_command(ctx, name) for name in cli.list_commands(ctx)}
    return {name: command for name, command in found.items() if command is not None}
