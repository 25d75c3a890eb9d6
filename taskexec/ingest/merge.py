"""Copy executions from other taskexec databases (e.g. one per host) into one, idempotently.

Rows are read back into ``TaskExecution`` records and bulk-appended through ``Store.append_many``
rather than copied with ``INSERT ... SELECT``: the same path as every other import, so a
record that is already there (same idempotency key or span id) is a counted duplicate, the
columns are validated on the way in, and ``error_groups`` / ``first_seen_error`` are maintained
by the store in the same transaction as the rows. ``created_at`` becomes the merge time.

A bad source never stops a merge: a file that is not a taskexec database, a row that fails
validation, or a file that breaks while it is read is one line in ``MergeSummary.problems``,
and every other row and source is still merged.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..db import BulkResult, Store
from ..errors import BadInput, InvalidRecord, TaskexecError
from ..model import TaskExecution, parse_ts
from .backfill import MAX_DEPTH, too_deep

_FIELDS = frozenset(TaskExecution.__dataclass_fields__)
#: What reading a source may raise once it is open: a broken page, text that is not UTF-8,
#: a JSON column that is not JSON.
_SOURCE_ERRORS = (TaskexecError, sqlite3.Error, ValueError, OSError, RecursionError)

#: Called with (row id or None for the whole rest of the source, the error) for what is skipped.
OnError = Callable[[Any, Exception], None]


def iter_stored_records(
    store: Store, *, since: datetime | None = None, on_error: OnError | None = None
) -> Iterator[TaskExecution]:
    """Every execution of ``store`` (started at or after ``since``) as a record, in id order,
    read a page at a time.

    Without ``on_error`` the first bad row raises. With it, a row that is not a valid record is
    passed to it (with its ``id``) and skipped, and an error reading the file ends the
    iteration after passing ``None`` and the error."""
    rows = store.iter_executions(since=since)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except _SOURCE_ERRORS as exc:
            if on_error is None:
                raise
            on_error(None, exc)
            return
        try:
            record = record_from_row(row)
        except (InvalidRecord, TypeError, ValueError, OverflowError, RecursionError) as exc:
            if on_error is None:
                raise
            on_error(row.get("id"), exc)
            continue
        yield record


def record_from_row(row: Mapping[str, Any]) -> TaskExecution:
    """Rebuild the record a row was written from (key, ids, hash and provenance kept).
    InvalidRecord naming the column when the row is not a valid record."""
    values = {k: v for k, v in row.items() if k in _FIELDS and v is not None}
    for name in ("started_at", "ended_at", "scheduled_at"):
        if name in values:
            values[name] = parse_ts(values[name], name)
    for name in ("attributes", "parents", "causes"):
        if isinstance(values.get(name), dict | list) and too_deep(values[name], MAX_DEPTH + 1):
            raise InvalidRecord(name, f"nested deeper than {MAX_DEPTH} levels")
    return TaskExecution(**values)


@dataclass
class MergeSummary:
    """Per source: rows inserted and rows that were already in the target; and what was
    skipped (a source that could not be read, a row that is not a valid record), one line each.
    """

    sources: dict[str, BulkResult] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def total(self) -> BulkResult:
        out = BulkResult()
        for result in self.sources.values():
            out += result
        return out

    @property
    def ok(self) -> bool:
        return not self.problems


def merge(sources: Sequence[str | os.PathLike[str]], into: str | os.PathLike[str]) -> MergeSummary:
    """Append every row of each source database to ``into`` (created if missing).

    Sources are opened read-only and must be taskexec databases; merging a database into
    itself is refused. A source that cannot be read, and each row that is not a valid record,
    is listed in ``problems`` and skipped; the rest is merged. Re-running a merge inserts nothing.
    """
    target = os.path.realpath(into)
    summary = MergeSummary()
    for source in sources:
        if os.path.realpath(source) == target:
            raise BadInput(os.fspath(source), "is the target database; cannot merge into itself")
    with Store(into) as store:
        for source in sources:
            name = os.fspath(source)

            def skipped(row_id: Any, exc: Exception, name: str = name) -> None:
                where = f"row id {row_id}" if row_id is not None else "unreadable from here on"
                summary.problems.append(f"{name}: {where}: {error_text(exc)}")

            try:
                src = Store.open_readonly(source)
            except _SOURCE_ERRORS as exc:  # a DatabaseError's message starts with the path
                text = error_text(exc)
                summary.problems.append(text if name in text else f"{name}: {text}")
                continue
            with src:
                records = iter_stored_records(src, on_error=skipped)
                summary.sources[name] = store.append_many(records)
    return summary


def error_text(exc: Exception) -> str:
    """An error as one short line (``TaskexecError`` messages already say what and where;
    anything else is named by its type)."""
    if isinstance(exc, TaskexecError):
        text = str(exc)
    elif isinstance(exc, RecursionError):
        text = "nested too deeply"
    else:
        text = f"{type(exc).__name__}: {exc}"
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:297] + "..."
