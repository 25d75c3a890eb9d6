"""The dashboard refreshes itself when asked: a real headless Chromium against a real
``taskexec serve``. The page's clock is Playwright's (so minutes pass in milliseconds); the
server, its database and the network are real."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_browser import CHROMIUM_ARGS, HEIGHT, WIDTH, chromium, serving_demo

from taskexec.db.store import Store
from taskexec.faces.datasette.metadata import DASHBOARD, dashboard
from taskexec.model import TaskExecution, utcnow


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``taskexec serve`` over a fresh demo database whose rows end about now: (URL, file)."""
    with serving_demo(tmp_path_factory.mktemp("refresh"), 2000, 7) as served:
        yield served


@pytest.fixture
def page() -> Iterator[Any]:
    """A fresh page whose clock the test moves (``page.clock``), logging problems and the
    chart data it fetches (``page.fetched``)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
        pg = context.new_page()
        pg.problems = []  # type: ignore[attr-defined]
        pg.fetched = []  # type: ignore[attr-defined]
        pg.on("console", lambda m: m.type == "error" and pg.problems.append(m.text))
        pg.on("pageerror", lambda e: pg.problems.append(str(e)))
        pg.on("request", lambda r: ".json?sql=" in r.url and pg.fetched.append(r.url))
        pg.clock.install()
        yield pg
        browser.close()


def drawn(page: Any) -> None:
    """Wait until every metric shows its number and the page's fetches are done."""
    for slug, chart in dashboard("tasks")["charts"].items():
        if chart["library"] == "metric":
            page.wait_for_selector(f"#chart-{slug} p", timeout=20_000)
    page.wait_for_load_state("networkidle")


def settle(page: Any, fetches: int) -> None:
    """Wait (real time) until the page fetched ``fetches`` chart queries in all and is idle."""
    deadline = time.monotonic() + 20
    while len(page.fetched) < fetches:
        assert time.monotonic() < deadline, f"{len(page.fetched)} of {fetches} fetches"
        time.sleep(0.05)
    page.wait_for_load_state("networkidle")


def metric(page: Any, slug: str, becomes: int | None = None) -> int:
    """A metric's number (once it ``becomes`` that, when given): drawn once, never stacked."""
    if becomes is not None:
        page.wait_for_function(
            "([sel, n]) => [...document.querySelectorAll(sel)].map(p => p.innerText"
            ".replace(/,/g, '')).join() === String(n)",
            arg=[f"#chart-{slug} p", becomes],
            timeout=10_000,
            polling=100,
        )
    values = page.locator(f"#chart-{slug} p")
    assert values.count() == 1, f"{slug} drawn {values.count()} times"  # replaced, not added
    return int(values.inner_text().replace(",", ""))


def test_dashboard_refreshes_at_the_chosen_interval(served: tuple[str, Path], page: Any) -> None:
    base, db = served
    page.goto(f"{base}/-/dashboards/{DASHBOARD}")
    drawn(page)
    per_draw = len(page.fetched)
    assert per_draw >= 8  # every chart fetched its query once
    control = page.locator(".dashboard-toolbar label.te-refresh select")
    assert control.input_value() == ""  # off by default
    assert [o.strip() for o in control.locator("option").all_inner_texts()] == [
        "off",
        "30 s",
        "1 min",
        "5 min",
    ]
    page.clock.run_for("10:00")  # ten minutes pass: nothing refreshes while off
    page.wait_for_load_state("networkidle")
    assert len(page.fetched) == per_draw

    running, attempts = metric(page, "running-now"), metric(page, "attempts-24h")
    chart = page.locator("#chart-attempts-per-day > *")
    parts = chart.count()
    with Store(db) as store:  # a new attempt starts while the dashboard is open
        store.start(TaskExecution(task_slug="late_arrival", status="running", started_at=utcnow()))

    control.select_option("30s")
    assert "refresh=30s" in page.url
    page.clock.run_for("00:29")
    page.wait_for_load_state("networkidle")
    assert len(page.fetched) == per_draw  # not yet
    page.clock.run_for("00:02")
    settle(page, 2 * per_draw)  # every chart fetched anew, once
    assert metric(page, "running-now", becomes=running + 1) == running + 1
    assert metric(page, "attempts-24h", becomes=attempts + 1) == attempts + 1
    # the stamp comes once every chart has drawn again (they draw in turn, after their data)
    page.wait_for_function(
        "document.querySelector('.te-refresh-stamp').textContent.includes('updated')",
        timeout=10_000,
    )
    page.clock.run_for("00:31")
    settle(page, 3 * per_draw)  # and again, every 30 s
    # Redrawn in place: as many parts as before, one of them the new chart (drawn when its
    # turn comes, which can be a moment after its data arrived).
    page.wait_for_function(
        "n => document.querySelectorAll('#chart-attempts-per-day > *').length === n"
        " && document.querySelector('#chart-attempts-per-day svg, #chart-attempts-per-day canvas')",
        arg=parts,
        timeout=10_000,
    )

    # Remembered: a reload keeps it, and so does the filters' Apply.
    page.reload()
    drawn(page)
    assert control.input_value() == "30s"
    assert page.locator(".dashboard-filters input[name=refresh]").input_value() == "30s"
    page.locator(".dashboard-filters input[type=submit]").click()
    page.wait_for_url("**refresh=30s**")
    drawn(page)

    control.select_option("")
    assert "refresh" not in page.url
    assert page.locator(".dashboard-filters input[name=refresh]").count() == 0
    before = len(page.fetched)
    page.clock.run_for("10:00")
    page.wait_for_load_state("networkidle")
    assert len(page.fetched) == before
    assert page.problems == []


def test_only_known_intervals_are_taken_from_the_url(served: tuple[str, Path], page: Any) -> None:
    base, _ = served
    page.goto(f"{base}/-/dashboards/{DASHBOARD}?refresh=1s")
    drawn(page)
    assert page.locator("label.te-refresh select").input_value() == ""
    before = len(page.fetched)
    page.clock.run_for("05:00")
    page.wait_for_load_state("networkidle")
    assert len(page.fetched) == before
    page.goto(f"{base}/-/dashboards/{DASHBOARD}?refresh=5m")
    drawn(page)
    assert page.locator("label.te-refresh select").input_value() == "5m"
