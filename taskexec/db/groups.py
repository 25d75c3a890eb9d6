"""Error groups: one row per stack hash, kept current in the same transaction as the rows.

``first_seen_error`` on an execution row marks the first occurrence of its group (novelty).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

#: The error fields of rows with an id above ``?``: what ``touch`` folds into the groups.
ERROR_ROWS = (
    "SELECT stack_hash, started_at, span_id, error_type, error_message "
    "FROM task_executions WHERE id > ? AND stack_hash IS NOT NULL"
)
#: The same for one span.
ERROR_ROW_OF_SPAN = (
    "SELECT stack_hash, started_at, span_id, error_type, error_message "
    "FROM task_executions WHERE span_id = ?"
)


def touch(conn: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> None:
    """Fold newly written error rows into error_groups and keep first_seen_error exact."""
    agg: dict[str, list[Any]] = {}
    for stack_hash, started, span, etype, message in rows:
        group = agg.get(stack_hash)
        if group is None:
            agg[stack_hash] = [1, started, span, started, span, etype, message]
            continue
        group[0] += 1
        if started < group[1]:
            group[1], group[2] = started, span
        if started >= group[3]:
            group[3], group[4], group[5], group[6] = started, span, etype, message
    for stack_hash, (n, first, first_span, last, last_span, etype, message) in agg.items():
        current = conn.execute(
            "SELECT first_seen, first_span_id, last_seen FROM error_groups WHERE stack_hash = ?",
            (stack_hash,),
        ).fetchone()
        if current is None:
            conn.execute(
                "INSERT INTO error_groups (stack_hash, error_type, sample_message, sample_span_id,"
                " first_span_id, first_seen, last_seen, occurrences) VALUES (?,?,?,?,?,?,?,?)",
                (stack_hash, etype, message, last_span, first_span, first, last, n),
            )
            conn.execute(
                "UPDATE task_executions SET first_seen_error = 1 WHERE span_id = ?", (first_span,)
            )
            continue
        old_first, old_first_span, old_last = current
        conn.execute(
            "UPDATE error_groups SET occurrences = occurrences + ? WHERE stack_hash = ?",
            (n, stack_hash),
        )
        if last >= old_last:
            conn.execute(
                "UPDATE error_groups SET last_seen = ?, sample_span_id = ?, error_type = ?, "
                "sample_message = ? WHERE stack_hash = ?",
                (last, last_span, etype, message, stack_hash),
            )
        if first < old_first:
            conn.execute(
                "UPDATE error_groups SET first_seen = ?, first_span_id = ? WHERE stack_hash = ?",
                (first, first_span, stack_hash),
            )
            conn.execute(
                "UPDATE task_executions SET first_seen_error = (span_id = ?) "
                "WHERE span_id IN (?, ?)",
                (first_span, first_span, old_first_span),
            )


def rebuild(conn: sqlite3.Connection, *, fresh: bool = False) -> None:
    """Recompute error_groups and first_seen_error from the execution rows (after bulk work).

    ``fresh``: every row was just loaded with first_seen_error 0, so skip clearing the flags
    (a scan of the whole table)."""
    conn.execute("DELETE FROM error_groups")
    conn.execute(
        # Counts and bounds per hash in one pass over the stack_hash index, then the first and
        # last row of each group looked up (ties go to the lower id first, the higher id last).
        # Three times faster than numbering every failure with window functions.
        """INSERT INTO error_groups (stack_hash, error_type, sample_message, sample_span_id,
               first_span_id, first_seen, last_seen, occurrences)
           WITH g AS (
               SELECT stack_hash, min(started_at) AS first_seen, max(started_at) AS last_seen,
                   count(*) AS n
               FROM task_executions WHERE stack_hash IS NOT NULL GROUP BY stack_hash
           )
           SELECT g.stack_hash, last.error_type, last.error_message, last.span_id,
               first.span_id, g.first_seen, g.last_seen, g.n
           FROM g
           JOIN task_executions AS last ON last.id = (
               SELECT id FROM task_executions
               WHERE stack_hash = g.stack_hash AND started_at = g.last_seen
               ORDER BY id DESC LIMIT 1)
           JOIN task_executions AS first ON first.id = (
               SELECT id FROM task_executions
               WHERE stack_hash = g.stack_hash AND started_at = g.first_seen
               ORDER BY id LIMIT 1)"""
    )
    if not fresh:
        conn.execute("UPDATE task_executions SET first_seen_error = 0 WHERE first_seen_error = 1")
    conn.execute(
        "UPDATE task_executions SET first_seen_error = 1 "
        "WHERE span_id IN (SELECT first_span_id FROM error_groups)"
    )
