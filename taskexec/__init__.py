"""taskexec: record every run of a scheduled or background task into one indexed SQLite file.

The public names are imported when first used (PEP 562): ``import taskexec`` alone loads
nothing but the version, so a command that does not record (``taskexec --version``,
``taskexec --help``) starts without the database layer. ``from taskexec import Recorder`` and
``taskexec.Store`` work as they always did.
"""

from __future__ import annotations

from .version import __version__

TYPE_CHECKING = False  # not typing's: importing typing alone costs more than the rest here
if TYPE_CHECKING:
    from typing import Any

    from .db import BulkResult, Store
    from .errors import BadInput, DatabaseError, InvalidRecord, TaskexecError
    from .model import STATUSES, Outcome, TaskExecution, new_span_id, new_trace_id
    from .recorder import AttemptOptions, Recorder, Run, Tracking

#: Where each public name lives (the module is imported the first time the name is asked for).
_LAZY = {
    "BulkResult": "db",
    "Store": "db",
    "BadInput": "errors",
    "DatabaseError": "errors",
    "InvalidRecord": "errors",
    "TaskexecError": "errors",
    "STATUSES": "model",
    "Outcome": "model",
    "TaskExecution": "model",
    "new_span_id": "model",
    "new_trace_id": "model",
    "AttemptOptions": "recorder",
    "Recorder": "recorder",
    "Run": "recorder",
    "Tracking": "recorder",
}

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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(__import__(f"{__name__}.{module}", fromlist=[name]), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
