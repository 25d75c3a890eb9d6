"""Datasette hooks for taskexec: readable cells, the trace page, our CSS, and the app factory.

Loaded through the ``datasette`` entry point, so it is active in any Datasette of this
environment; every hook only touches databases that are taskexec databases (they have the
migrations table). Everything user-supplied is escaped with markupsafe or Jinja autoescape.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import os
import re
import sqlite3
import sys
import weakref
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode

from datasette.facets import Facet
from datasette.hookspecs import hookimpl
from datasette.utils import path_with_added_args, path_with_removed_args, tilde_decode
from datasette.utils.asgi import Request, Response
from jinja2 import ChoiceLoader, Environment, FileSystemLoader
from markupsafe import Markup

from ... import probes as probe_sql
from ...db import Store, functions
from ...db import schema as migrations
from ...db.rows import JSON_COLUMNS
from ...db.store import ExecutionCounts, execution_counts, search_count
from ...errors import InvalidRecord, UnknownProbe
from ...model import check_trace_id, parse_ts
from .. import empty_note
from . import dashboard_page, static
from .assets import assets_dir
from .metadata import DASHBOARD, TABLE, TABLE_DESCRIPTIONS, build_metadata, query_groups
from .pages import (
    HASH_COLUMNS,
    CountPlan,
    PageLoader,
    arrange,
    count_plan,
    is_rate,
    percent,
    query_sql,
    readable_time,
    row_cells,
    short_hash,
    status_label,
    window_of,
    window_problem,
)

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
#: Long text shown to three lines in tables (whole on a row's page and on hover).
CLIPPED_COLUMNS = frozenset(
    {"error_message", "sample_message", "content", "title", "detail", "tasks"}
)
SPAN_LINK_COLUMNS = ("retry_of", "sample_span_id", "first_span_id")
_OUR_TABLES = (None, TABLE, "error_groups", "alerts", "schedules")
_taskexec_dbs: weakref.WeakKeyDictionary[Datasette, frozenset[str]] = weakref.WeakKeyDictionary()


def make_datasette(db_path: str | os.PathLike[str]) -> Datasette:
    """A Datasette over one taskexec database with the generated metadata and our settings."""
    from datasette.app import Datasette

    path = os.fspath(db_path)
    return Datasette([path], metadata=build_metadata(Path(path).stem), settings=dict(SETTINGS))


def taskexec_databases(datasette: Datasette) -> frozenset[str]:
    """Names of the attached databases that are taskexec databases (found at startup)."""
    return _taskexec_dbs.get(datasette, frozenset())


def _quiet_window_errors() -> None:
    """Datasette turns on SQLite's callback tracebacks, so a bad window in someone's own SQL
    (``te_since('soon')``) printed a Python traceback on the server's console beside
    Datasette's one-line error. The page already says what is wrong; ours are dropped, any
    other callback's still print."""
    previous = sys.unraisablehook
    if getattr(previous, "taskexec", False):
        return

    def hook(unraisable: Any) -> None:
        ours = unraisable.object is functions.te_since
        if not (ours and isinstance(unraisable.exc_value, InvalidRecord)):
            previous(unraisable)

    hook.taskexec = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


@hookimpl
def startup(datasette: Datasette) -> Any:
    """Find the taskexec databases once, so per-cell hooks stay a set lookup; have the
    dashboard's scripts ready to send; keep bad windows off the console; freeze the heap."""
    _quiet_window_errors()

    async def inner() -> None:
        names = set()
        for name, db in datasette.databases.items():
            if name != "_internal" and await db.table_exists(migrations.MIGRATIONS_TABLE):
                names.add(name)
        _taskexec_dbs[datasette] = frozenset(names)
        if names:
            await asyncio.to_thread(dashboard_page.warm)
            # What is loaded by now lives as long as the server: keep it out of the cyclic
            # GC. A full collection over it (~125,000 objects) took 66-76 ms, and landed in
            # one request in 20 to 40 (a 20 ms query answered in 83-118 ms). As `taskexec
            # mcp` does.
            gc.collect()
            gc.freeze()

    return inner


@hookimpl
def prepare_connection(conn: sqlite3.Connection) -> None:
    """taskexec's SQL functions (``te_since`` for the probes' windows) on every connection."""
    functions.register(conn)


@hookimpl
def prepare_jinja2_environment(env: Environment, datasette: Datasette) -> None:
    """Make our templates findable after Datasette's own and any --template-dir, and answer
    the per-database page names of taskexec databases with ours (``pages.PageLoader``)."""
    if isinstance(env.loader, ChoiceLoader):
        folder = ASSETS / "templates"
        loader = PageLoader(folder, lambda: taskexec_databases(datasette))
        theirs = list(env.loader.loaders)
        dashboard = dashboard_page.DashboardLoader(ChoiceLoader(theirs), datasette.template_dir)
        env.loader.loaders = [dashboard, *theirs, FileSystemLoader(str(folder)), loader]


@hookimpl
def register_routes() -> list[tuple[str, Any]]:
    """The trace page and our static files (served by us, from memory: ``static``), and the
    dashboard's scripts (``dashboard_page``)."""
    return [
        (r"^/-/trace/(?P<trace_id>[^/]*)$", trace_page),
        (
            r"^/-/taskexec/static/(?P<path>[A-Za-z0-9_.-]+)$",
            static.folder_view(static.in_folder(ASSETS / "static")),
        ),
        *dashboard_page.routes(),
    ]


@hookimpl
def extra_css_urls(datasette: Datasette) -> list[str]:
    """Our stylesheet, only where a taskexec database is served."""
    if not taskexec_databases(datasette):
        return []
    return [datasette.urls.path(f"{STATIC_PREFIX}taskexec.css?v={_asset_version('taskexec.css')}")]


@hookimpl
def extra_js_urls(
    template: str, request: Request | None, datasette: Datasette
) -> list[dict[str, Any]]:
    """On the task health dashboard: its "Refresh" control (``static/autorefresh.js``: off
    unless chosen; 30 s, 1 min or 5 min, kept in the URL as ``?refresh=``)."""
    if template != "dashboard_view.html" or request is None:
        return []
    if request.url_vars.get("slug") != DASHBOARD or not taskexec_databases(datasette):
        return []
    url = f"{STATIC_PREFIX}autorefresh.js?v={_asset_version('autorefresh.js')}"
    return [{"url": datasette.urls.path(url), "module": True}]


def _asset_version(name: str) -> str:
    """A short content hash, so browsers refetch a changed file (and keep it until then)."""
    return static.version(ASSETS / "static" / name)


def _static_url(datasette: Datasette, name: str) -> str:
    return datasette.urls.path(f"{STATIC_PREFIX}{name}?v={_asset_version(name)}")


def _our_dashboard(datasette: Datasette, request: Request) -> tuple[str, dict[str, Any]] | None:
    """The database and charts of the task health dashboard when ``request`` is for it over a
    taskexec database; None otherwise."""
    if request.url_vars.get("slug") != DASHBOARD:
        return None
    charts = dashboard_page.dashboard_charts(datasette)
    database = next((c["db"] for c in charts.values() if c.get("db")), None)
    return (database, charts) if database in taskexec_databases(datasette) else None


# -- windows: a bad one is a message, an empty one says where the data is ------------------


def _args(request: Request) -> dict[str, str]:
    """The query's arguments as asked (``_bad_window_page`` may have run it with others)."""
    asked = request.scope.get(_ASKED)
    if asked is not None:
        return _first_values(_pairs(asked))
    return {key: request.args.get(key) or "" for key in request.args}


def _pairs(query_string: bytes) -> list[tuple[str, str]]:
    """A raw query string's (key, value) pairs, blanks kept, as Datasette reads them."""
    return parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)


def _first_values(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Each key's first value: the one Datasette reads."""
    return {key: value for key, value in reversed(pairs)}


async def _data_range(datasette: Datasette, database: str) -> tuple[str | None, str | None]:
    """The first and last start time in ``database`` (the ``data_range`` probe)."""
    row = (await datasette.get_database(database).execute(probe_sql.get("data_range").sql)).first()
    return (row["first_started_at"], row["last_started_at"]) if row else (None, None)


async def _empty_note(datasette: Datasette, database: str, since: str | None) -> str:
    first, last = await _data_range(datasette, database)
    return _sentence(empty_note(first, last, since))


def _sentence(note: str) -> str:
    return note[:1].upper() + note[1:] + "."


@hookimpl
def asgi_wrapper(datasette: Datasette) -> Callable[[Any], Any]:
    """JSON and CSV answers of queries with a bad window: Datasette's JSON error with our
    message (status 400) instead of SQLite's "user-defined function raised exception"; a
    canned query's page with one: see ``_bad_window_page``."""

    def wrap(app: Any) -> Any:
        async def checked(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope.get("type") == "http" and scope.get("method") in ("GET", "HEAD"):
                problem = await _window_problem_of(datasette, scope)
                if problem is not None:
                    body = {
                        "ok": False,
                        "error": problem,
                        "status": 400,
                        "title": "Invalid window",
                        "rows": [],
                        "columns": [],
                    }
                    await Response.json(body, status=400).asgi_send(send)
                    return
                scope, send = await _bad_window_page(datasette, scope, send)
                scope = await _counted_by_us(datasette, scope)
                send = _keeping_refresh(datasette, scope, send)
            await app(scope, receive, send)

        return checked

    return wrap


def _keeping_refresh(datasette: Datasette, scope: dict[str, Any], send: Any) -> Any:
    """``send`` for the dashboard page: its redirect to the default filters (which
    datasette-dashboards makes when none are given) keeps the ``refresh`` interval asked for
    (``static/autorefresh.js``), so a bookmark of ``?refresh=1m`` refreshes."""
    if _route_path(datasette, scope) != f"/-/dashboards/{DASHBOARD}":
        return send
    refresh = dict(_pairs(scope.get("query_string", b""))).get("refresh")
    if not refresh:
        return send

    async def keeping(message: dict[str, Any]) -> None:
        if message.get("type") == "http.response.start" and message.get("status") in (301, 302):
            headers = []
            for key, value in message.get("headers", []):
                if key.lower() == b"location" and b"refresh=" not in value:
                    glue = b"&" if b"?" in value else b"?"
                    value += glue + b"refresh=" + quote(refresh, safe="").encode("latin-1")
                headers.append((key, value))
            message = {**message, "headers": headers}
        await send(message)

    return keeping


def _route_path(datasette: Datasette, scope: dict[str, Any]) -> str:
    """The request's path without Datasette's ``base_url``."""
    path = scope.get("path") or ""
    base = datasette.setting("base_url") or "/"
    if base != "/" and path.startswith(base):
        path = "/" + path[len(base) :]
    return str(path)


async def _serves_taskexec(datasette: Datasette, route: str) -> bool:
    """Whether the database at ``route`` is a taskexec database. This wrapper sees the first
    request before Datasette's startup hooks ran, so the file itself is asked then."""
    known = taskexec_databases(datasette)
    for db_name, db in list(datasette.databases.items()):
        if db_name == "_internal" or (db.route or db_name) != route:
            continue
        if datasette in _taskexec_dbs:
            return db_name in known
        return bool(await db.table_exists(migrations.MIGRATIONS_TABLE))
    return False


async def _window_problem_of(datasette: Datasette, scope: dict[str, Any]) -> str | None:
    path = _route_path(datasette, scope)
    match = _DATA_PATH.match(path)
    if match is None:
        return None
    args = _first_values(_pairs(scope.get("query_string", b"")))
    name = tilde_decode(match["name"]) if match["name"] else None
    problem = window_problem(query_sql(name, args), args)
    if problem is None:
        return None
    return problem if await _serves_taskexec(datasette, tilde_decode(match["db"])) else None


_DATA_PATH = re.compile(r"^/(?P<db>[^/.]+)(?:/(?P<name>[^/.]+))?\.(?:json|csv)$")
_QUERY_PAGE = re.compile(r"^/(?P<db>[^/.]+)/(?P<name>[^/.]+)$")
#: Where the wrapper keeps a canned query page's own query string when its window was bad.
_ASKED = "taskexec.asked_query_string"
#: A window every query accepts and none has rows in: a bad one is run as this.
_NO_WINDOW = "9999-01-01T00:00:00Z"


async def _bad_window_page(
    datasette: Datasette, scope: dict[str, Any], send: Any
) -> tuple[dict[str, Any], Any]:
    """A canned query's HTML page with a bad window runs the query with an empty window
    instead (SQLite would print ``te_since``'s traceback and the whole SQL on the server's
    console), answers 400, and keeps what was asked aside: ``_args`` reads it, so the form
    shows it and ``_query_vars`` says what is wrong with it, and no rows are shown."""
    match = _QUERY_PAGE.match(_route_path(datasette, scope))
    if match is None or _probe(tilde_decode(match["name"])) is None:
        return scope, send
    query: bytes = scope.get("query_string", b"")
    pairs = _pairs(query)
    args = _first_values(pairs)
    sql = query_sql(tilde_decode(match["name"]), args)
    bad = {n for n in probe_sql.WINDOW_PARAMS if window_problem(sql, {n: args.get(n, "")})}
    if not bad or not await _serves_taskexec(datasette, tilde_decode(match["db"])):
        return scope, send
    swapped = []
    for key, value in pairs:  # the first of each is the one read
        swapped.append((key, _NO_WINDOW if key in bad else value))
        bad.discard(key)
    run = urlencode(swapped).encode("latin-1")

    async def refused(message: dict[str, Any]) -> None:
        if message.get("type") == "http.response.start" and message.get("status") == 200:
            message = {**message, "status": 400}
        await send(message)

    return {**scope, "query_string": run, _ASKED: query}, refused


# -- the executions table: counted from the rollups or the search index, not by a scan -----------

#: Where the wrapper keeps a table page's own query string while Datasette reads ``_nocount``.
_OWN_QUERY = "taskexec.query_string"
#: Where one request's counts are kept (the count above the rows and the facets share them).
_COUNTS = "taskexec.counts"
_TABLE_PATH = re.compile(rf"^/(?P<db>[^/.]+)/{TABLE}$")


async def _counted_by_us(datasette: Datasette, scope: dict[str, Any]) -> dict[str, Any]:
    """The scope of an HTML page of the executions table, made cheap at any size; any other
    request is left as it is.

    - Rows we count (``pages.count_plan``: from the rollups or the search index) get
      ``_nocount=1``, so Datasette skips its ``count(*)`` (a second per ten million rows). The
      query string without it is kept aside and put back by our ``filters_from_request``,
      which Datasette calls right after reading ``_nocount``, so no link on the page has it.
    - A search without a sort is sorted by ``id``, newest first (``_sort_desc=id``, which its
      links keep): SQLite then reads the matches' ids from the search index and the newest
      rows by id, where ordering by ``started_at`` would read and sort every match first (a
      common word matches tens of thousands of rows at ten million).
    """
    match = _TABLE_PATH.match(_route_path(datasette, scope))
    if match is None:
        return scope
    query: bytes = scope.get("query_string", b"")
    pairs = _pairs(query)
    keys = {key for key, _ in pairs}
    sort = bool(dict(pairs).get("_search", "").strip()) and not keys & {"_sort", "_sort_desc"}
    count = "_nocount" not in keys and count_plan(pairs) is not None
    if not (sort or count) or not await _serves_taskexec(datasette, tilde_decode(match["db"])):
        return scope
    shown = _with_arg(query, b"_sort_desc=id") if sort else query
    if not count:
        return {**scope, "query_string": shown}
    return {**scope, "query_string": _with_arg(shown, b"_nocount=1"), _OWN_QUERY: shown}


def _with_arg(query: bytes, arg: bytes) -> bytes:
    return query + b"&" + arg if query else arg


@hookimpl
def filters_from_request(request: Request) -> None:
    """Put back the query string ``_counted_by_us`` added ``_nocount`` to (see there)."""
    own = request.scope.pop(_OWN_QUERY, None)
    if own is not None:
        request.scope["query_string"] = own


def _plan_of(request: Request) -> CountPlan | None:
    return count_plan(parse_qsl(request.query_string, keep_blank_values=True))


async def _counts(
    datasette: Datasette, database: str, request: Request
) -> ExecutionCounts | int | None:
    """The executions this table page shows, counted by its plan: from the rollups (in all,
    by status, by task) or the search index (a number); None when Datasette must count.
    Computed once per request."""
    if _COUNTS in request.scope:
        found: ExecutionCounts | int | None = request.scope[_COUNTS]
        return found
    plan = _plan_of(request)
    result: ExecutionCounts | int | None = None
    if plan is not None:
        db = datasette.get_database(database)
        try:
            if plan.search is not None:
                result = await db.execute_fn(functools.partial(search_count, match=plan.search))
            else:
                count = functools.partial(
                    execution_counts, statuses=plan.statuses, tasks=plan.tasks
                )
                result = await db.execute_fn(count)
        except sqlite3.Error:  # an odd search Datasette will report itself
            result = None
    request.scope[_COUNTS] = result
    return result


async def _table_vars(datasette: Datasette, database: str, request: Request) -> dict[str, Any]:
    """The executions table page's count (when we count it: Datasette was told not to) and,
    when facet counts cannot come from the rollups, links to have Datasette count them."""
    counts = await _counts(datasette, database, request)
    found: dict[str, Any] = {}
    if counts is not None:
        found["filtered_table_rows_count"] = counts if isinstance(counts, int) else counts.total
    if not isinstance(counts, ExecutionCounts):
        asked = set(request.args.getlist("_facet"))
        found["te_facet_links"] = [
            (column, datasette.urls.path(path_with_added_args(request, {"_facet": column})))
            for column in ROLLUP_FACETS
            if column not in asked
        ]
    return found


#: The facets of the executions table the rollups count.
ROLLUP_FACETS = ("status", "task_slug")


class RollupFacet(Facet):
    """Facets of the executions table counted from the rollups: ``{"rollup": "status"}`` or
    ``{"rollup": "task_slug"}`` in the table's metadata. They answer when the page's filters
    are the rollups' (status and task, see ``pages.count_plan``), in a millisecond at any size,
    shaped as Datasette's column facets (same JSON, same links); on other pages they stay
    empty (the page links to Datasette's own facet for them instead: a scan under its time
    limit)."""

    type = "rollup"

    async def suggest(self) -> list[dict[str, Any]]:
        return []

    async def facet_results(self) -> tuple[list[dict[str, Any]], list[str]]:
        configs = self.get_configs()
        if not configs or self.table != TABLE:
            return [], []
        if self.database not in taskexec_databases(self.ds):
            return [], []
        counts = await _counts(self.ds, self.database, self.request)
        if not isinstance(counts, ExecutionCounts):
            return [], []
        asked = set(self.request.args.getlist("_facet"))
        pairs = self.get_querystring_pairs()
        size = self.get_facet_size()
        results = []
        for config in configs:
            column = config["config"].get("column") or config["config"].get("simple")
            by = {"status": counts.by_status, "task_slug": counts.by_task}.get(column)
            if by is None or column in asked:  # asked for as Datasette's own: that shows it
                continue
            values = []
            for value, count in list(by.items())[:size]:
                selected = (column, value) in pairs
                if selected:
                    toggle = path_with_removed_args(self.request, {column: value})
                else:
                    toggle = path_with_added_args(self.request, {column: value})
                values.append(
                    {
                        "value": value,
                        "label": value,
                        "count": count,
                        "toggle_url": self.ds.absolute_url(self.request, self.ds.urls.path(toggle)),
                        "selected": selected,
                    }
                )
            results.append(
                {
                    "name": column,
                    "type": "column",  # what it is to a reader (and to JSON clients)
                    "hideable": config["source"] != "metadata",
                    "toggle_url": self.ds.urls.path(
                        path_with_removed_args(self.request, {"_facet_rollup": column})
                    ),
                    "results": values,
                    "truncated": len(by) > size,
                }
            )
        return results, []


@hookimpl
def register_facet_classes() -> list[type[Facet]]:
    return [RollupFacet]


@hookimpl
def extra_template_vars(
    template: str,
    database: str | None,
    table: str | None,
    request: Request | None,
    datasette: Datasette,
) -> Any:
    """What our page templates need: the checked window and the probe's inputs on query pages,
    the query headings on the database page, the column order on table and row pages, and
    our page for the task health dashboard (``dashboard_page``)."""
    if template == dashboard_page.TEMPLATE and request is not None:
        if _our_dashboard(datasette, request) is not None:
            return dashboard_page.page_vars(datasette, lambda n: _static_url(datasette, n))
        return None
    if request is None or database not in taskexec_databases(datasette):
        return None

    async def inner() -> dict[str, Any]:
        if template.startswith("query"):
            return await _query_vars(datasette, database, request)
        if template.startswith("database"):
            return {
                "te_query_groups": _grouped_queries,
                "te_dashboard": DASHBOARD,
                "te_table_descriptions": TABLE_DESCRIPTIONS,
            }
        if template.startswith(("table", "row")):
            found = {
                "te_arrange": functools.partial(arrange, table),
                "te_pk": _pk_cell,
                "te_row": row_cells,
            }
            if template.startswith("table") and table == TABLE:
                found.update(await _table_vars(datasette, database, request))
            return found
        return {}

    return inner


async def _query_vars(datasette: Datasette, database: str, request: Request) -> dict[str, Any]:
    """A query page's extra variables: ``error`` when a window is bad (the page shows it where
    Datasette shows SQLite's message), the probe and its inputs, the empty-answer note."""
    name = request.url_vars.get("table")
    args = _args(request)
    sql = query_sql(name, args)
    found: dict[str, Any] = {}
    problem = window_problem(sql, args)
    if problem is not None:
        found["error"] = problem
    since = window_of(sql, args)

    async def note() -> str:
        return await _empty_note(datasette, database, since)

    async def window_note() -> str:
        """The note for rows (zeros) from a window that holds none of the data."""
        if since is None:
            return ""
        first, last = await _data_range(datasette, database)
        return _sentence(empty_note(first, last, since)) if last is None or since > last else ""

    found["te_empty_note"] = note
    found["te_window_note"] = window_note
    probe = _probe(name)
    if probe is not None and probe.params:
        found["te_probe"] = probe
        found["te_params"] = await _inputs(datasette, database, probe, args)
    elif probe is not None:
        found["te_probe"] = probe
        found["te_params"] = []
    return found


def _probe(name: str | None) -> probe_sql.Probe | None:
    if not name:
        return None
    try:
        return probe_sql.get(name)
    except UnknownProbe:
        return None


#: Windows offered under a ``since`` box (any other value of the grammar may be typed).
WINDOW_SUGGESTIONS = ("24h", "7d", "30d", "90d", "all")


async def _inputs(
    datasette: Datasette, database: str, probe: probe_sql.Probe, args: dict[str, str]
) -> list[dict[str, Any]]:
    """The probe's parameters as form inputs: tasks and periods to pick, windows to type."""
    inputs = []
    for param in probe.params:
        value = args.get(param.name, "")
        entry: dict[str, Any] = {
            "name": param.name,
            "value": value,
            "default": param.default or "",
            "help": param.description + (f" (default {param.default})" if param.default else ""),
            "options": None,
            "suggest": (),
            "size": 12,
        }
        if param.name == "task_slug":
            tasks = await _task_slugs(datasette, database)
            if value and value not in tasks:
                tasks = [value, *tasks]
            entry["options"] = [("", "all tasks"), *((t, t) for t in tasks)]
        elif param.name == "period":
            entry["options"] = [("", "day"), ("hour", "hour")]
            if value == "day":
                entry["value"] = ""
        elif param.name in probe_sql.WINDOW_PARAMS:
            entry["suggest"] = WINDOW_SUGGESTIONS
            entry["size"] = 24
        inputs.append(entry)
    return inputs


async def _task_slugs(datasette: Datasette, database: str) -> list[str]:
    rows = await datasette.get_database(database).execute(probe_sql.get("task_list").sql)
    return [r["task_slug"] for r in rows]


def _grouped_queries(queries: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """The database page's canned queries under their headings, each with its short
    description (the probe's, without the parameter help the query page shows by its inputs)."""
    by_name = {q["name"]: q for q in queries}
    out = []
    for title, names in query_groups(list(by_name)):
        items = []
        for name in names:
            probe = _probe(name)
            text = probe.description if probe else by_name[name].get("description") or ""
            items.append({**by_name[name], "te_description": _gist(text)})
        out.append((title, items))
    return out


def _gist(text: str, limit: int = 160) -> str:
    """The first sentence of a description, before its details (after a colon) if long."""
    first = text.split(". ")[0].rstrip(".")
    if len(first) > limit and ": " in first:
        first = first.split(": ")[0]
    return first + "."


def _pk_cell(cell: dict[str, Any]) -> Any:
    """The row link of a table row; a hex key (an error group's hash) shown short."""
    value = cell.get("value")
    if cell.get("column") not in HASH_COLUMNS:
        return value
    match = re.fullmatch(r'<a href="([^"]*)">([0-9a-fA-F]+)</a>', str(value))
    if match is None:
        return value
    return Markup('<a href="{}">{}</a>').format(match[1], short_hash(match[2]))


@hookimpl
def extra_body_script(template: str, request: Request | None, datasette: Datasette) -> Any:
    """On the dashboard: a bad ``since`` is said above the charts (and the charts that read it
    step aside), and a window after the newest row says where the data is."""
    if template not in ("dashboard_view.html", "dashboard_chart.html") or request is None:
        return None
    ours = _our_dashboard(datasette, request)
    if ours is None:
        return None
    database, charts = ours

    async def inner() -> str:  # "" when there is nothing to say (None would print "None")
        args = _args(request)
        windowed = [slug for slug, c in charts.items() if _reads_window(c.get("query"))]
        problem = window_problem("te_since(:since, '7d')", args)
        if problem is not None:
            return _dashboard_script(problem, "error", windowed)
        since = window_of("te_since(:since, '7d')", args)
        first, last = await _data_range(datasette, database)
        if since is not None and (last is None or since > last):
            return _dashboard_script(_sentence(empty_note(first, last, since)), "info", [])
        return ""

    return inner


def _reads_window(sql: str | None) -> bool:
    return bool(sql) and re.search(r"te_since\(\s*:since\b", sql or "") is not None


def _dashboard_script(message: str, kind: str, hide: list[str]) -> str:
    """A script that shows ``message`` under the dashboard's filters; with an error, the charts
    reading the window are replaced by a short note and their failed fetches stay quiet."""
    data = json.dumps({"message": message, "kind": kind, "hide": hide}).replace("<", "\\u003c")
    return (
        f"(() => {{ const te = {data};"
        "const p = document.createElement('p');"
        "p.className = 'message-' + te.kind + ' te-window-note te-window-' + te.kind;"
        "p.textContent = te.message;"
        "const anchor = document.querySelector('.dashboard-filters')"
        " || document.querySelector('.dashboard-header')"
        " || document.querySelector('section.content');"
        "anchor.after(p);"
        "if (te.kind === 'error') {"
        "window.addEventListener('unhandledrejection', e => e.preventDefault());"
        "for (const slug of te.hide) {"
        "const el = document.getElementById('chart-' + slug); if (!el) continue;"
        "el.style.display = 'none';"
        "const n = document.createElement('p'); n.className = 'te-chart-note';"
        "n.textContent = 'Not drawn: the window above is not valid.'; el.after(n); } } })();"
    )


# -- cells ----------------------------------------------------------------------------------


@hookimpl
def render_cell(
    value: Any, column: str, table: str | None, database: str, datasette: Datasette
) -> Markup | None:
    """Status labels; short hex ids (whole on hover and on a row's page) linked to their trace,
    group or attempt; times to the second; rates as percentages; durations for people;
    stacks and JSON readable."""
    if table not in _OUR_TABLES or database not in taskexec_databases(datasette):
        return None
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return _render_text(value, column, table, database, datasette)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if column == "id" and table is None and isinstance(value, int):
        href = datasette.urls.row(database, TABLE, str(value))
        return Markup('<a href="{}">{}</a>').format(href, value)
    if is_rate(column) and 0 <= value <= 1:
        return percent(value)
    if column.endswith("_ms"):  # a number: nothing to escape
        return Markup(f'<span class="te-ms" title="{value} ms">{human_ms(value)}</span>')
    return None


def _render_text(
    value: str, column: str, table: str | None, database: str, datasette: Datasette
) -> Markup | None:
    urls = datasette.urls
    if column == "status":
        return status_label(value)
    if column == "trace_id":
        return Markup('<a class="te-trace" href="{}">{}</a>').format(
            trace_url(datasette, value), short_hash(value)
        )
    if column == "stack_hash":
        href = urls.table(database, TABLE) + "?stack_hash=" + quote(value)
        return Markup('<a class="te-hash" href="{}">{}</a>').format(href, short_hash(value))
    if column in SPAN_LINK_COLUMNS:
        href = urls.table(database, TABLE) + "?span_id=" + quote(value)
        return Markup('<a class="te-hash" href="{}">{}</a>').format(href, short_hash(value))
    if column in HASH_COLUMNS:
        return Markup('<span class="te-hash">{}</span>').format(short_hash(value))
    if column == "stack_trace":
        return Markup('<pre class="te-stack">{}</pre>').format(value)
    if column == "error_type" and "." in value:  # may wrap after a dot, not inside a name
        return Markup(".<wbr>").join(value.split("."))
    if column in CLIPPED_COLUMNS:
        return Markup('<div class="te-clip" title="{0}">{0}</div>').format(value)
    if column in JSON_COLUMNS:
        return render_json(value)
    return readable_time(value)


def trace_url(datasette: Datasette, trace_id: str) -> str:
    """Where the trace page for ``trace_id`` lives."""
    return datasette.urls.path("/-/trace/" + quote(trace_id, safe=""))


@functools.lru_cache(maxsize=4096)
def render_json(text: str) -> Markup | None:
    """A JSON list of scalars as a row of chips; anything else pretty-printed in <pre>.
    Remembered: the same attributes and sources repeat on row after row of a table page."""
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
