"""The task health dashboard's page, drawn fast: datasette-dashboards' page for it, with our
``templates/taskexec_dashboard.html`` and ``static/dashboard.js`` in place of its template's
scripts (see the template for what differs; every chart draws as before).

datasette-dashboards renders every dashboard with ``dashboard_view.html``. ``DashboardLoader``
answers that name, ahead of the plugin's own, with a template that extends ours when the page
has ``te_dashboard`` (``page_vars``: the task health dashboard of a taskexec database) and the
plugin's template otherwise, so other dashboards, the chart pages and a ``--template-dir``'s
own ``dashboard_view.html`` are untouched.
"""

from __future__ import annotations

import json
import os
import weakref
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from datasette.utils.asgi import Request, Response
from jinja2 import BaseLoader, Environment, TemplateNotFound

from . import static
from .metadata import DASHBOARD
from .precompiled import VEGA_LITE_BASE, committed, current_specs, vendor_dir

if TYPE_CHECKING:
    from datasette.app import Datasette

TEMPLATE = "dashboard_view.html"
#: The name datasette-dashboards' (or whoever's) ``dashboard_view.html`` keeps here.
ORIGINAL = "taskexec-original:dashboard_view.html"
OUR_TEMPLATE = "taskexec_dashboard.html"
SHIM = "{% extends " + f'"{OUR_TEMPLATE}" if te_dashboard else "{ORIGINAL}"' + " %}"
#: The scripts of datasette-dashboards we serve (cached for good, see ``static``).
VENDOR = frozenset({"vega.min.js", "vega-embed.min.js", "vega-lite.min.js"})
VENDOR_PREFIX = "/-/taskexec/vendor/"
SPECS_PREFIX = "/-/taskexec/charts/"


class DashboardLoader(BaseLoader):
    """Answers ``dashboard_view.html`` with ``SHIM``, and ``ORIGINAL`` with what the loaders
    after it answer for ``dashboard_view.html``. Steps aside for a ``--template-dir`` that
    has its own."""

    def __init__(self, rest: BaseLoader, template_dir: str | None) -> None:
        self.rest = rest
        self.template_dir = template_dir

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        if template == ORIGINAL:
            return self.rest.get_source(environment, TEMPLATE)
        if template != TEMPLATE or self._overridden():
            raise TemplateNotFound(template)
        return SHIM, None, lambda: True

    def _overridden(self) -> bool:
        return bool(self.template_dir) and os.path.isfile(
            os.path.join(str(self.template_dir), TEMPLATE)
        )

    def list_templates(self) -> list[str]:
        return [] if self._overridden() else [TEMPLATE]


@cache
def _vendor_lookup() -> Callable[[str], Path | None]:
    return static.in_folder(vendor_dir(), VENDOR)


def _vendor(name: str) -> Path | None:
    return _vendor_lookup()(name)


def vendor_url(datasette: Datasette, name: str) -> str:
    path = _vendor(name)
    version = static.version(path) if path is not None else ""
    return datasette.urls.path(f"{VENDOR_PREFIX}{name}?v={version}")


def dashboard_charts(datasette: Datasette) -> dict[str, Any]:
    """The task health dashboard's charts, as datasette-dashboards is configured with them."""
    config = (datasette.plugin_config("datasette-dashboards") or {}).get(DASHBOARD) or {}
    charts: dict[str, Any] = config.get("charts") or {}
    return charts


#: Per server: the committed file it was made from, and the specs as served. A server's
#: dashboard config does not change while it runs; the committed file may (it is regenerated).
_SPECS: weakref.WeakKeyDictionary[Datasette, tuple[dict[str, Any], static.Asset | None]] = (
    weakref.WeakKeyDictionary()
)


def specs_json(datasette: Datasette) -> static.Asset | None:
    """The compiled Vega of the dashboard's charts that have a current one, as served: JSON,
    ``{"vegaLite": the version that compiled them, "specs": {slug: vega}}``; None when no chart
    has one. Made once per server and committed file: every page view names its version."""
    source = committed()
    made = _SPECS.get(datasette)
    if made is not None and made[0] is source:
        return made[1]
    specs = current_specs(dashboard_charts(datasette))
    found = None
    if specs:
        text = json.dumps(
            {"vegaLite": source.get("vega_lite"), "specs": specs},
            separators=(",", ":"),
            ensure_ascii=False,
        )
        found = static.make_asset(text.encode(), "application/json", length=16)
    _SPECS[datasette] = (source, found)
    return found


def data_url(chart: dict[str, Any], query_string: str, absolute_url: str) -> str:
    """The URL of a chart's rows, character for character as dashboards.js (and our
    dashboard.js) builds it with ``encodeURIComponent``."""
    sql = quote(chart["query"], safe="!'()*")
    return f"{absolute_url}{chart['db']}.json?sql={sql}&{query_string}&_shape=objects"


def preloads(charts: dict[str, Any], query_string: str, absolute_url: str) -> list[str]:
    """The rows the page will ask for, once each, in the page's order (its numbers and tables
    first: cheap to answer and to show, at the top of the page): the browser asks for them as
    it reads the page's head, before its stylesheets and scripts have arrived."""
    urls = [data_url(c, query_string, absolute_url) for c in charts.values() if c.get("query")]
    return list(dict.fromkeys(urls))


def page_vars(datasette: Datasette, static_url: Callable[[str], str]) -> dict[str, Any]:
    """``te_dashboard`` for the page: our script and Vega's, versioned for caching, the
    compiled specs' URL (blank when none) and the Vega-Lite version that compiled them, and
    datasette-dashboards' Vega-Lite wrapper."""
    specs = specs_json(datasette)
    return {
        "te_dashboard": {
            "script": static_url("dashboard.js"),
            "vega": vendor_url(datasette, "vega.min.js"),
            "vega_embed": vendor_url(datasette, "vega-embed.min.js"),
            "vega_lite": vendor_url(datasette, "vega-lite.min.js"),
            "vega_lite_version": committed().get("vega_lite") or "",
            "specs": datasette.urls.path(f"{SPECS_PREFIX}{specs.version}.json") if specs else "",
            "base": json.dumps(VEGA_LITE_BASE, separators=(",", ":")),
            "preloads": preloads,
        }
    }


def warm() -> None:
    """Read and compress Vega's scripts ahead, so the first visitor does not wait for it."""
    for name in VENDOR:
        path = _vendor(name)
        if path is not None:
            static.asset(path).gzipped  # noqa: B018 (computed once, kept)


def routes() -> list[tuple[str, Any]]:
    """Vega's scripts and the compiled specs, both cached for good."""

    async def specs(request: Request, datasette: Datasette) -> Response:
        found = specs_json(datasette)
        if found is None or request.url_vars["version"] != found.version:
            return static.not_found()  # a page's older compiled specs: it compiles instead
        return static.respond(request, found, forever=True)

    specs._datasette_static = True  # type: ignore[attr-defined]
    return [
        (rf"^{VENDOR_PREFIX}(?P<path>[A-Za-z0-9_.-]+)$", static.folder_view(_vendor)),
        (rf"^{SPECS_PREFIX}(?P<version>[0-9a-f]+)\.json$", specs),
    ]
