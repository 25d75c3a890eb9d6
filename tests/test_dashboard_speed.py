"""The task health dashboard draws fast at any size (issue "Instant at any size") and draws what
datasette-dashboards draws: our page in its place (``dashboard_page``, ``static/dashboard.js``)
loads no Leaflet and no Vega-Lite (the charts come compiled to Vega, ``precompiled``), asks
for each distinct query once and at once, and serves its scripts from memory, cached for good.

The browser tests compare our page, drawn by a real headless Chromium, with the page
datasette-dashboards draws on its own (its ``dashboard_view.html`` put back with
``--template-dir``): every card's HTML, SVG included, is the same.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from datasette.app import Datasette
from test_browser import CHROMIUM_ARGS, chromium, serving
from test_datasette import Client

from taskexec.faces.datasette import dashboard_page, precompiled
from taskexec.faces.datasette.metadata import DASHBOARD, build_metadata, dashboard
from taskexec.faces.datasette.plugin import SETTINGS

REGENERATE = "run `python -m taskexec.faces.datasette.precompiled` and commit the file"
#: A fixed window inside the demo database's fortnight, so two pages drawn a moment apart
#: show the same rows.
SINCE = "2026-11-10T00:00:00Z"


def vega_lite_charts(database: str = "x") -> dict[str, Any]:
    return {s: c for s, c in dashboard(database)["charts"].items() if c["library"] == "vega-lite"}


# -- the compiled charts ----------------------------------------------------------------------


def test_every_chart_has_its_compiled_vega():
    charts = vega_lite_charts()
    assert set(precompiled.current_specs(charts)) == set(charts), REGENERATE


def test_a_changed_chart_loses_its_compiled_vega():
    charts = vega_lite_charts()
    changed = {**charts["top-errors"], "display": {**charts["top-errors"]["display"]}}
    changed["display"]["mark"] = {"type": "bar", "tooltip": False}
    found = precompiled.current_specs({**charts, "top-errors": changed})
    assert "top-errors" not in found and set(found) == set(charts) - {"top-errors"}


def test_compiled_vega_is_what_vega_lite_compiles():
    """Datasette-dashboards' own Vega-Lite, in Chromium, compiles the committed Vega."""
    chromium()
    charts = vega_lite_charts()
    fresh = precompiled.compile_specs(
        {slug: precompiled.vega_lite_spec(chart) for slug, chart in charts.items()}
    )
    stored = precompiled.committed()
    assert stored["vega_lite"] == fresh["version"], REGENERATE
    for slug in charts:
        assert stored["charts"][slug]["spec"] == fresh["specs"][slug], (slug, REGENERATE)
        assert stored["charts"][slug]["warnings"] == fresh["warnings"][slug], (slug, REGENERATE)


# -- the page and its files, in process -------------------------------------------------------


@pytest.fixture(scope="module")
def client(demo_db):
    c = Client(demo_db)
    yield c
    c.close()


def dashboard_html(c: Client) -> str:
    response = c.get(f"/-/dashboards/{DASHBOARD}?since=7d&task_slug=")
    assert response.status_code == 200
    return str(response.text)


def test_the_dashboard_page_is_ours(client):
    html = dashboard_html(client)
    assert "/-/taskexec/static/dashboard.js?v=" in html
    assert "/-/taskexec/vendor/vega.min.js?v=" in html
    assert "/-/taskexec/vendor/vega-embed.min.js?v=" in html
    assert "/-/taskexec/charts/" in html
    assert not re.search(r'(src|href)="[^"]*leaflet', html)  # no map: no Leaflet
    assert "dashboards.js" not in html
    assert '<script src="/-/taskexec/vendor/vega-lite.min.js' not in html
    assert html.count("renderChart('") == len(dashboard("demo")["charts"])


@pytest.mark.parametrize("asked", ["task_slug=", "task_slug=all+tasks", ""])
def test_the_task_filter_has_no_blank_entry(client, asked):
    """The task filter offers "all tasks" and each task; a blank value (a link or bookmark
    with ``task_slug=``) shows "all tasks" picked, which is what its queries read it as."""
    response = client.get(f"/-/dashboards/{DASHBOARD}?since=7d&{asked}")
    assert response.status_code in (200, 302)
    if response.status_code == 302:
        response = client.get(response.headers["location"])
    select = re.search(r'<select id="task_slug".*?</select>', response.text, re.S)
    assert select is not None
    options = re.findall(r'<option value="([^"]*)"\s*(selected)?', select.group(0))
    assert options[0] == ("all tasks", "selected") and len(options) > 3
    assert all(value for value, _ in options) and sum(1 for _, s in options if s) == 1


def test_a_template_dir_with_its_own_dashboard_page_wins(demo_db, tmp_path):
    (tmp_path / "dashboard_view.html").write_text("{{ dashboard.title }}: theirs")
    ds = Datasette(
        [str(demo_db)],
        metadata=build_metadata(demo_db.stem),
        settings=dict(SETTINGS),
        template_dir=str(tmp_path),
    )
    c = Client(demo_db)
    c.ds = ds
    try:
        assert dashboard_html(c) == "Task health: theirs"
    finally:
        c.close()


def test_other_dashboards_keep_datasette_dashboards_page(demo_db):
    metadata = build_metadata(demo_db.stem)
    dashboards = metadata["plugins"]["datasette-dashboards"]
    other = {**dashboards[DASHBOARD], "title": "Another"}
    dashboards["another"] = other
    c = Client(demo_db)
    c.ds = Datasette([str(demo_db)], metadata=metadata, settings=dict(SETTINGS))
    try:
        theirs = c.get("/-/dashboards/another?since=7d&task_slug=").text
        assert "datasette_dashboards/dashboards.js" in theirs
        assert "vega-lite.min.js" in theirs and "taskexec/static/dashboard.js" not in theirs
        assert "taskexec/static/dashboard.js" in dashboard_html(c)
    finally:
        c.close()


def script_urls(html: str, *names: str) -> list[str]:
    return [
        url
        for url in re.findall(r'src="([^"]+)"', html)
        if any(url.split("?")[0].endswith(n) for n in names)
    ]


def test_scripts_are_served_from_memory_and_cached_for_good(client):
    html = dashboard_html(client)
    urls = script_urls(html, "dashboard.js", "vega.min.js", "vega-embed.min.js")
    assert len(urls) == 3
    vendor = precompiled.vendor_dir()
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        if "/vendor/" in url:
            assert response.content == (vendor / url.split("/")[-1].split("?")[0]).read_bytes()
    # Without the version: asked again each time, a 304 when unchanged.
    plain = client.get("/-/taskexec/vendor/vega.min.js")
    assert plain.headers["cache-control"] == "no-cache"
    again = client.loop.run_until_complete(
        client.ds.client.get(
            "/-/taskexec/vendor/vega.min.js", headers={"if-none-match": plain.headers["etag"]}
        )
    )
    assert again.status_code == 304 and again.content == b""
    # Compressed for browsers that take it.
    packed = client.loop.run_until_complete(
        client.ds.client.get(urls[1], headers={"accept-encoding": "gzip"})
    )
    assert packed.headers["content-encoding"] == "gzip"
    assert int(packed.headers["content-length"]) < len(plain.content) / 2
    # Only Vega's scripts, nothing beside or above them.
    for path in ("dashboards.js", "dashboards.css", "..", "nope.js"):
        assert client.get(f"/-/taskexec/vendor/{path}").status_code == 404, path
    assert client.get("/-/taskexec/static/nope.css").status_code == 404
    css = client.get("/-/taskexec/static/taskexec.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_compiled_specs_are_served_by_their_version(client):
    html = dashboard_html(client)
    url = re.search(r'data-specs="([^"]+)"', html)
    assert url is not None
    response = client.get(url[1])
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    body = response.json()
    assert body["vegaLite"] == precompiled.committed()["vega_lite"]
    assert set(body["specs"]) == set(vega_lite_charts())
    assert client.get("/-/taskexec/charts/0123456789abcdef.json").status_code == 404


def test_gzip_round_trips():
    from taskexec.faces.datasette import static

    found = static.make_asset(b"x" * 5000, "application/javascript")
    assert found.gzipped is not None and gzip.decompress(found.gzipped) == found.body
    assert found.content_type == "application/javascript; charset=utf-8"
    assert static.make_asset(b"tiny", "text/css").gzipped is None


# -- in Chromium ------------------------------------------------------------------------------


@contextlib.contextmanager
def serving_original(db: Path, tmp_path: Path) -> Iterator[str]:
    """``db`` served as datasette-dashboards draws it on its own: its ``dashboard_view.html``
    put back with ``--template-dir`` (same metadata, same settings)."""
    templates = tmp_path / "original-templates"
    templates.mkdir()
    shutil.copy(
        precompiled.vendor_dir().parent / "templates" / dashboard_page.TEMPLATE,
        templates / dashboard_page.TEMPLATE,
    )
    metadata = tmp_path / "metadata.json"
    metadata.write_text(json.dumps(build_metadata(db.stem)))
    settings = [part for k, v in SETTINGS.items() for part in ("--setting", k, str(v))]
    datasette = Path(sys.executable).with_name("datasette")
    command = [str(datasette), "serve", str(db), "-m", str(metadata)]
    with serving(db, [*command, "--template-dir", str(templates), *settings]) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def ours(demo_db):
    with serving(demo_db) as base:
        yield base


DRAWN = """([slugs]) => slugs.every(s => document.querySelector('#chart-' + s + ' svg.marks'))"""
CARDS = """() => Object.fromEntries([...document.querySelectorAll('.dashboard-card-chart')]
  .map(e => [e.id, e.innerHTML]))"""


def open_dashboard(context: Any, base: str, query: str) -> tuple[Any, dict[str, Any]]:
    """The dashboard drawn in a new tab of ``context``: the tab and what it asked for."""
    page = context.new_page()
    seen: dict[str, Any] = {"requests": [], "problems": [], "warnings": []}
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.on("console", lambda m: m.type == "error" and seen["problems"].append(m.text))
    page.on("console", lambda m: m.type == "warning" and seen["warnings"].append(m.text))
    page.on("pageerror", lambda e: seen["problems"].append(str(e)))
    page.goto(f"{base}/-/dashboards/{DASHBOARD}?{query}")
    slugs = list(vega_lite_charts())
    page.wait_for_function(DRAWN, arg=[slugs], timeout=30_000)
    for slug, chart in dashboard("x")["charts"].items():
        if chart["library"] in ("metric", "table"):
            page.wait_for_selector(f"#chart-{slug} > div", timeout=30_000)
    page.wait_for_load_state("networkidle")
    return page, seen


def test_our_page_draws_what_datasette_dashboards_draws(demo_db, ours, browser, tmp_path):
    with serving_original(demo_db, tmp_path) as original:
        for query in (f"since={SINCE}&task_slug=", "since=all&task_slug=sync_inbox"):
            drawn, warned = {}, {}
            for name, base in (("ours", ours), ("original", original)):
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                page, seen = open_dashboard(context, base, query)
                assert seen["problems"] == [], (name, seen["problems"])
                drawn[name] = page.evaluate(CARDS)
                warned[name] = sorted(seen["warnings"])
                context.close()
            # vega-embed says the same, but for what Vega-Lite said when it compiled the charts
            compiled = precompiled.committed()["charts"]
            said = [w for chart in compiled.values() for w in chart["warnings"]]
            assert sorted(warned["ours"] + said) == warned["original"]
            assert drawn["ours"].keys() == drawn["original"].keys()
            for card, html in drawn["original"].items():
                assert drawn["ours"][card] == html, (query, card)


def test_the_page_asks_for_little(demo_db, ours, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page, seen = open_dashboard(context, ours, "since=7d&task_slug=")
    assert seen["problems"] == []
    assert not [w for w in seen["warnings"] if "preload" in w]  # every preload was used
    asked = seen["requests"]
    assert all(urlparse(u).hostname == "127.0.0.1" for u in asked), asked
    assert not [u for u in asked if "leaflet" in u or "vega-lite" in u or "dashboards.js" in u]
    assert len(asked) == len(set(asked))  # each once: the preloaded ones too
    queries = [u for u in asked if ".json?sql=" in u]
    distinct = {c["query"] for c in dashboard("x")["charts"].values() if "query" in c}
    assert len(queries) == len(distinct)  # shared queries asked once
    # A returning visitor's browser has every script: nothing is fetched again.
    page.close()
    page, seen = open_dashboard(context, ours, "since=all&task_slug=")
    fetched = page.evaluate(
        "() => performance.getEntriesByType('resource')"
        ".filter(e => /\\.js(\\?|$)/.test(e.name) && e.transferSize > 0).map(e => e.name)"
    )
    assert fetched == []
    context.close()


def test_a_chart_without_compiled_vega_is_compiled_in_the_page(demo_db, ours, browser):
    """A chart changed since the Vega was compiled draws as datasette-dashboards draws it."""
    query = f"since={SINCE}&task_slug="
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page, _ = open_dashboard(context, ours, query)
    want = page.evaluate(CARDS)
    context.close()

    context = browser.new_context(viewport={"width": 1280, "height": 900})

    def without_one(route: Any, request: Any = None) -> None:
        body = route.fetch().json()
        del body["specs"]["duration-per-day"]
        route.fulfill(json=body)

    context.route("**/-/taskexec/charts/*.json", without_one)
    page, seen = open_dashboard(context, ours, query)
    assert seen["problems"] == []
    assert [u for u in seen["requests"] if "vega-lite.min.js" in u]
    assert page.evaluate(CARDS) == want
    context.close()
