"""The SQL functions taskexec adds to every connection it opens (the store, Datasette, notebooks).

- ``te_since(value, default)``: the start of a window in the one grammar of every face
  (``model.WINDOW_FORMS``); a bad value is an error, never a silent "no rows".
- ``te_bin(ms)`` / ``te_bin_ms(bin)``: a duration's bin in the rollups' histogram and the value
  that stands for a bin; the aggregate ``te_quantiles(bin, n)``: p50, p95, p99 of merged bins
  (``histogram.py``).

SQLite cannot carry a Python exception's message out of a function ("user-defined function
raised exception"), so each face checks its window parameters with ``model.window_start``
first and shows that message (``Store.run_probe``, the Datasette plugin's error page, MCP).
``probes.Probe.portable_sql`` writes a probe without these functions, for the sqlite3 shell.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ..histogram import Quantiles, te_bin, te_bin_ms
from ..model import window_start


def te_since(value: object, default: object = "7d") -> str:
    """SQL ``te_since(value, default)``: the window's start (InvalidRecord for a bad one)."""
    return window_start(value, str(default) if default is not None else "7d")


def register(conn: sqlite3.Connection) -> None:
    """Add taskexec's SQL functions to ``conn``."""
    conn.create_function("te_since", 2, te_since)
    conn.create_function("te_since", 1, te_since)
    conn.create_function("te_bin", 1, te_bin, deterministic=True)
    conn.create_function("te_bin_ms", 1, te_bin_ms, deterministic=True)
    aggregate: Any = Quantiles  # typeshed's protocol wants one-argument steps
    conn.create_aggregate("te_quantiles", 2, aggregate)
