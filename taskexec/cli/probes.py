"""``taskexec probes`` lists the probe SQL files; ``taskexec probe NAME`` runs one."""

from __future__ import annotations

import json

import click

from .. import probes as probe_sql
from ..db import Store
from ..errors import BadInput
from ..faces import empty_note
from ..model import window_start
from ._common import db_option, friendly_errors
from .textable import render, terminal_width


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
        note = _window_note(store, name, values, bool(rows))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        if note:
            click.echo(f"({note})", err=True)
        return
    if not rows:
        click.echo(f"(no rows: {note})" if note else "(no rows)")
        return
    click.echo(render(rows, width=terminal_width()))
    if note:
        click.echo(f"({note})")


def _window_note(store: Store, name: str, values: dict[str, str], has_rows: bool) -> str | None:
    """Where the data is, when a probe's window holds none of it (zeros or no rows) or its
    answer is empty; None for a probe without a window."""
    windows = [p for p in probe_sql.get(name).params if p.name in probe_sql.WINDOW_PARAMS]
    if not windows:
        return None
    param = windows[0]
    since = window_start(values.get(param.name), param.default or "7d", name=param.name)
    span = store.data_range()
    after_data = span.last_started_at is None or since > span.last_started_at
    if has_rows and not after_data:
        return None
    return empty_note(span.first_started_at, span.last_started_at, since)
