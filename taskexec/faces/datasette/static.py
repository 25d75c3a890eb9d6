"""Static files served from memory: one send, gzipped when the browser takes it, and cached for
good when asked for by their version (``?v=`` the first characters of their SHA-256).

Datasette's own static handler sends a file 4 KB at a time, each read a thread hop: Vega's
512 KB took a quarter of a second to arrive on a busy server, while the dashboard's charts
waited for it. Here a file is read once (again when it changes on disk), so a page's scripts
arrive in a few milliseconds, and a browser that has them never asks again.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from collections.abc import Callable, Coroutine
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from datasette.utils.asgi import Request, Response

#: The answer to a request naming the file's current version: never asked again.
FOREVER = "public, max-age=31536000, immutable"
#: Smaller files are not worth compressing.
GZIP_FROM = 1024


class Asset:
    """A file's bytes as served: whole, gzipped (once, when first asked for; None when too
    small to bother), its version and content type."""

    def __init__(self, body: bytes, version: str, content_type: str) -> None:
        self.body = body
        self.version = version
        self.content_type = content_type

    @cached_property
    def gzipped(self) -> bytes | None:
        return gzip.compress(self.body, 6, mtime=0) if len(self.body) >= GZIP_FROM else None


def make_asset(body: bytes, content_type: str, length: int = 8) -> Asset:
    """``body`` as served, versioned by the first ``length`` hex digits of its SHA-256."""
    if content_type.startswith("text/") or content_type in (
        "application/javascript",
        "application/json",
    ):
        content_type += "; charset=utf-8"
    return Asset(body, hashlib.sha256(body).hexdigest()[:length], content_type)


@lru_cache(maxsize=64)
def _read(path: Path, mtime_ns: int, size: int) -> Asset:
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return make_asset(path.read_bytes(), kind)


def asset(path: Path) -> Asset:
    """``path`` as served (read again when it changed); FileNotFoundError if it is missing."""
    stat = path.stat()
    return _read(path, stat.st_mtime_ns, stat.st_size)


def version(path: Path) -> str:
    """The version a URL names ``path`` by (``?v=``)."""
    return asset(path).version


def respond(request: Request, found: Asset, forever: bool = False) -> Response:
    """``found`` as the answer to ``request``: 304 when the browser has it, gzip if it takes
    it, cached for good when the URL names this version (``?v=``, or ``forever``: a URL that
    holds the version) and revalidated otherwise."""
    etag = f'"{found.version}"'
    forever = forever or request.args.get("v") == found.version
    headers = {
        "cache-control": FOREVER if forever else "no-cache",
        "etag": etag,
        "vary": "Accept-Encoding",
    }
    if etag in request.headers.get("if-none-match", ""):
        return Response(b"", status=304, headers=headers, content_type=found.content_type)
    body = found.body
    if found.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
        body = found.gzipped
        headers["content-encoding"] = "gzip"
    headers["content-length"] = str(len(body))
    return Response(body, status=200, headers=headers, content_type=found.content_type)


def not_found() -> Response:
    return Response.text("404: File not found", status=404)


View = Callable[[Request], Coroutine[Any, Any, Response]]


def folder_view(lookup: Callable[[str], Path | None]) -> View:
    """A route answering ``url_vars["path"]`` with the file ``lookup`` names (None: 404).
    Marked as Datasette's static views are, so Datasette leaves its cache headers alone."""

    async def view(request: Request) -> Response:
        path = lookup(request.url_vars["path"])
        if path is None:
            return not_found()
        try:
            found = asset(path)
        except OSError:
            return not_found()
        return respond(request, found)

    view._datasette_static = True  # type: ignore[attr-defined]
    return view


def in_folder(folder: Path, names: frozenset[str] | None = None) -> Callable[[str], Path | None]:
    """A lookup of the files directly in ``folder`` (only ``names``, when given)."""
    root = folder.resolve()

    def lookup(name: str) -> Path | None:
        if names is not None and name not in names:
            return None
        path = (root / name).resolve()
        if path.parent != root or not path.is_file():
            return None
        return path

    return lookup
