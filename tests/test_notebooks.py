"""The notebooks: committed clean, executed by a real kernel against the demo and an empty
database (no errors, an image from every chart cell, readable "no data"), ``taskexec report``
and ``taskexec notebooks``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner

from taskexec.cli import cli
from taskexec.db import Store
from taskexec.faces.jupyter import report
from taskexec.faces.jupyter.analysis import NO_DATA

FOLDER = Path(__file__).resolve().parent.parent / "notebooks"
PATHS = [FOLDER / f"{name}.ipynb" for name in report.NOTEBOOKS]


def chart_cells(notebook) -> list:
    return [c for c in notebook.cells if report.CHART_TAG in c.metadata.get("tags", [])]


@pytest.fixture(scope="module")
def executed_demo(demo_db):
    return dict(zip(report.NOTEBOOKS, report.execute(PATHS, demo_db), strict=True))


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_committed_without_outputs_and_with_a_story(path):
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert set(raw["metadata"]) <= {"kernelspec", "language_info"}
    notebook = nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.id
            assert set(cell.metadata) <= {"tags"}, cell.id
    charts = chart_cells(notebook)
    assert len(charts) >= 4
    for cell in charts:  # a markdown explanation right above every chart
        above = notebook.cells[notebook.cells.index(cell) - 1]
        assert above.cell_type == "markdown" and len(above.source) > 200, cell.id


def test_failure_trends_ends_with_the_alert_history():
    notebook = nbformat.read(FOLDER / "failure_trends.ipynb", as_version=4)
    explanation, chart = notebook.cells[-2:]
    assert explanation.cell_type == "markdown" and explanation.source.startswith("## Alerts")
    assert chart in chart_cells(notebook)
    assert "analysis.alert_history(store, since)" in chart.source
    assert "plots.alerts_per_day(" in chart.source


@pytest.mark.parametrize("name", report.NOTEBOOKS)
def test_demo_run_has_an_image_in_every_chart_cell_and_no_errors(executed_demo, name):
    notebook = executed_demo[name]
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            assert output.output_type != "error", (cell.id, output)
            assert output.get("name") != "stderr", (cell.id, output.get("text"))
    for cell in chart_cells(notebook):
        images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
        assert len(images) == 1, cell.id
    setup = next(c for c in notebook.cells if c.id == "setup")
    assert "finished attempts" in setup.outputs[-1]["data"]["text/markdown"]


def test_empty_database_runs_and_says_no_data(tmp_path):
    empty = tmp_path / "empty.db"
    Store(empty).close()
    for notebook in report.execute(PATHS, empty):
        shown = json.dumps([c.get("outputs", []) for c in notebook.cells])
        assert NO_DATA in shown and '"output_type": "error"' not in shown
        for cell in chart_cells(notebook):  # a "no data" figure is still an image
            assert any("image/png" in o.get("data", {}) for o in cell.outputs), cell.id


def test_report_command_writes_html_and_pngs(demo_db, tmp_path):
    out = tmp_path / "report"
    (out).mkdir()
    (out / "duration_trends-99.png").write_bytes(b"stale")
    result = CliRunner().invoke(cli, ["report", str(demo_db), "--out", str(out)])
    assert result.exit_code == 0, result.output
    charts = {
        n: len(chart_cells(nbformat.read(p, as_version=4)))
        for n, p in zip(report.NOTEBOOKS, PATHS, strict=True)
    }
    for name, count in charts.items():
        html = (out / f"{name}.html").read_text(encoding="utf-8")
        assert "data:image/png;base64" in html and "Traceback" not in html
        pngs = sorted(out.glob(f"{name}-*.png"))
        assert [p.name for p in pngs] == [f"{name}-{i:02d}.png" for i in range(1, count + 1)]
        assert all(p.read_bytes().startswith(b"\x89PNG") for p in pngs)
    assert f"wrote {sum(charts.values())} chart(s)" in result.output


def test_report_errors_are_one_line(tmp_path):
    missing = CliRunner().invoke(cli, ["report", str(tmp_path / "nope.db"), "--out", str(tmp_path)])
    assert missing.exit_code == 1 and "no database at" in missing.output
    db = tmp_path / "x.db"
    Store(db).close()
    args = ["report", str(db), "--notebooks", str(tmp_path), "--out", str(tmp_path)]
    nowhere = CliRunner().invoke(cli, args)
    assert nowhere.exit_code == 1 and "missing notebook(s)" in nowhere.output


def test_a_failing_cell_is_a_one_line_error_naming_the_notebook(tmp_path):
    for name in report.NOTEBOOKS:
        cells = [nbformat.v4.new_code_cell("x = 1")]
        if name == "failure_trends":
            cells.append(nbformat.v4.new_code_cell("raise ValueError('boom')"))
        nbformat.write(nbformat.v4.new_notebook(cells=cells), tmp_path / f"{name}.ipynb")
    db = tmp_path / "x.db"
    Store(db).close()
    args = ["report", str(db), "--notebooks", str(tmp_path), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert result.output.strip() == "Error: failure_trends.ipynb: ValueError: boom"


def test_notebooks_command_serves_the_folder_on_localhost(demo_db):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "JUPYTER_TOKEN": "test-token"}
    command = [
        sys.executable,
        "-m",
        "taskexec.cli",
        "notebooks",
        str(demo_db),
        "--no-browser",
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}/api/contents?token=test-token"
    try:
        deadline, listing = time.monotonic() + 60, None
        while listing is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    listing = json.load(response)
            except OSError:
                time.sleep(0.3)
        assert listing is not None, "JupyterLab did not answer"
        names = {item["name"] for item in listing["content"]}
        assert {f"{n}.ipynb" for n in report.NOTEBOOKS} <= names
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert f"TASKEXEC_DB={demo_db}" in err.decode()
    assert "127.0.0.1" in " ".join(report.lab_command(FOLDER, port=1, open_browser=False))
