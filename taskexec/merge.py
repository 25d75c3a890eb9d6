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

from .errors import BadInput
from .model import TaskExecution, format_ts, parse_ts
from .store import BulkResult, Store, decode_row

_PAGE = 5_000
_FIELDS = frozenset(TaskExecution.__dataclass_fields__)


def iter_rows(store: Store, *, since: datetime | None = None) -> Iterator[dict[str, Any]]:
    """Every execution row in id order, as dicts with JSON columns decoded, a page at a time."""
    after = 0
    where = "id > :after" + (" AND started_at >= :since" if since is not None else "")
    params: dict[str, Any] = {"since": format_ts(since, "since")} if since is not None else {}
    while True:
        params["after"] = after
        rows = store.query(
            f"SELECT * FROM task_executions WHERE {where} ORDER BY id LIMIT {_PAGE}", params
        )
        if not rows:
            return
        for row in rows:
            yield decode_row(row)
        after = rows[-1]["id"]


def record_from_row(row: Mapping[str, Any]) -> TaskExecution:
    """Rebuild the record a row was written from (key, ids, hash and provenance kept)."""
    values = {k: v for k, v in row.items() if k in _FIELDS and v is not None}
    for name in ("started_at", "ended_at", "scheduled_at"):
        if name in values:
            values[name] = parse_ts(values[name], name)
    return TaskExecution(**values)


@dataclass
class MergeReport:
    """Per source: rows inserted and rows that were already in the target."""

    sources: dict[str, BulkResult] = field(default_factory=dict)

    @property
    def total(self) -> BulkResult:
        out = BulkResult()
        for result in self.sources.values():
            out += result
        return out


def merge(sources: Sequence[str | os.PathLike[str]], into: str | os.PathLike[str]) -> MergeReport:
    """Append every row of each source database to ``into`` (created if missing).

    Sources are opened read-only and must be taskexec databases; merging a database into
    itself is refused. Re-running a merge inserts nothing.
    """
    target = os.path.realpath(into)
    report = MergeReport()
    for source in sources:
        if os.path.realpath(source) == target:
            raise BadInput(os.fspath(source), "is the target database; cannot merge into itself")
    with Store(into) as store:
        for source in sources:
            with Store.open_readonly(source) as src:
                records = map(record_from_row, iter_rows(src))
                report.sources[os.fspath(source)] = store.append_many(records)
    return report
