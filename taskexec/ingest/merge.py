"""Copy executions from other taskexec databases (e.g. one per host) into one, idempotently.

Rows are read back into ``TaskExecution`` records and bulk-appended through ``Store.append_many``
rather than copied with ``INSERT ... SELECT``: the same path as every other import, so a
record that is already there (same idempotency key or span id) is a counted duplicate, the
columns are validated on the way in, and ``error_groups`` / ``first_seen_error`` are maintained
by the store in the same transaction as the rows. ``created_at`` becomes the merge time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..db import BulkResult, Store
from ..errors import BadInput
from ..model import TaskExecution, parse_ts

_FIELDS = frozenset(TaskExecution.__dataclass_fields__)


def iter_stored_records(store: Store, *, since: datetime | None = None) -> Iterator[TaskExecution]:
    """Every execution of ``store`` (started at or after ``since``) as a record, in id order,
    read a page at a time."""
    return map(record_from_row, store.iter_executions(since=since))


def record_from_row(row: Mapping[str, Any]) -> TaskExecution:
    """Rebuild the record a row was written from (key, ids, hash and provenance kept)."""
    values = {k: v for k, v in row.items() if k in _FIELDS and v is not None}
    for name in ("started_at", "ended_at", "scheduled_at"):
        if name in values:
            values[name] = parse_ts(values[name], name)
    return TaskExecution(**values)


@dataclass
class MergeSummary:
    """Per source: rows inserted and rows that were already in the target."""

    sources: dict[str, BulkResult] = field(default_factory=dict)

    @property
    def total(self) -> BulkResult:
        out = BulkResult()
        for result in self.sources.values():
            out += result
        return out


def merge(sources: Sequence[str | os.PathLike[str]], into: str | os.PathLike[str]) -> MergeSummary:
    """Append every row of each source database to ``into`` (created if missing).

    Sources are opened read-only and must be taskexec databases; merging a database into
    itself is refused. Re-running a merge inserts nothing.
    """
    target = os.path.realpath(into)
    summary = MergeSummary()
    for source in sources:
        if os.path.realpath(source) == target:
            raise BadInput(os.fspath(source), "is the target database; cannot merge into itself")
    with Store(into) as store:
        for source in sources:
            with Store.open_readonly(source) as src:
                summary.sources[os.fspath(source)] = store.append_many(iter_stored_records(src))
    return summary
