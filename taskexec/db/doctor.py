"""``taskexec doctor``: is the file healthy, and is anything waiting to reach it?

Each check is one line a person can act on: the file, SQLite's own integrity check, the journal
mode, the schema version, the full-text index, the spool (pending and rejected records, and
why), and attempts still running.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import DatabaseError
from . import schema, spool
from .connection import connect
from .store import Store


@dataclass(frozen=True)
class Check:
    """One finding: its name, whether it is fine (None: just information), what was seen."""

    name: str
    ok: bool | None
    detail: str


@dataclass
class Diagnosis:
    """Every check of one database; ``healthy`` when none failed."""

    path: str
    checks: list[Check] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return all(c.ok is not False for c in self.checks)


def diagnose(path: str | os.PathLike[str], *, full: bool = False) -> Diagnosis:
    """Check one database file and its spool. ``full`` runs SQLite's complete integrity check
    (reads every page) instead of the quick one."""
    path = os.fspath(path)
    out = Diagnosis(path)
    add = out.checks.append
    if not os.path.exists(path):
        add(Check("file", False, "does not exist (records spool until it can be created)"))
    else:
        size = sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
        add(Check("file", True, f"{size / 1e6:.1f} MB"))
        _check_database(path, full, add)
    _check_spool(path, add)
    return out


def _check_database(path: str, full: bool, add: Callable[[Check], None]) -> None:
    try:
        store = Store.open_readonly(path)
    except DatabaseError as exc:
        add(Check("open", False, str(exc)))
        return
    with store:
        conn = store.conn
        try:
            verdict = conn.execute(f"PRAGMA {'integrity_check' if full else 'quick_check'}")
            problems = [r[0] for r in verdict.fetchall()]
        except sqlite3.DatabaseError as exc:
            problems = [str(exc)]
        kind = "integrity" if full else "integrity (quick; --full reads every page)"
        if problems == ["ok"]:
            add(Check(kind, True, "ok"))
        else:
            add(Check(kind, False, "; ".join(problems[:5])))
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        add(Check("journal mode", mode == "wal", mode if mode == "wal" else f"{mode} (want wal)"))
        done = schema.applied(conn)
        known = [m.__name__ for m in schema.MIGRATIONS]
        pending = [m for m in known if m not in done]
        detail = f"{len(done)} migrations, newest {max(done) if done else '-'}"
        if pending:
            detail += f"; {len(pending)} pending (applied at the next write): {', '.join(pending)}"
        add(Check("schema", True, detail))
        running = conn.execute(
            "SELECT count(*), min(started_at) FROM task_executions WHERE status = 'running'"
        ).fetchone()
        if running[0]:
            add(Check("running", None, f"{running[0]} attempts running, oldest since {running[1]}"))
        if "m006_rollups" in done:
            _check_rollups(store, full, add)
    # The full-text index's own check needs a connection that may write (nothing is written).
    with contextlib.closing(connect(path)) as conn:
        try:
            conn.execute(
                # rank 1: also compare the index with its content, row by row
                "INSERT INTO task_executions_fts (task_executions_fts, rank) "
                "VALUES ('integrity-check', 1)"
            )
            add(Check("full-text index", True, "ok"))
        except sqlite3.DatabaseError as exc:
            add(Check("full-text index", False, str(exc)))


def _check_rollups(store: Store, full: bool, add: Callable[[Check], None]) -> None:
    fix = "run `taskexec rollup --rebuild DB`"
    if full:
        diffs = store.rollup_verify()
        detail = (
            f"{len(diffs)} rollup rows differ from the raw rows, e.g. {diffs[0]}; {fix}"
            if diffs
            else "every figure matches the raw rows"
        )
        add(Check("rollups", not diffs, detail))
        return
    totals = store.rollup_totals()
    off = {s: t for s, t in totals.items() if t[0] != t[1]}
    counted = sum(t[1] for t in totals.values())
    detail = f"{counted} attempts, by status, counted alike"
    if off:
        shown = ", ".join(f"{s}: {a} counted, {b} rows" for s, (a, b) in off.items())
        detail = f"{shown}; {fix}"
    add(Check("rollups (quick; --full compares every figure)", not off, detail))


def _check_spool(path: str, add: Callable[[Check], None]) -> None:
    found = spool.status(path)
    if found.files:
        age = time.time() - (found.oldest or time.time())
        add(
            Check(
                "spool",
                False,
                f"{found.operations} records in {found.files} files wait to be written "
                f"(oldest {age:.0f} s); they land at the next write, or run `taskexec replay`",
            )
        )
    else:
        where = ", ".join(found.folders) or str(spool.spool_dir(path))
        add(Check("spool", True, f"nothing pending ({where})"))
    if found.rejected:
        reasons = sorted({r.get("reason", "?") for r in found.rejected})
        add(
            Check(
                "rejected",
                False,
                f"{len(found.rejected)} spooled records could not be applied: "
                + "; ".join(reasons[:3]),
            )
        )
