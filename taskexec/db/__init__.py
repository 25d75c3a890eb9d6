"""The database layer: the only code that opens SQLite or holds SQL (besides ``probes/``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import rows
from .store import DataRange, ProbeResult, PruneResult, Store

if TYPE_CHECKING:
    from .bulkload import BulkResult


def __getattr__(name: str) -> Any:
    """``BulkResult`` comes with ``bulkload`` (forking, tempfile...), imported when asked for."""
    if name == "BulkResult":
        from .bulkload import BulkResult

        return BulkResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BulkResult", "DataRange", "ProbeResult", "PruneResult", "Store", "rows"]
