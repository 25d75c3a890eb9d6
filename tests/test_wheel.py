"""The wheel ships Datasette's assets, and an installed wheel serves them without the checkout.

The repository keeps Datasette's templates and static files in a top-level ``datasette/``
folder; pyproject.toml's hatch ``sources`` rewrite ships them as
``taskexec/faces/datasette/assets/`` in the wheel, and only there (not in the editable wheel).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
import time
import tomllib
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest
from conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
PACKAGED = "taskexec/faces/datasette/assets"
TEMPLATE = "templates/taskexec_trace.html"
STYLESHEET = "static/taskexec.css"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
DIST_INFO = f"taskexec-{VERSION}.dist-info"
#: Written into the installed copies only: a page showing it came from the installed package.
MARKER = "installed-wheel-marker-7f3a"
BUILD_TIMEOUT = 180
SERVER_TIMEOUT = 60

HAVE_HATCHLING = importlib.util.find_spec("hatchling") is not None


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(args, capture_output=True, text=True, timeout=BUILD_TIMEOUT, **kwargs)
    assert out.returncode == 0, f"{args}\n{out.stdout}\n{out.stderr}"
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel pip builds from the checkout: with the venv's hatchling when it has one
    (offline), else in pip's isolated build environment (fetches hatchling)."""
    out = tmp_path_factory.mktemp("wheel")
    isolation = ["--no-build-isolation"] if HAVE_HATCHLING else []
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", "-w", str(out)]
    run([*pip, str(ROOT)])
    (built,) = out.glob("taskexec-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel installed into a bare folder; its asset copies carry MARKER."""
    target = tmp_path_factory.mktemp("site")
    run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), wheel])
    assets = target / PACKAGED
    with open(assets / STYLESHEET, "a") as f:
        f.write(f"\n/* {MARKER} */\n")
    template = (assets / TEMPLATE).read_text()
    assert template.count("{% block content %}") == 1
    marked = template.replace("{% block content %}", f"{{% block content %}}<!-- {MARKER} -->")
    (assets / TEMPLATE).write_text(marked)
    return target


def hatchling_build(hook: str, out: Path, cwd: Path) -> Path:
    """Run one of hatchling's PEP 517/660 hooks on the project in ``cwd``; the artifact."""
    code = f"import sys; from hatchling.build import {hook}; print({hook}(sys.argv[1]))"
    name = run([sys.executable, "-c", code, str(out)], cwd=cwd).stdout.split()[-1]
    return out / name


def names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        return zf.namelist()


def test_wheel_ships_the_assets_inside_the_package(wheel: Path):
    contents = names(wheel)
    with zipfile.ZipFile(wheel) as zf:
        for asset in (TEMPLATE, STYLESHEET):
            assert f"{PACKAGED}/{asset}" in contents
            assert zf.read(f"{PACKAGED}/{asset}") == (ROOT / "datasette" / asset).read_bytes()
        entry_points = zf.read(f"{DIST_INFO}/entry_points.txt").decode()
    # Nothing else at the top level: no datasette/ folder that would shadow the real Datasette.
    assert {name.split("/")[0] for name in contents} == {"taskexec", DIST_INFO}
    # only-include ships the whole package: every module and probe of the checkout.
    source = {
        p.relative_to(ROOT).as_posix()
        for pattern in ("*.py", "*.sql")
        for p in (ROOT / "taskexec").rglob(pattern)
        if "__pycache__" not in p.parts
    }
    assert source <= set(contents), source - set(contents)
    assert "taskexec = taskexec.faces.datasette.plugin" in entry_points
    assert "taskexec_mcp = taskexec.faces.mcp.datasette_hook" in entry_points


@pytest.mark.skipif(
    not HAVE_HATCHLING or importlib.util.find_spec("editables") is None,
    reason="needs hatchling and editables in the venv to build an editable wheel offline",
)
def test_editable_wheel_has_no_copy_of_the_assets(tmp_path: Path):
    """force-include would also copy the assets into the editable wheel, leaving a stale
    ``site-packages/taskexec/`` tree; the ``sources`` rewrite leaves them to the checkout."""
    editable = hatchling_build("build_editable", tmp_path, ROOT)
    assert [n for n in names(editable) if not n.startswith(f"{DIST_INFO}/")] == [
        "_editable_impl_taskexec.pth"
    ]
    with zipfile.ZipFile(editable) as zf:
        assert zf.read("_editable_impl_taskexec.pth").decode().strip() == str(ROOT)


@pytest.mark.skipif(not HAVE_HATCHLING, reason="needs hatchling in the venv to build offline")
def test_wheel_built_from_the_sdist_ships_the_assets(tmp_path: Path):
    """``python -m build`` makes the wheel from the sdist: datasette/ must survive that trip."""
    with tarfile.open(hatchling_build("build_sdist", tmp_path, ROOT)) as tar:
        tar.extractall(tmp_path / "src", filter="data")
    (unpacked,) = (tmp_path / "src").iterdir()
    contents = names(hatchling_build("build_wheel", tmp_path / "out", unpacked))
    assert {f"{PACKAGED}/{TEMPLATE}", f"{PACKAGED}/{STYLESHEET}"} <= set(contents)
    assert {name.split("/")[0] for name in contents} == {"taskexec", DIST_INFO}


def isolated_env(site: Path) -> dict[str, str]:
    """The installed wheel first on sys.path; the checkout stays reachable only through the
    venv's editable .pth, at the end of sys.path, which the wheel's regular package shadows."""
    env = {k: v for k, v in os.environ.items() if k != "DATASETTE_LOAD_PLUGINS"}
    env["PYTHONPATH"] = str(site)
    return env


PROBE = """
import json, sys
import taskexec, taskexec.cli.main
from taskexec.faces.datasette.assets import assets_dir
from datasette.plugins import pm
from datasette.app import Datasette
plugins = {p.__name__: p.__file__ for p in pm.get_plugins() if p.__name__.startswith("taskexec")}
print(json.dumps({
    "taskexec": taskexec.__file__,
    "assets": str(assets_dir()),
    "plugins": plugins,
    "modules": sorted(
        m.__file__ for m in list(sys.modules.values())
        if getattr(m, "__file__", None) and m.__name__.split(".")[0] == "taskexec"
    ),
}))
"""


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read().decode()
            return response.status, response.headers.get("content-type", ""), body
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("content-type", ""), exc.read().decode()


def test_installed_wheel_serves_its_own_assets(installed: Path, tmp_path: Path):
    env = isolated_env(installed)
    site = installed.resolve()

    # Which files the interpreter really uses: the installed ones, for every taskexec module
    # and both entry-point plugins Datasette loads.
    probe = json.loads(run([sys.executable, "-c", PROBE], cwd=tmp_path, env=env).stdout)
    assert Path(probe["taskexec"]).resolve().is_relative_to(site), probe["taskexec"]
    assert Path(probe["assets"]).resolve() == site / PACKAGED
    assert set(probe["plugins"]) == {
        "taskexec.faces.datasette.plugin",
        "taskexec.faces.mcp.datasette_hook",
    }
    for path in [*probe["plugins"].values(), *probe["modules"]]:
        assert Path(path).resolve().is_relative_to(site), path

    db = tmp_path / "small.db"
    python = [sys.executable, "-m", "taskexec"]
    run([*python, "demo", str(db), "--runs", "300"], cwd=tmp_path, env=env)
    with sqlite3.connect(db) as conn:
        (trace_id,) = conn.execute(
            "SELECT trace_id FROM task_executions ORDER BY attempt DESC, id LIMIT 1"
        ).fetchone()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [*python, "serve", str(db), "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + SERVER_TIMEOUT
        while True:
            assert server.poll() is None, f"serve exited:\n{log.read_text()}"
            try:
                if get(f"{base}/-/versions.json")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, (
                f"serve not up in {SERVER_TIMEOUT}s:\n{log.read_text()}"
            )
            time.sleep(0.2)

        status, ctype, css = get(f"{base}/-/taskexec/static/taskexec.css")
        assert status == 200 and ctype.startswith("text/css")
        assert css == (site / PACKAGED / STYLESHEET).read_text() and MARKER in css

        status, _, page = get(f"{base}/-/trace/{trace_id}")
        assert status == 200, page
        assert MARKER in page and "te-trace-page" in page and trace_id in page
        assert "/-/taskexec/static/taskexec.css?v=" in page

        status, _, body = get(f"{base}/-/plugins.json")
        assert status == 200
        hooks = {
            hook
            for plugin in json.loads(body)
            if plugin["name"] == "taskexec"
            for hook in plugin["hooks"]
        }
        assert {"register_routes", "render_cell", "register_mcp_tools"} <= hooks, body
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
