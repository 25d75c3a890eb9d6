"""The pieces behind taskexec's Datasette pages: the window check, the human-first column order,
readable cell values and the template names Datasette asks for (``plugin.py`` holds the hooks).

Datasette 0.65 looks up per-database templates before its own (``query-DB.html``,
``database-DB.html``, ``_table-table-DB-TABLE.html``, ``_table-row-DB-TABLE.html``);
``PageLoader`` answers those names for taskexec databases only, with our templates in
``datasette/templates/``, so other databases in the same Datasette keep Datasette's pages and a
user's own ``--template-dir`` still wins (Datasette's loaders are asked first).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import BaseLoader, Environment, TemplateNotFound
from markupsafe import Markup, escape

from ... import probes as probe_sql
from ...errors import InvalidRecord, UnknownProbe
from ...model import STATUSES, window_start
from .metadata import COLUMN_ORDER

#: Datasette's per-database template names we answer, and the file that answers each.
TEMPLATE_FILES = {
    "query": "taskexec_query.html",
    "database": "taskexec_database.html",
    "_table-table": "taskexec_table.html",
    "_table-row": "taskexec_record.html",
}
#: Hex ids shown short (the first characters, the whole value on hover and on a row's page).
HASH_COLUMNS = frozenset(
    {
        "trace_id",
        "span_id",
        "parent_span_id",
        "retry_of",
        "idempotency_key",
        "stack_hash",
        "sample_span_id",
        "first_span_id",
    }
)
SHORT = 8
_STAMP_RE = re.compile(r"^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(\.\d+)?Z$")


# -- windows --------------------------------------------------------------------------------


def query_sql(name: str | None, args: Mapping[str, str]) -> str | None:
    """The SQL a request runs: the probe's for a canned query named after one, else ``sql=``."""
    if name:
        try:
            return probe_sql.get(name).sql
        except UnknownProbe:
            return None
    return args.get("sql")


def window_problem(sql: str | None, args: Mapping[str, str]) -> str | None:
    """The one-line message for a bad window argument of a query, or None when they are fine.

    SQLite hides what ``te_since`` raised ("user-defined function raised exception"), so every
    window the query reads through ``te_since`` is checked here first, with the same grammar.
    """
    if not sql or "te_since(" not in sql:
        return None
    for name in sorted(probe_sql.WINDOW_PARAMS):
        if re.search(rf"te_since\(\s*:{name}\b", sql) is None:
            continue
        try:
            window_start(args.get(name), "7d", name=name)
        except InvalidRecord as exc:
            return str(exc)
    return None


def window_of(sql: str | None, args: Mapping[str, str]) -> str | None:
    """The start of the query's ``since`` window (stored text), or None when it has none."""
    if not sql:
        return None
    match = re.search(r"te_since\(\s*:since\s*,\s*'([^']*)'\s*\)", sql)
    if match is None:
        return None
    try:
        return window_start(args.get("since"), match.group(1), name="since")
    except InvalidRecord:
        return None


# -- counting the executions table ------------------------------------------------------------

#: Arguments of a table page that change how rows are shown, never which rows match.
PRESENTATION_ARGS = frozenset(
    {
        "_sort",
        "_sort_desc",
        "_next",
        "_size",
        "_col",
        "_nocol",
        "_facet",
        "_facet_size",
        "_nofacet",
        "_nosuggest",
        "_nocount",
        "_labels",
        "_label",
        "_trace",
        "_timelimit",
        "_context",
        "_shape",
        "_json",
        "_json_infinity",
        "_nl",
        "_dl",
        "_stream",
    }
)
#: The columns the rollups count by, and the filters (Datasette's lookups) they answer.
_COUNTED = {"status": "statuses", "task_slug": "tasks"}
_LOOKUPS = ("exact", "in", "not", "notin")


@dataclass(frozen=True)
class CountPlan:
    """How the executions table page counts its rows without a scan: from the rollups
    (``statuses`` and ``tasks``, None meaning any) when its only filters are on status and
    task, or from the search index (``search``, an FTS5 query) when its only filter is a
    search. ``count_plan`` says which; None when neither can (Datasette counts)."""

    statuses: frozenset[str] | None = None
    tasks: frozenset[str] | None = None
    search: str | None = None


def count_plan(pairs: Iterable[tuple[str, str]]) -> CountPlan | None:
    """The plan for a table page's query arguments (``(key, value)`` pairs, as Datasette reads
    them): exact, ``__exact``, ``__in``, ``__not`` and ``__notin`` on ``status`` and
    ``task_slug`` (``__not``/``__notin`` on status only) go to the rollups, a lone ``_search``
    to the search index; arguments that only change the view (sort, page, columns) are ignored.
    """
    statuses: set[str] | None = None
    tasks: set[str] | None = None
    search: str | None = None
    seen: set[str] = set()
    for key, value in pairs:
        if key in PRESENTATION_ARGS or key.startswith("_facet_"):
            continue
        if key in seen:  # repeated: Datasette ANDs them; rare, left to it
            return None
        seen.add(key)
        if key == "_search":
            if not value.strip():
                return None
            search = value
            continue
        column, _, lookup = key.partition("__")
        target = _COUNTED.get(column)
        if target is None or (lookup or "exact") not in _LOOKUPS:
            return None
        values = _split(value) if lookup in ("in", "notin") else {value}
        if values is None:
            return None
        if lookup in ("not", "notin"):
            if target != "statuses":
                return None
            values = set(STATUSES) - values
        if target == "statuses":
            statuses = values if statuses is None else statuses & values
        else:
            tasks = values if tasks is None else tasks & values
    if search is not None:
        if statuses is not None or tasks is not None:
            return None
        from datasette.utils import escape_fts  # the table page's own escaping ("escaped" mode)

        return CountPlan(search=str(escape_fts(search)))
    return CountPlan(
        statuses=None if statuses is None else frozenset(statuses),
        tasks=None if tasks is None else frozenset(tasks),
    )


def _split(value: str) -> set[str] | None:
    """The values of an ``__in`` filter, as Datasette splits them (a JSON list or commas)."""
    if value.startswith("["):
        try:
            items = json.loads(value)
        except ValueError:
            return None
        return {str(v) for v in items} if isinstance(items, list) else None
    return {v.strip() for v in value.split(",")}


# -- columns --------------------------------------------------------------------------------


def arrange(
    table: str | None, columns: Sequence[Mapping[str, Any]], rows: Sequence[Iterable[Any]]
) -> tuple[list[Any], list[list[Any]]]:
    """Columns (and each row's cells, matched by column name) in the table's human-first
    order: the row link first, then ``COLUMN_ORDER``'s columns, then the rest as stored, hex
    ids last. Rows of another shape are left as Datasette made them."""
    as_given = list(columns), [list(r) for r in rows]
    order = COLUMN_ORDER.get(table or "", ())
    rank = {name: i for i, name in enumerate(order)}
    last = len(order) + 1

    def key(item: tuple[int, Mapping[str, Any]]) -> tuple[int, int]:
        index, column = item
        name = column["name"]
        if column.get("is_pk"):
            return (-1, index)
        if name in HASH_COLUMNS and name not in rank:
            return (last + 1, index)
        return (rank.get(name, last), index)

    ordered = [column for _, column in sorted(enumerate(columns), key=key)]
    names = [column["name"] for column in ordered]
    arranged = []
    for cells in as_given[1]:
        by_name = {cell["column"]: cell for cell in cells}
        if len(by_name) != len(cells) or set(by_name) != set(names):
            return as_given
        arranged.append([by_name[name] for name in names])
    return ordered, arranged


def row_cells(cells: Iterable[Mapping[str, Any]], pk: Callable[[Mapping[str, Any]], Any]) -> Markup:
    """A table row's ``<td>`` cells as HTML (what ``_table.html`` writes per cell, the row link
    through ``pk``): one string per row, where a Jinja loop costs a template expression or
    three per cell, and a page has thousands of cells."""
    out = []
    for cell in cells:
        value = pk(cell) if cell["value_type"] == "pk" else cell["value"]
        out.append(
            f'<td class="col-{css_class(cell["column"])} type-{escape(cell["value_type"])}">'
            f"{escape(value)}</td>"
        )
    return Markup("".join(out))


# -- cells ----------------------------------------------------------------------------------


# These run for every cell of a table page (thousands per page): f-strings over markupsafe's
# C ``escape`` cost a third of ``Markup.format`` for the same escaped HTML.


def short_and_full(value: str, short: str) -> Markup:
    """Both forms of a long value: the short one shows in tables, the whole one on a row's page
    (``taskexec.css``), and hovering the short one shows the whole one too."""
    whole = escape(value)
    return Markup(
        f'<span class="te-short" title="{whole}">{escape(short)}</span>'
        f'<span class="te-full">{whole}</span>'
    )


def short_hash(value: str) -> Markup:
    return short_and_full(value, value[:SHORT] + "\u2026" if len(value) > SHORT + 1 else value)


def readable_time(value: str) -> Markup | None:
    """A stored time to the second with a space (``2026-11-20 11:59:59``); None if not one."""
    if len(value) < 20 or value[-1] != "Z" or value[10:11] != "T":  # most text, cheaply
        return None
    match = _STAMP_RE.match(value)
    if match is None:
        return None
    return short_and_full(value, f"{match.group(1)} {match.group(2)}")


def is_rate(column: str) -> bool:
    return column.endswith("_rate") or column.startswith("share_")


def percent(value: float) -> Markup:
    return Markup(f'<span class="te-pct" title="{value}">{value:.1%}</span>')


def status_label(value: str) -> Markup | None:
    if value not in STATUSES:  # one of six known words: nothing to escape
        return None
    return Markup(f'<span class="te-status te-status-{value}">{value}</span>')


# -- templates ------------------------------------------------------------------------------


@cache
def css_class(name: str) -> str:
    """Datasette's ``to_css_class`` (how it spells a name inside a template name or a cell's
    class)."""
    from datasette.utils import to_css_class

    return str(to_css_class(name))


class PageLoader(BaseLoader):
    """Answers Datasette's per-database template names for taskexec databases with ours."""

    def __init__(self, folder: Path, databases: Callable[[], frozenset[str]]) -> None:
        self.folder = folder
        self.databases = databases

    def file_for(self, template: str) -> str | None:
        stem, dot, ext = template.rpartition(".")
        if not dot or ext != "html":
            return None
        for name in self.databases():
            db = css_class(name)
            if stem in (f"query-{db}", f"database-{db}"):
                return TEMPLATE_FILES[stem.split("-", 1)[0]]
            for prefix in ("_table-table", "_table-row"):
                for table in COLUMN_ORDER:
                    if stem == f"{prefix}-{db}-{css_class(table)}":
                        return TEMPLATE_FILES[prefix]
        return None

    def list_templates(self) -> list[str]:
        """The names answered now (Jinja's ``list_templates``; datasette-mcp calls it)."""
        names = []
        for name in self.databases():
            db = css_class(name)
            names += [f"query-{db}.html", f"database-{db}.html"]
            for table in COLUMN_ORDER:
                table_class = css_class(table)
                names += [
                    f"_table-table-{db}-{table_class}.html",
                    f"_table-row-{db}-{table_class}.html",
                ]
        return sorted(names)

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        found = self.file_for(template)
        if found is None:
            raise TemplateNotFound(template)
        path = self.folder / found
        mtime = path.stat().st_mtime
        return path.read_text(encoding="utf-8"), str(path), lambda: path.stat().st_mtime == mtime
