"""The dashboard's Vega-Lite charts compiled to Vega ahead of time.

Compiling six Vega-Lite specs in the browser costs a sixth of the dashboard's drawing time,
and Vega-Lite itself is 250 KB of JavaScript to fetch and run; the page needs neither when it
gets each chart as Vega. The Vega is compiled from the very spec the page would compile
(``vega_lite_spec``: datasette-dashboards' wrapper around a chart's ``display``, its rows
named ``table``) by the Vega-Lite that datasette-dashboards ships, and committed in
``datasette/static/task-health.vega.json`` with each spec's fingerprint (``spec_key``).

``current_specs`` answers the charts whose fingerprint still matches; a chart changed since
(or a newer datasette-dashboards) has none, and the page compiles its Vega-Lite as before:
slower, drawn the same. ``python -m taskexec.faces.datasette.precompiled`` rewrites the file
(headless Chromium, as the browser tests use); ``tests/test_dashboard_speed.py`` checks it is
current.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import shutil
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from .assets import assets_dir
from .metadata import DASHBOARD, dashboard

#: The name of a chart's rows in its spec (the page fills them in before drawing).
DATA = "table"
#: What datasette-dashboards' ``renderVegaLiteChart`` puts around every chart's ``display``.
VEGA_LITE_BASE: dict[str, Any] = {
    "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
    "width": "container",
    "view": {"stroke": None},
    "config": {"background": "#00000000", "arc": {"innerRadius": 50}, "line": {"point": True}},
}
#: The committed Vega, in the assets' static folder.
SPECS_FILE = f"{DASHBOARD}.vega.json"


def vendor_dir() -> Path:
    """datasette-dashboards' static folder: Vega, Vega-Lite and vega-embed, as it ships them."""
    spec = importlib.util.find_spec("datasette_dashboards")
    if spec is None or spec.origin is None:
        raise RuntimeError("datasette-dashboards is not installed")
    return Path(spec.origin).parent / "static"


@cache
def _toolchain() -> str:
    """What compiled the Vega: datasette-dashboards' version names its Vega-Lite."""
    return "datasette-dashboards " + importlib.metadata.version("datasette-dashboards")


def vega_lite_spec(chart: dict[str, Any]) -> dict[str, Any]:
    """The Vega-Lite spec the dashboard draws for ``chart``, its rows named ``DATA``."""
    return {
        **VEGA_LITE_BASE,
        "description": chart.get("title"),
        "data": {"name": DATA},
        **chart["display"],
    }


def spec_key(spec: dict[str, Any]) -> str:
    """A fingerprint of a Vega-Lite spec and of the Vega-Lite that compiles it."""
    text = json.dumps([_toolchain(), spec], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _path() -> Path:
    return assets_dir() / "static" / SPECS_FILE


@lru_cache(maxsize=4)
def _load(path: Path, mtime_ns: int) -> dict[str, Any]:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) and isinstance(found.get("charts"), dict) else {}


def committed() -> dict[str, Any]:
    """The committed file: ``charts`` (``{slug: {"key": ..., "spec": vega}}``) and the
    ``vega_lite`` version that compiled them; empty if missing or unreadable."""
    path = _path()
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return {}
    return _load(path, mtime)


def current_specs(charts: dict[str, Any]) -> dict[str, Any]:
    """The committed Vega of every Vega-Lite chart of ``charts`` whose spec is unchanged."""
    stored = committed().get("charts", {})
    out = {}
    for slug, chart in charts.items():
        if chart.get("library") != "vega-lite" or "display" not in chart:
            continue
        entry = stored.get(slug)
        if isinstance(entry, dict) and entry.get("key") == spec_key(vega_lite_spec(chart)):
            out[slug] = entry["spec"]
    return out


#: Compiles ``specs`` in the page, keeping what Vega-Lite warns of (the page warned of it when
#: it compiled them itself, through vega-embed's logger: "WARN " and the message).
COMPILE = """
specs => {
  const out = {version: vegaLite.version, specs: {}, warnings: {}};
  for (const [slug, spec] of Object.entries(specs)) {
    const said = [];
    const logger = vega.logger(vega.Warn);
    logger.warn = (...parts) => { said.push(["WARN", ...parts].join(" ")); return logger; };
    out.specs[slug] = vegaLite.compile(spec, {logger}).spec;
    out.warnings[slug] = said;
  }
  return out;
}
"""


def compile_specs(specs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Vega-Lite specs compiled to Vega by datasette-dashboards' Vega-Lite in headless
    Chromium (Debian's chromium and the dev extra's Playwright): ``{"version": Vega-Lite's,
    "specs": {slug: vega}, "warnings": {slug: what Vega-Lite warned of}}``."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise RuntimeError("Chromium is not installed: `bash scripts/test.sh` installs it")
    vendor = vendor_dir()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True)
        try:
            page = browser.new_page()
            for name in ("vega.min.js", "vega-lite.min.js"):
                page.add_script_tag(content=(vendor / name).read_text(encoding="utf-8"))
            compiled: dict[str, Any] = page.evaluate(COMPILE, specs)
        finally:
            browser.close()
    return compiled


def build() -> str:
    """The file's text for the current dashboard: one chart a line, so a diff shows which."""
    charts = {
        slug: chart
        for slug, chart in dashboard("taskexec")["charts"].items()
        if chart["library"] == "vega-lite"
    }
    specs = {slug: vega_lite_spec(chart) for slug, chart in charts.items()}
    compiled = compile_specs(specs)
    lines = [
        json.dumps(slug)
        + ": "
        + json.dumps(
            {
                "key": spec_key(specs[slug]),
                "warnings": compiled["warnings"][slug],
                "spec": compiled["specs"][slug],
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )
        for slug in specs
    ]
    head = json.dumps(
        {
            "about": "Generated by `python -m taskexec.faces.datasette.precompiled`: "
            "the task-health dashboard's Vega-Lite charts as Vega. Do not edit.",
            "compiled_by": _toolchain(),
            "vega_lite": compiled["version"],
        }
    )[:-1]
    return head + ', "charts": {\n' + ",\n".join(lines) + "\n}}\n"


def main() -> None:
    path = _path()
    path.write_text(build(), encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
