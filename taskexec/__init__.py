"""taskexec: record every run of a scheduled or background task into one indexed SQLite file."""

from __future__ import annotations

from .db import BulkResult, Store
from .errors import BadInput, DatabaseError, InvalidRecord, TaskexecError
from .model import STATUSES, Outcome, TaskExecution, new_span_id, new_trace_id
from .recorder import AttemptOptions, Recorder, Run, Tracking
from .version import __version__

__all__ = [
    "STATUSES",
    "AttemptOptions",
    "Outcome",
    "Tracking",
    "BadInput",
    "BulkResult",
    "DatabaseError",
    "InvalidRecord",
    "Recorder",
    "Run",
    "Store",
    "TaskExecution",
    "TaskexecError",
    "__version__",
    "new_span_id",
    "new_trace_id",
]
