"""How long the dashboard takes to draw every chart in headless Chromium. Prints, asserts nothing.

    .venv/bin/python benchmarks/bench_dashboard.py DB [--repeat 5] [--since 7d --since all]
        [--page ours --page original] [--chrome-ui]

Serves DB with ``taskexec serve`` on a free loopback port, opens the task-health dashboard for
each window in a fresh browser context (nothing cached: a first visit), and times from
navigation until every Vega chart has drawn and every metric shows a value, then how many
chart requests failed.

``--page original`` also serves DB the way datasette-dashboards draws it on its own (its
``dashboard_view.html`` put back with ``--template-dir``: Leaflet and Vega-Lite loaded, each
chart's spec compiled in the page, its query asked for once the scripts ran), for a
before/after on the same machine at the same time; the pages take turns, run by run, so a busy
machine slows both alike.

Headless Chromium loads its own omnibox popup (a WebUI of hundreds of modules, over a second
of CPU on a small machine) in every new context, beside the page: no visitor pays that
on opening a page, and on two cores it slowed the dashboard by half, so it is switched off
here; ``--chrome-ui`` leaves it on (as this benchmark ran before).

Where the time went, from the page's own clock (medians, ms since navigation): ``html`` the
page arrived, ``scripts`` Vega, vega-embed (and Vega-Lite) arrived, ``rows`` the last chart's
rows arrived, ``drawn`` every chart drawn. Needs Debian's chromium (``bash scripts/test.sh``
installs it) and the dev extra (Playwright's Python package).
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

from taskexec.faces.datasette.metadata import DASHBOARD, build_metadata, dashboard
from taskexec.faces.datasette.plugin import SETTINGS
from taskexec.faces.datasette.precompiled import vendor_dir

#: Chromium's own UI, loaded in every new context (see the module's docstring).
NO_CHROME_UI = "--disable-features=WebUIOmniboxPopup,WebUIOmniboxAimPopup,WebUIOmniboxFullPopup"
#: The page's own clock at each milestone (see the module's docstring).
TIMES = """
([sel, n]) => {
  const drawn = new Set([...document.querySelectorAll(sel)]
    .map(e => e.closest('.dashboard-card-chart').id)).size >= n;
  if (!drawn) return null;
  const entries = performance.getEntriesByType('resource');
  const end = re => Math.max(0, ...entries.filter(e => re.test(e.name)).map(e => e.responseEnd));
  return {
    html: performance.getEntriesByType('navigation')[0].responseEnd,
    scripts: end(/vega(-embed|-lite)?\\.min\\.js/),
    rows: end(/\\.json\\?sql=/),
    drawn: performance.now(),
  };
}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(base + "/-/versions.json", timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not answer within 60 s") from None
            time.sleep(0.2)


def serve(db: Path, page: str, stack: ExitStack) -> str:
    """Serve ``db`` with our page (``taskexec serve``) or datasette-dashboards' own."""
    port = free_port()
    bin_dir = Path(sys.executable).parent
    if page == "ours":
        command = [str(bin_dir / "taskexec"), "serve", str(db), "--port", str(port)]
    else:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        templates = folder / "templates"
        templates.mkdir()
        original = vendor_dir().parent / "templates" / "dashboard_view.html"
        shutil.copy(original, templates / "dashboard_view.html")
        metadata = folder / "metadata.json"
        metadata.write_text(json.dumps(build_metadata(db.stem)))
        settings = [part for k, v in SETTINGS.items() for part in ("--setting", k, str(v))]
        command = [
            str(bin_dir / "datasette"),
            "serve",
            str(db),
            "--port",
            str(port),
            "-m",
            str(metadata),
            "--template-dir",
            str(templates),
            *settings,
        ]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop() -> None:
        proc.terminate()
        proc.wait(timeout=10)

    stack.callback(stop)
    base = f"http://127.0.0.1:{port}"
    wait_until_up(base, proc)
    return base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--since", action="append", default=None)
    parser.add_argument("--page", action="append", choices=["ours", "original"], default=None)
    parser.add_argument(
        "--chrome-ui", action="store_true", help="let Chromium load its omnibox popup too"
    )
    args = parser.parse_args()
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    windows = args.since or ["7d", "all"]
    pages = args.page or ["ours"]
    db = Path(args.db)
    charts = dashboard(db.stem)["charts"]
    drawn = [slug for slug, c in charts.items() if c["library"] == "vega-lite"]
    metrics = [slug for slug, c in charts.items() if c["library"] == "metric"]
    selector = ", ".join(f"#chart-{s} svg, #chart-{s} canvas" for s in drawn)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    ui = ", Chromium's omnibox popup loading too" if args.chrome_ui else ""
    print(f"# {db} ({len(drawn)} charts, {len(metrics)} metrics), first visits{ui}")
    print(
        "| page | window | median s | max s | html | scripts | rows | drawn (ms) "
        "| failed chart requests |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    with ExitStack() as stack, sync_playwright() as p:
        bases = {page: serve(db, page, stack) for page in pages}
        flags = [] if args.chrome_ui else [NO_CHROME_UI]
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=flags)

        def visit_once(page: str, since: str) -> tuple[float, dict[str, float], int] | None:
            """One visit: its time, the page's milestones and its failed chart requests;
            None (said on stderr) when a chart was not drawn within 30 s."""
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            tab = context.new_page()
            bad: list[str] = []
            tab.on("response", lambda r: r.status >= 400 and bad.append(f"{r.status} {r.url}"))
            t0 = time.perf_counter()
            try:
                tab.goto(f"{bases[page]}/-/dashboards/{DASHBOARD}?since={since}&task_slug=")
                marks = tab.wait_for_function(
                    TIMES, arg=[selector, len(drawn)], timeout=30_000
                ).json_value()
                for slug in metrics:
                    tab.wait_for_selector(f"#chart-{slug} p", timeout=30_000)
                took = time.perf_counter() - t0
            except PlaywrightError as exc:
                print(f"{page} {since}: not drawn ({exc.message.splitlines()[0]})", file=sys.stderr)
                for failed in bad:
                    print(f"  {failed[:160]}", file=sys.stderr)
                return None
            finally:
                context.close()
            return took, marks, len(bad)

        for since in windows:
            runs: dict[str, list[tuple[float, dict[str, float], int]]] = {p: [] for p in pages}
            undrawn = dict.fromkeys(pages, 0)
            for _ in range(args.repeat):
                for page in pages:
                    visit = visit_once(page, since)
                    if visit is None:
                        undrawn[page] += 1
                    else:
                        runs[page].append(visit)
            for page in pages:
                if not runs[page]:
                    print(f"| {page} | {since} | not drawn | | | | | | |", flush=True)
                    continue
                took = [t for t, _, _ in runs[page]]
                marks = {
                    key: statistics.median(m[key] for _, m, _ in runs[page])
                    for key in ("html", "scripts", "rows", "drawn")
                }
                failed = sum(n for _, _, n in runs[page])
                note = f" ({undrawn[page]} visits not drawn)" if undrawn[page] else ""
                print(
                    f"| {page} | {since} | {statistics.median(took):.2f} | {max(took):.2f} | "
                    + " | ".join(f"{marks[k]:.0f}" for k in ("html", "scripts", "rows", "drawn"))
                    + f" | {failed}{note} |",
                    flush=True,
                )
        browser.close()


if __name__ == "__main__":
    main()
