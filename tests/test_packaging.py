"""A worker that only records must not pay for the faces: importing taskexec (and its CLI)
loads no pandas, Datasette, Jupyter, MCP or OpenTelemetry."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = (
    "pandas",
    "matplotlib",
    "datasette",
    "mcp",
    "nbclient",
    "jupyterlab",
    "opentelemetry",
    "yaml",
)


def imported_after(statement: str) -> set[str]:
    code = f"{statement}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {m.split(".")[0] for m in json.loads(out.stdout)}


def test_core_import_is_light():
    loaded = imported_after("import taskexec; taskexec.Recorder")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_cli_import_is_light():
    loaded = imported_after("import taskexec.cli")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_run_command_import_is_light():
    """``taskexec run -- CMD`` wraps cron jobs: its start-up is on every run's path."""
    loaded = imported_after("import taskexec.cli.run, taskexec.integrations.command")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_version_command():
    out = subprocess.run(
        [sys.executable, "-m", "taskexec.cli", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "taskexec" in out.stdout
