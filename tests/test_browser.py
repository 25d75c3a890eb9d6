"""A real headless Chromium against a real ``taskexec serve``, over every page a user opens:
the database page, the executions table, a row, every canned query, the dashboard, a trace page
and a search. Nothing errors, nothing leaves 127.0.0.1, the human-first columns are on the first
screen at 1280 px, trace ids lead to the trace page and a bad window is said, not drawn empty.

Set TASKEXEC_SCREENSHOTS=1 to write the screenshots in docs/images/ (dashboard, trace,
executions, row, canned query).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from click.testing import CliRunner
from conftest import end, free_port

from taskexec import probes
from taskexec.cli import cli
from taskexec.faces.datasette.metadata import DASHBOARD, dashboard
from taskexec.model import WINDOW_FORMS

ROOT = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 1280, 900
#: What a person looks for first in the executions table, in this order after the row link.
HUMAN_FIRST = ["task_slug", "status", "started_at", "duration_ms", "attempt", "trace_id"]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("Chromium is not installed: `bash scripts/test.sh` installs Debian's chromium")
    return path


def taskexec_command() -> list[str]:
    script = Path(sys.executable).with_name("taskexec")
    return [str(script)] if script.exists() else [sys.executable, "-m", "taskexec"]


@contextlib.contextmanager
def serving(db: Path, command: list[str] | None = None) -> Iterator[str]:
    """``taskexec serve DB`` (or ``command``, given ``--port N`` too) on a free loopback port
    while the block runs: its base URL. Its output goes to a file, not a pipe nobody drains
    (a server that logs every request would block on a full one)."""
    port = free_port()
    with tempfile.TemporaryFile("w+") as output:
        proc = subprocess.Popen(
            [*(command or [*taskexec_command(), "serve", str(db)]), "--port", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 20
            while True:
                if proc.poll() is not None:
                    output.seek(0)
                    pytest.fail(f"the server exited: {output.read()}")
                try:
                    urllib.request.urlopen(base + "/-/versions.json", timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        pytest.fail("the server did not answer within 20 s")
                    time.sleep(0.1)
            yield base
        finally:
            end(proc)


@contextlib.contextmanager
def serving_demo(folder: Path, runs: int, days: int) -> Iterator[tuple[str, Path]]:
    """``taskexec serve`` over a fresh demo database in ``folder`` whose rows end about now:
    (its base URL, the file)."""
    db = folder / "tasks.db"
    result = CliRunner().invoke(cli, ["demo", str(db), "--runs", str(runs), "--days", str(days)])
    assert result.exit_code == 0, result.output
    with serving(db) as base:
        yield base, db


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """``taskexec serve`` over a fresh demo database whose rows end about now."""
    with serving_demo(tmp_path_factory.mktemp("browser"), 6000, 14) as (base, db):
        yield base, db.stem


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
        pg = context.new_page()
        pg.problems = []  # type: ignore[attr-defined]
        pg.on("console", lambda m: m.type == "error" and pg.problems.append(f"console: {m.text}"))
        pg.on("pageerror", lambda e: pg.problems.append(f"page error: {e}"))

        def check_host(request) -> None:
            host = urlparse(request.url).hostname
            if request.url.startswith("http") and host != "127.0.0.1":
                pg.problems.append(f"external request: {request.url}")

        pg.on("request", check_host)
        yield pg
        browser.close()


def screenshot_path(tmp_path: Path, name: str) -> Path:
    if os.environ.get("TASKEXEC_SCREENSHOTS") == "1":
        out = ROOT / "docs" / "images" / name
        out.parent.mkdir(parents=True, exist_ok=True)
        return out
    return tmp_path / name


def test_dashboard_renders_every_chart(server, page, tmp_path):
    base, db = server
    charts = dashboard(db)["charts"]
    drawn = [slug for slug, c in charts.items() if c["library"] == "vega-lite"]
    metrics = [slug for slug, c in charts.items() if c["library"] == "metric"]
    page.problems.clear()
    page.goto(f"{base}/-/dashboards/{DASHBOARD}")
    assert "since=7d" in page.url  # the default filter applied
    selector = ", ".join(f"#chart-{s} svg, #chart-{s} canvas" for s in drawn)
    page.wait_for_function(
        "([sel, n]) => new Set([...document.querySelectorAll(sel)]"
        ".map(e => e.closest('.dashboard-card-chart').id)).size >= n",
        arg=[selector, len(drawn)],
        timeout=20_000,
    )
    for slug in drawn:
        box = page.locator(f"#chart-{slug} canvas, #chart-{slug} svg").first.bounding_box()
        assert box and box["width"] > 200 and box["height"] > 100, slug
    for slug in metrics:
        page.wait_for_selector(f"#chart-{slug} p", timeout=10_000)
    assert int(page.inner_text("#chart-attempts-24h p")) > 0
    assert page.inner_text("#chart-failure-rate-24h p").endswith("%")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(screenshot_path(tmp_path, "dashboard.png")), full_page=True)
    assert page.problems == []


def test_trace_id_leads_to_the_trace_page(server, page, tmp_path):
    base, db = server
    page.problems.clear()
    page.goto(f"{base}/{db}/task_executions?attempt=3")
    link = page.locator("a.te-trace").first
    trace_id = link.get_attribute("href").rsplit("/", 1)[1]
    assert link.inner_text() == trace_id[:8] + "\u2026"  # short; whole on hover
    assert link.locator(".te-short").get_attribute("title") == trace_id
    link.click()
    page.wait_for_url(f"**/-/trace/{trace_id}")
    attempts = page.locator("tr.te-attempt")
    assert [attempts.nth(i).get_attribute("data-attempt") for i in range(attempts.count())] == [
        "1",
        "2",
        "3",
    ]
    assert page.locator(".te-bar").count() == 3
    color = page.eval_on_selector(
        ".te-summary .te-status", "e => getComputedStyle(e).backgroundColor"
    )
    assert color not in ("rgba(0, 0, 0, 0)", "transparent")  # our stylesheet is applied
    page.screenshot(path=str(screenshot_path(tmp_path, "trace.png")), full_page=True)
    assert page.problems == []


def visible_in_first_screen(page, selector: str) -> dict:
    box = page.locator(selector).first.bounding_box()
    assert box is not None, selector
    return box


def test_executions_table_shows_people_first(server, page, tmp_path):
    """At 1280 px, the row link, task, status, start, duration, attempt, trace and the error
    columns are all on the first screen, and the rows are one line high."""
    base, db = server
    page.problems.clear()
    page.goto(f"{base}/{db}/task_executions")
    page.wait_for_load_state("networkidle")
    heads = page.eval_on_selector_all(
        "table.rows-and-columns th", "ths => ths.map(t => t.dataset.column)"
    )
    assert heads[: len(HUMAN_FIRST) + 3] == ["id", *HUMAN_FIRST, "error_type", "error_message"]
    for column in ["id", *HUMAN_FIRST, "error_type"]:
        box = visible_in_first_screen(page, f"th.col-{column}")
        assert box["x"] >= 0 and box["x"] + box["width"] <= WIDTH, column
        assert box["y"] + box["height"] <= HEIGHT, column
    message = visible_in_first_screen(page, "th.col-error_message")
    assert message["x"] + 80 <= WIDTH  # its start, at least, is on screen
    heights = page.eval_on_selector_all(
        "table.rows-and-columns tbody tr", "rows => rows.map(r => r.getBoundingClientRect().height)"
    )
    assert heights and max(heights) < 60, heights  # no invisible stack trace makes a row tall
    page.screenshot(path=str(screenshot_path(tmp_path, "executions.png")))
    assert page.problems == []


def test_row_page_is_a_readable_record(server, page, tmp_path):
    base, db = server
    page.problems.clear()
    page.goto(f"{base}/{db}/task_executions?status=failed&_size=1")
    page.locator("table.rows-and-columns td.col-id a").first.click()
    page.wait_for_selector("table.te-record")
    fields = page.eval_on_selector_all(
        "table.te-record tr", "rows => rows.map(r => r.dataset.column)"
    )
    assert fields[: len(HUMAN_FIRST) + 1] == ["id", *HUMAN_FIRST]
    trace = page.locator("tr[data-column=trace_id] td").inner_text()
    assert len(trace) == 32  # whole values on a row's page
    stack = page.locator("tr[data-column=stack_trace] pre.te-stack")
    assert stack.is_visible() and stack.inner_text().startswith("Traceback")
    page.screenshot(path=str(screenshot_path(tmp_path, "row.png")))
    assert page.problems == []


@pytest.mark.parametrize("name", [p.name for p in probes.all_probes()])
def test_every_canned_query_opens_cleanly(server, page, name):
    base, db = server
    page.problems.clear()
    response = page.goto(f"{base}/{db}/{name}")
    assert response is not None and response.status == 200
    assert page.locator("h1").inner_text().startswith(probes.get(name).title)
    assert page.locator(".message-error").count() == 0
    for param in probes.get(name).params:
        assert page.locator(f"[name={param.name}]").is_visible(), param.name
    if any(p.name == "task_slug" for p in probes.get(name).params):
        options = page.eval_on_selector_all(
            "select[name=task_slug] option", "os => os.map(o => o.value)"
        )
        assert options[0] == "" and len(options) > 3  # a drop-down of the tasks
    assert page.problems == []


def test_canned_query_page_and_a_bad_window(server, page, tmp_path):
    base, db = server
    page.problems.clear()
    page.goto(f"{base}/{db}/recent_failures?limit=20")
    heads = page.eval_on_selector_all(
        "table.rows-and-columns th", "ths => ths.map(t => t.textContent)"
    )
    assert heads[:6] == ["id", "started_at", "task_slug", "status", "attempt", "trace_id"]
    box = visible_in_first_screen(page, "th.col-trace_id")
    assert box["x"] + box["width"] <= WIDTH and box["y"] < HEIGHT
    page.screenshot(path=str(screenshot_path(tmp_path, "canned-query.png")))
    assert page.problems == []
    # Typing a bad window into the form: the page says what is wrong, in one line.
    page.goto(f"{base}/{db}/failure_rates")
    page.fill("input[name=since]", "banana")
    page.click("input[type=submit]")
    error = page.locator("p.message-error")
    assert error.inner_text() == "since: 'banana' is not a window; use " + WINDOW_FORMS
    assert page.locator("input[name=since]").input_value() == "banana"
    assert [p for p in page.problems if "status of 400" not in p] == []


def test_dashboard_says_a_bad_window(server, page):
    base, _ = server
    page.problems.clear()
    page.goto(f"{base}/-/dashboards/{DASHBOARD}?since=1w2d&task_slug=")
    note = page.locator("p.te-window-error")
    note.wait_for(timeout=10_000)
    assert note.inner_text() == "since: '1w2d' is not a window; use " + WINDOW_FORMS
    page.wait_for_selector(".te-chart-note", timeout=10_000)
    assert page.locator(".te-chart-note").count() >= 5
    page.wait_for_load_state("networkidle")
    # The charts' own fetches answer 400 (the browser logs those); nothing throws.
    assert [p for p in page.problems if "status of 400" not in p] == []


def test_database_page_and_search(server, page):
    base, db = server
    page.problems.clear()
    page.goto(f"{base}/{db}")
    assert page.locator("a", has_text="Task health dashboard").is_visible()
    first = page.locator("dl.te-queries dt a").first
    assert first.inner_text() == probes.get("open_alerts").title
    page.goto(f"{base}/{db}/task_executions")
    page.fill("input[name=_search]", "refused")
    page.press("input[name=_search]", "Enter")
    page.wait_for_url("**_search=refused**")
    rows = page.locator("table.rows-and-columns tbody tr")
    assert rows.count() > 0
    assert "refused" in page.locator("table.rows-and-columns tbody").inner_text().lower()
    assert page.problems == []
