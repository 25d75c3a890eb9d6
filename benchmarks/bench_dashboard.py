"""How long the dashboard takes to draw every chart in headless Chromium. Prints, asserts nothing.

    .venv/bin/python benchmarks/bench_dashboard.py DB [--repeat 3] [--since 7d --since all]

Serves DB with ``taskexec serve`` on a free loopback port, opens the task-health dashboard for
each window in a fresh page, and times from navigation until every Vega chart has drawn and
every metric shows a value, then how many chart requests failed. Needs Debian's chromium
(``bash scripts/test.sh`` installs it) and the dev extra (Playwright's Python package).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from taskexec.faces.datasette.metadata import DASHBOARD, dashboard


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--since", action="append", default=None)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    windows = args.since or ["7d", "all"]
    db = Path(args.db)
    port = free_port()
    command = Path(sys.executable).with_name("taskexec")
    proc = subprocess.Popen(
        [str(command), "serve", str(db), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base + "/-/versions.json", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("taskexec serve did not answer within 60 s") from None
                time.sleep(0.2)
        charts = dashboard(db.stem)["charts"]
        drawn = [slug for slug, c in charts.items() if c["library"] == "vega-lite"]
        metrics = [slug for slug, c in charts.items() if c["library"] == "metric"]
        selector = ", ".join(f"#chart-{s} svg, #chart-{s} canvas" for s in drawn)
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        print(f"# {db} ({len(drawn)} charts, {len(metrics)} metrics)")
        print("| window | median s | max s | failed chart requests |\n| --- | ---: | ---: | ---: |")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True)
            for since in windows:
                took, failed = [], 0
                for _ in range(args.repeat):
                    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                    bad: list[str] = []
                    page.on("response", lambda r, bad=bad: r.status >= 400 and bad.append(r.url))
                    t0 = time.perf_counter()
                    page.goto(f"{base}/-/dashboards/{DASHBOARD}?since={since}&task_slug=")
                    page.wait_for_function(
                        "([sel, n]) => new Set([...document.querySelectorAll(sel)]"
                        ".map(e => e.closest('.dashboard-card-chart').id)).size >= n",
                        arg=[selector, len(drawn)],
                        timeout=60_000,
                    )
                    for slug in metrics:
                        page.wait_for_selector(f"#chart-{slug} p", timeout=60_000)
                    took.append(time.perf_counter() - t0)
                    failed += len(bad)
                    page.context.close()
                print(
                    f"| {since} | {statistics.median(took):.2f} | {max(took):.2f} | {failed} |",
                    flush=True,
                )
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
