"""taskexec: record every run of a scheduled or background task into one indexed SQLite file."""

from __future__ import annotations

from .errors import BadInput, DatabaseError, InvalidRecord, TaskexecError
from .model import STATUSES, TaskExecution, new_span_id, new_trace_id
from .recorder import Recorder, Run
from .store import BulkResult, Store

__version__ = "0.1.0"
__all__ = [
    "STATUSES",
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
