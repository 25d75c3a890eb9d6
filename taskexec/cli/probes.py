"""``taskexec probes`` lists the probe SQL files; ``taskexec probe NAME`` runs one."""

from __future__ import annotations

import json

import click

from .. import probes as probe_sql
from ..db import Store
from ..errors import BadInput
from ._common import db_option, friendly_errors
from .textable import render


@click.command("probes")
@click.option("--sql", "show_sql", is_flag=True, help="Print each probe's SQL too.")
def list_probes(show_sql: bool) -> None:
    """List the probes (named questions) with their parameters and defaults."""
    for probe in probe_sql.all_probes():
        click.secho(f"{probe.name}", bold=True, nl=False)
        click.echo(f"  {probe.title}")
        click.echo(f"    {probe.description}")
        for p in probe.params:
            default = f" (default {p.default})" if p.default else ""
            click.echo(f"    --param {p.name}=…  {p.description}{default}")
        if show_sql:
            click.echo(probe.sql + "\n")


@click.command("probe")
@click.argument("name")
@db_option
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="A named parameter, e.g. --param since=24h. Repeatable.",
)
@click.option("--json", "as_json", is_flag=True, help="Print rows as JSON instead of a table.")
@friendly_errors
def run_probe(name: str, db: str, params: tuple[str, ...], as_json: bool) -> None:
    """Run the probe NAME against the database and print its rows as a table."""
    values = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BadInput("--param", f"expected KEY=VALUE, got {item!r}")
        values[key.strip()] = value
    with Store.open_readonly(db) as store:
        rows = store.run_probe(name, values).dicts()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        click.echo(render(rows))
