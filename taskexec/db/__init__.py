"""The database layer: the only code that opens SQLite or holds SQL (besides ``probes/``)."""

from __future__ import annotations

from . import rows
from .store import BulkResult, DataRange, ProbeResult, PruneResult, Store

__all__ = ["BulkResult", "DataRange", "ProbeResult", "PruneResult", "Store", "rows"]
