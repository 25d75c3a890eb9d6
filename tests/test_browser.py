"""A real headless Chromium against a real ``taskexec serve``: the dashboard draws its charts,
trace ids lead to the trace page, nothing errors and nothing leaves 127.0.0.1.

Set TASKEXEC_SCREENSHOTS=1 to write docs/images/dashboard.png and docs/images/trace.png.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from click.testing import CliRunner

from taskexec.cli import cli
from taskexec.faces.datasette.metadata import DASHBOARD, dashboard

ROOT = Path(__file__).resolve().parents[1]
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def taskexec_command() -> list[str]:
    script = Path(sys.executable).with_name("taskexec")
    return [str(script)] if script.exists() else [sys.executable, "-m", "taskexec"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """``taskexec serve`` over a fresh demo database whose rows end about now."""
    db = tmp_path_factory.mktemp("browser") / "tasks.db"
    result = CliRunner().invoke(cli, ["demo", str(db), "--runs", "6000", "--days", "14"])
    assert result.exit_code == 0, result.output
    port = free_port()
    proc = subprocess.Popen(
        [*taskexec_command(), "serve", str(db), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                pytest.fail(f"taskexec serve exited: {proc.stdout.read() if proc.stdout else ''}")
            try:
                urllib.request.urlopen(base + "/-/versions.json", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("taskexec serve did not answer within 20 s")
                time.sleep(0.1)
        yield base, db.stem
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
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
    page.goto(f"{base}/{db}/task_executions?attempt=3")
    link = page.locator("a.te-trace").first
    trace_id = link.inner_text()
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
