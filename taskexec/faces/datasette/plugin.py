"""Datasette hooks for taskexec: readable cells, the trace page, our CSS, and the app factory.

Loaded through the ``datasette`` entry point, so it is active in any Datasette of this
environment; every hook only touches databases that are taskexec databases (they have the
migrations table). Everything user-supplied is escaped with markupsafe or Jinja autoescape.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import weakref
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from datasette.hookspecs import hookimpl
from datasette.utils.asgi import Request, Response, asgi_static
from jinja2 import ChoiceLoader, Environment, FileSystemLoader
from markupsafe import Markup

from ... import probes as probe_sql
from ...db import Store
from ...db import schema as migrations
from ...db.rows import JSON_COLUMNS
from ...errors import InvalidRecord
from ...model import STATUSES, check_trace_id, parse_ts
from .assets import assets_dir
from .metadata import TABLE, build_metadata

if TYPE_CHECKING:  # datasette.app loads plugins, this one included: import it lazily
    from datasette.app import Datasette

ASSETS = assets_dir()
STATIC_PREFIX = "/-/taskexec/static/"
TRACE_TEMPLATE = "taskexec_trace.html"
#: Every query keeps Datasette's 1 s limit. One SQL thread: the dashboard fires ~10 queries at
#: once, and on a small machine parallel queries slow each other past the limit (at a million
#: rows they did); in series each finishes well inside it. Facet suggestions are off: at a
#: million rows they cost ~3 s per table page (a query per column); configured facets stay.
SETTINGS: dict[str, int | bool] = {
    "sql_time_limit_ms": 1000,
    "facet_time_limit_ms": 200,
    "suggest_facets": False,
    "num_sql_threads": 1,
}
SPAN_LINK_COLUMNS = ("retry_of", "sample_span_id", "first_span_id")
_OUR_TABLES = (None, TABLE, "error_groups")
_taskexec_dbs: weakref.WeakKeyDictionary[Datasette, frozenset[str]] = weakref.WeakKeyDictionary()


def make_datasette(db_path: str | os.PathLike[str]) -> Datasette:
    """A Datasette over one taskexec database with the generated metadata and our settings."""
    from datasette.app import Datasette

    path = os.fspath(db_path)
    return Datasette([path], metadata=build_metadata(Path(path).stem), settings=dict(SETTINGS))


def taskexec_databases(datasette: Datasette) -> frozenset[str]:
    """Names of the attached databases that are taskexec databases (found at startup)."""
    return _taskexec_dbs.get(datasette, frozenset())


@hookimpl
def startup(datasette: Datasette) -> Any:
    """Find the taskexec databases once, so per-cell hooks stay a set lookup."""

    async def inner() -> None:
        names = set()
        for name, db in datasette.databases.items():
            if name != "_internal" and await db.table_exists(migrations.MIGRATIONS_TABLE):
                names.add(name)
        _taskexec_dbs[datasette] = frozenset(names)

    return inner


@hookimpl
def prepare_jinja2_environment(env: Environment) -> None:
    """Make our templates findable after Datasette's own and any --template-dir."""
    if isinstance(env.loader, ChoiceLoader):
        env.loader.loaders = [*env.loader.loaders, FileSystemLoader(str(ASSETS / "templates"))]


@hookimpl
def register_routes() -> list[tuple[str, Any]]:
    """The trace page and our static files (served by us, so no static mount is needed)."""
    return [
        (r"^/-/trace/(?P<trace_id>[^/]*)$", trace_page),
        (r"^/-/taskexec/static/(?P<path>[A-Za-z0-9_.-]+)$", asgi_static(ASSETS / "static")),
    ]


@hookimpl
def extra_css_urls(datasette: Datasette) -> list[str]:
    """Our stylesheet, only where a taskexec database is served."""
    if not taskexec_databases(datasette):
        return []
    return [datasette.urls.path(f"{STATIC_PREFIX}taskexec.css?v={_asset_version('taskexec.css')}")]


@cache
def _asset_version(name: str) -> str:
    """A short content hash, so browsers refetch a changed stylesheet."""
    return hashlib.sha256((ASSETS / "static" / name).read_bytes()).hexdigest()[:8]


@hookimpl
def extra_body_script(
    template: str, database: str | None, request: Request | None, datasette: Datasette
) -> str | None:
    """On a probe's canned-query page, show each parameter's default as the input placeholder."""
    if template != "query.html" or request is None:
        return None
    if database not in taskexec_databases(datasette):
        return None
    name = request.url_vars.get("table")
    probe = next((p for p in probe_sql.all_probes() if p.name == name), None)
    if probe is None:
        return None
    defaults = {p.name: p.default for p in probe.params if p.default}
    data = json.dumps(defaults).replace("<", "\\u003c")
    return (
        f"for (const [k, v] of Object.entries({data})) {{"
        "for (const el of document.querySelectorAll('form.sql input[name=\"' + k + '\"]')) {"
        "el.placeholder = v; } }"
    )


# -- cells ----------------------------------------------------------------------------------


@hookimpl
def render_cell(
    value: Any, column: str, table: str | None, database: str, datasette: Datasette
) -> Markup | None:
    """Status labels, linked trace/span ids and stack hashes, <pre> stacks, readable JSON."""
    if table not in _OUR_TABLES or database not in taskexec_databases(datasette):
        return None
    if value is None or value == "":
        return None
    urls = datasette.urls
    if column == "status" and value in STATUSES:
        return Markup('<span class="te-status te-status-{0}">{0}</span>').format(value)
    if column == "trace_id" and isinstance(value, str):
        return Markup('<a class="te-trace" href="{}">{}</a>').format(
            trace_url(datasette, value), value
        )
    if column == "stack_trace":
        return Markup('<pre class="te-stack">{}</pre>').format(value)
    if column == "stack_hash":
        href = urls.table(database, TABLE) + "?stack_hash=" + quote(str(value))
        short = f"{value}"[:12] + ("\u2026" if len(f"{value}") > 12 else "")
        return Markup('<a class="te-hash" href="{}" title="{}">{}</a>').format(href, value, short)
    if column in SPAN_LINK_COLUMNS:
        href = urls.table(database, TABLE) + "?span_id=" + quote(str(value))
        return Markup('<a href="{}">{}</a>').format(href, value)
    if column == "id" and table is None and isinstance(value, int):
        return Markup('<a href="{}">{}</a>').format(urls.row(database, TABLE, str(value)), value)
    if column in JSON_COLUMNS and isinstance(value, str):
        return render_json(value)
    return None


def trace_url(datasette: Datasette, trace_id: str) -> str:
    """Where the trace page for ``trace_id`` lives."""
    return datasette.urls.path("/-/trace/" + quote(trace_id, safe=""))


def render_json(text: str) -> Markup | None:
    """A JSON list of scalars as a row of chips; anything else pretty-printed in <pre>."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
        items = Markup("").join(Markup('<code class="te-chip">{}</code>').format(v) for v in value)
        return Markup('<span class="te-list">{}</span>').format(items)
    return Markup('<pre class="te-json">{}</pre>').format(
        json.dumps(value, indent=2, ensure_ascii=False)
    )


# -- the trace page -------------------------------------------------------------------------


async def trace_page(request: Request, datasette: Datasette) -> Response:
    """Every attempt of one logical run as a timeline, looked up in each taskexec database."""
    raw = request.url_vars["trace_id"]
    trace_id = raw.strip().lower()
    context: dict[str, Any] = {"trace_id": trace_id, "attempts": [], "error": None}
    try:
        check_trace_id(trace_id)
    except InvalidRecord:
        context.update(trace_id=raw, error="malformed")
        return await _render(datasette, request, context, status=400)
    for name in sorted(taskexec_databases(datasette)):
        await datasette.ensure_permissions(
            request.actor, [("view-table", (name, TABLE)), ("view-database", name), "view-instance"]
        )
        db = datasette.get_database(name)
        if db.path is None:
            continue
        attempts = await asyncio.to_thread(_load_trace, db.path, trace_id)
        if attempts:
            context.update(database=name, **timeline(attempts))
            for row in context["attempts"]:
                row["row_url"] = datasette.urls.row(name, TABLE, str(row["id"]))
            base = datasette.urls.table(name, TABLE)
            context["table_url"] = f"{base}?trace_id={trace_id}&_sort=attempt"
            context["json_url"] = f"{base}.json?trace_id={trace_id}&_sort=attempt&_shape=array"
            return await _render(datasette, request, context)
    context.update(error="unknown", search_url=_first_table_url(datasette))
    return await _render(datasette, request, context, status=404)


def _load_trace(path: str, trace_id: str) -> list[dict[str, Any]]:
    with Store.open_readonly(path) as store:
        return store.trace(trace_id)


def _first_table_url(datasette: Datasette) -> str | None:
    names = sorted(taskexec_databases(datasette))
    return datasette.urls.table(names[0], TABLE) if names else None


async def _render(
    datasette: Datasette, request: Request, context: dict[str, Any], status: int = 200
) -> Response:
    html = await datasette.render_template(TRACE_TEMPLATE, context, request=request)
    return Response.html(html, status=status)


def timeline(attempts: list[dict[str, Any]]) -> dict[str, Any]:
    """Place attempts on one time axis: bar offset and width in percent, plus a run summary.

    An attempt without an end (running, abandoned) is drawn as a thin marker at its start.
    """
    starts = [parse_ts(a["started_at"]) for a in attempts]
    ends = []
    for a, start in zip(attempts, starts, strict=True):
        if a.get("ended_at"):
            ends.append(parse_ts(a["ended_at"]))
        else:
            ends.append(start + timedelta(milliseconds=a.get("duration_ms") or 0))
    t0, t1 = min(starts), max(ends)
    total_ms = max((t1 - t0).total_seconds() * 1000, 1.0)
    rows = []
    previous_end: datetime | None = None
    for a, start, end in zip(attempts, starts, ends, strict=True):
        offset_ms = (start - t0).total_seconds() * 1000
        span_ms = (end - start).total_seconds() * 1000
        wait_ms = (start - previous_end).total_seconds() * 1000 if previous_end else None
        rows.append(
            {
                **a,
                "offset_ms": offset_ms,
                "wait_ms": wait_ms,
                "wait_text": human_ms(wait_ms),
                "duration_text": human_ms(a.get("duration_ms")),
                "left_pct": round(100 * offset_ms / total_ms, 3),
                "width_pct": round(max(100 * span_ms / total_ms, 0.4), 3),
            }
        )
        previous_end = end
    last = attempts[-1]
    return {
        "attempts": rows,
        "task_slug": last["task_slug"],
        "outcome": outcome(attempts),
        "final_status": last["status"],
        "started_at": attempts[0]["started_at"],
        "wall_text": human_ms((t1 - t0).total_seconds() * 1000),
    }


def human_ms(ms: float | None) -> str:
    """A duration for people: 850 ms, 12.3 s, 4 min 05 s; an em dash when unknown."""
    if ms is None:
        return "\u2014"
    if ms < 1000:
        return f"{ms:,.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    minutes, seconds = divmod(round(ms / 1000), 60)
    return f"{minutes:,} min {seconds:02d} s"


def outcome(attempts: list[dict[str, Any]]) -> str:
    """One sentence on how the run ended."""
    n = len(attempts)
    last = attempts[-1]
    for a in attempts:
        if a["status"] == "success":
            return f"succeeded on attempt {a['attempt']} of {n}"
    if last["status"] == "running":
        return f"still running (attempt {last['attempt']} of {n})"
    return f"{last['status']} after {n} attempt{'s' if n != 1 else ''}"
