"""Run the analysis notebooks headlessly into HTML reports and PNG charts; launch JupyterLab.

The notebooks live in ``notebooks/`` at the root of a source checkout; a wheel does not ship
them, so :func:`notebooks_dir` says so clearly and accepts an explicit folder instead.
nbclient, nbconvert and nbformat are imported only when a report runs, so the CLI starts fast.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...config import ENV_VAR, WINDOW_ENV
from ...db import Store
from ...errors import BadInput, TaskexecError

NOTEBOOKS = ("duration_trends", "failure_trends")
#: Cells whose metadata carries this tag draw a chart; every one must produce an image.
CHART_TAG = "chart"
CELL_TIMEOUT = 600
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class NotebookFailed(TaskexecError):
    """A notebook raised while executing; the message names the notebook and the error."""


@dataclass(frozen=True)
class NotebookReport:
    """The notebook report :func:`write_report` wrote (HTML pages, chart PNGs) and how long
    it took."""

    html: list[Path] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)
    seconds: float = 0.0


def source_root() -> Path | None:
    """The source checkout holding ``taskexec/`` and ``notebooks/``, or None when installed."""
    root = Path(__file__).resolve().parents[3]
    return root if (root / "notebooks").is_dir() else None


def notebooks_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The folder with the ``.ipynb`` files: ``explicit`` if given, else the checkout's."""
    if explicit is not None:
        folder = Path(explicit)
    else:
        root = source_root()
        if root is None:
            raise BadInput(
                "notebooks",
                "no notebooks/ folder next to the taskexec package (installed from a wheel?); "
                "run from a source checkout or pass --notebooks DIR",
            )
        folder = root / "notebooks"
    missing = [n for n in NOTEBOOKS if not (folder / f"{n}.ipynb").is_file()]
    if missing:
        raise BadInput(str(folder), f"missing notebook(s): {', '.join(missing)}")
    return folder


def kernel_env(db: str | os.PathLike[str], window: str | None = None) -> dict[str, str]:
    """The environment for a kernel or JupyterLab: ours plus the database (absolute) and window."""
    env = {**os.environ, ENV_VAR: str(Path(db).resolve())}
    if window:
        env[WINDOW_ENV] = window
    return env


def _check_db(db: str | os.PathLike[str]) -> None:
    Store.open_readonly(db).close()  # a missing or foreign file fails here, with a clear message


async def _execute(path: Path, env: dict[str, str]) -> Any:
    import nbformat
    import zmq
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebook = nbformat.read(path, as_version=4)
    # No kernelspec directories: jupyter_client falls back to ipykernel's native "python3"
    # spec, i.e. this very Python, so a stray user-level kernelspec can never pick another
    # interpreter (one without taskexec). CurveZMQ keys from the manager encrypt the kernel's
    # local TCP sockets (and keep ipykernel from warning about plain text) when pyzmq can.
    manager = AsyncKernelManager(
        kernel_name="python3",
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[]),
        transport_encryption="auto" if zmq.has("curve") else "disabled",
    )
    client = NotebookClient(
        notebook,
        km=manager,
        kernel_name="python3",
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(path.parent)}},
    )
    try:
        await client.async_execute(env=env, cleanup_kc=True)  # we own the manager: shut down
    except CellExecutionError as exc:
        text = _ANSI.sub("", str(exc)).strip()  # the kernel colours its traceback
        detail = text.splitlines()[-1] if text else repr(exc)
        raise NotebookFailed(f"{path.name}: {detail}") from None
    return notebook


def execute(
    paths: Sequence[Path], db: str | os.PathLike[str], window: str | None = None
) -> list[Any]:
    """Execute notebooks concurrently (one kernel each) against ``db``; return them with outputs."""
    _check_db(db)
    env = kernel_env(db, window)

    async def run_all() -> list[Any]:
        # Let every notebook finish (and shut its kernel down) before reporting a failure.
        return list(
            await asyncio.gather(*(_execute(p, env) for p in paths), return_exceptions=True)
        )

    results = asyncio.run(run_all())
    failures = [r for r in results if isinstance(r, BaseException)]
    if any(not isinstance(f, NotebookFailed) for f in failures):
        raise next(f for f in failures if not isinstance(f, NotebookFailed))
    if failures:
        raise NotebookFailed("; ".join(str(f) for f in failures))
    return results


def chart_images(notebook: Any) -> list[bytes]:
    """Every PNG a notebook's outputs hold, in cell order."""
    images = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" in data:
                images.append(base64.b64decode(data["image/png"]))
    return images


def write_report(
    db: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    folder: str | os.PathLike[str] | None = None,
    window: str | None = None,
) -> NotebookReport:
    """Execute both notebooks against ``db``; write ``out/<name>.html`` and
    ``out/<name>-NN.png`` (stale PNGs of an earlier run with more charts are removed)."""
    from nbconvert import HTMLExporter

    started = time.perf_counter()
    source = notebooks_dir(folder)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    notebooks = execute([source / f"{n}.ipynb" for n in NOTEBOOKS], db, window)
    exporter = HTMLExporter(template_name="lab", exclude_input=True)
    html: list[Path] = []
    images: list[Path] = []
    for name, notebook in zip(NOTEBOOKS, notebooks, strict=True):
        body, _ = exporter.from_notebook_node(notebook)
        target = out_dir / f"{name}.html"
        target.write_text(body, encoding="utf-8")
        html.append(target)
        stale = re.compile(rf"^{re.escape(name)}-\d+\.png$")
        for old in out_dir.iterdir():
            if stale.match(old.name):
                old.unlink()
        for number, png in enumerate(chart_images(notebook), start=1):
            image = out_dir / f"{name}-{number:02d}.png"
            image.write_bytes(png)
            images.append(image)
    return NotebookReport(html, images, time.perf_counter() - started)


def lab_command(folder: Path, *, port: int, open_browser: bool) -> list[str]:
    """The JupyterLab command line: this Python's jupyterlab, bound to 127.0.0.1, on ``folder``."""
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        f"--ServerApp.root_dir={folder}",
    ]
    if not open_browser:
        command.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and CI run as root
        command.append("--ServerApp.allow_root=True")
    return command


def lab_env(db: str | os.PathLike[str]) -> dict[str, str]:
    """The environment JupyterLab (and so every kernel it starts) runs with."""
    _check_db(db)
    return kernel_env(db)
