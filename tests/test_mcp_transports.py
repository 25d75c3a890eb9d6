"""The MCP tools over real transports: stdio and streamable HTTP from ``taskexec mcp``, and
datasette-mcp's ``/-/mcp`` on a real ``datasette serve`` (it needs the ASGI lifespan).

Every server is a subprocess on 127.0.0.1 with a bounded wait, terminated in ``finally``.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import end, free_port
from mcp import Client, StdioServerParameters

pytestmark = pytest.mark.anyio
TOOLS = {"tasks_list", "tasks_by_trace", "tasks_last_failed"}
SINCE = "2026-11-19T12:00:00Z"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def script(name: str) -> str:
    """A console script of this environment (next to the running interpreter)."""
    path = Path(sys.executable).with_name(name)
    if not path.exists():
        pytest.skip(f"{name} is not installed next to {sys.executable}")
    return str(path)


@contextmanager
def serving(args: list[str], port: int, log: Path, timeout: float = 30) -> Iterator[None]:
    """Run a server subprocess until it accepts connections on ``port``; always stop it."""
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                pytest.fail(f"{args} exited {proc.returncode}:\n{log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"{args} did not listen on {port}:\n{log.read_text()}")
                time.sleep(0.1)
        yield
    finally:
        end(proc)


async def exercise(client: Client, **extra: Any) -> dict[str, Any]:
    """List the tools, then follow the debugging path: last failures, then one trace."""
    names = {t.name for t in (await client.list_tools()).tools}
    assert names >= TOOLS
    failed = await client.call_tool("tasks_last_failed", {"since": SINCE, "limit": 5, **extra})
    assert not failed.is_error, failed.content
    report = failed.structured_content
    assert report is not None and report["returned"] == 5 and report["summary"]
    trace_id = report["failures"][0]["trace_id"]
    detail = await client.call_tool("tasks_by_trace", {"trace_id": trace_id, **extra})
    assert not detail.is_error and detail.structured_content is not None
    assert detail.structured_content["trace_id"] == trace_id
    listed = await client.call_tool("tasks_list", {"since": SINCE, "limit": 3, **extra})
    assert listed.structured_content is not None and listed.structured_content["returned"] == 3
    bad = await client.call_tool("tasks_list", {"status": "crashed", **extra})
    assert bad.is_error and "Traceback" not in json.dumps([c.model_dump() for c in bad.content])
    return report


async def test_stdio(demo_db: Path, tmp_path: Path) -> None:
    params = StdioServerParameters(
        command=script("taskexec"), args=["mcp"], env={"TASKEXEC_DB": str(demo_db)}, cwd=tmp_path
    )
    with anyio.fail_after(60):
        async with Client(params, raise_exceptions=True) as client:
            await exercise(client)


async def test_streamable_http(demo_db: Path, tmp_path: Path) -> None:
    port = free_port()
    args = [script("taskexec"), "mcp", str(demo_db), "--http", "--port", str(port)]
    with serving(args, port, tmp_path / "mcp.log"), anyio.fail_after(60):
        async with Client(f"http://127.0.0.1:{port}/mcp", raise_exceptions=True) as client:
            await exercise(client)


def test_missing_database_is_one_line_at_startup(tmp_path: Path) -> None:
    for extra in ([], ["--http", "--port", str(free_port())]):
        missing = tmp_path / "missing.db"
        proc = subprocess.run(
            [script("taskexec"), "mcp", str(missing), *extra],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert proc.returncode == 1
        (line,) = proc.stderr.strip().splitlines()
        assert line.startswith(f"Error: no database at {missing}: check the path")
        assert "taskexec init" not in line  # an empty database would not help
        assert proc.stdout == "" and not missing.exists()


async def test_datasette_mcp_endpoint(demo_db: Path, tmp_path: Path) -> None:
    """Our tools next to datasette-mcp's, only for taskexec databases the caller may view."""
    demo, other, secret = tmp_path / "demo.db", tmp_path / "other.db", tmp_path / "secret.db"
    plain = tmp_path / "plain.db"
    source = sqlite3.connect(f"file:{demo_db}?mode=ro", uri=True)
    for target in (demo, other, secret):
        conn = sqlite3.connect(target)
        source.backup(conn)
        conn.close()
    source.close()
    sqlite3.connect(plain).execute("CREATE TABLE notes (x)").connection.close()
    metadata = tmp_path / "metadata.json"
    metadata.write_text(json.dumps({"databases": {"secret": {"allow": {"id": "root"}}}}))
    port = free_port()
    args = [
        script("datasette"),
        "serve",
        str(demo),
        str(other),
        str(secret),
        str(plain),
        "--port",
        str(port),
        "--metadata",
        str(metadata),
    ]
    with serving(args, port, tmp_path / "datasette.log"), anyio.fail_after(60):
        async with Client(f"http://127.0.0.1:{port}/-/mcp", raise_exceptions=True) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert {"execute_sql", *TOOLS} <= set(tools)
            assert tools["tasks_last_failed"].output_schema is not None
            report = await exercise(client, database="demo")
            assert report["window"]["since"] == "2026-11-19T12:00:00.000000Z"

            async def error(tool: str, **args: Any) -> str:
                result = await client.call_tool(tool, args)
                assert result.is_error
                return " ".join(getattr(c, "text", "") for c in result.content)

            # "secret" is hidden from this anonymous caller: it looks like it does not exist.
            several = await error("tasks_list")
            assert (
                "several taskexec databases are served; pass database= one of demo, other"
                in several
            )
            for name in ("secret", "plain", "nope"):
                message = await error("tasks_list", database=name)
                assert f"no taskexec database '{name}' is available here" in message
                assert message.endswith("use one of: demo, other")


async def test_taskexec_serve_exposes_the_tools(demo_db: Path, tmp_path: Path) -> None:
    port = free_port()
    args = [script("taskexec"), "serve", str(demo_db), "--port", str(port)]
    with serving(args, port, tmp_path / "serve.log"), anyio.fail_after(60):
        async with Client(f"http://127.0.0.1:{port}/-/mcp", raise_exceptions=True) as client:
            await exercise(client)  # one taskexec database: no ``database`` argument needed
