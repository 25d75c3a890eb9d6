"""Plain-text tables for the terminal (no dependency): column widths that fit the terminal,
right-aligned numbers, rates as percentages."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from typing import Any

#: A column is never narrowed below this many characters to fit the terminal (columns that
#: then still do not fit are left out, and named under the table).
MIN_WIDTH = 10


def terminal_width() -> int | None:
    """Columns of the terminal the table is printed on: ``$COLUMNS`` when set, else the
    terminal's width when stdout is one; None (no limit) for a pipe or a file."""
    if os.environ.get("COLUMNS", "").strip().isdigit() or sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def is_rate(column: str) -> bool:
    """A share from 0 to 1 (``failure_rate``, ``share_...``), shown as a percentage."""
    return column.endswith("_rate") or column.startswith("share_")


def _text(value: Any, column: str) -> str:
    if value is None:
        return ""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and is_rate(column) and 0 <= value <= 1:
        return f"{value:.1%}"
    return str(value).replace("\r", " ").replace("\n", " ")


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def fit(widths: Sequence[int], width: int) -> list[int]:
    """Column widths whose table (two spaces between columns) fits ``width``: the widest
    columns give way first, none below ``MIN_WIDTH`` (or its own width); when even that is too
    wide, the columns that still do not fit are dropped from the right (the result is
    shorter)."""
    out = list(widths)
    floor = [min(w, MIN_WIDTH) for w in widths]

    def total(ws: Sequence[int]) -> int:
        return sum(ws) + 2 * (len(ws) - 1)

    excess = total(out) - width
    while excess > 0:
        widest = max(range(len(out)), key=lambda i: out[i] - floor[i])
        room = out[widest] - floor[widest]
        if room <= 0:
            break
        others = [out[i] for i in range(len(out)) if i != widest]
        second = max(others, default=floor[widest])
        step = max(1, min(excess, room, out[widest] - max(second, floor[widest])))
        out[widest] -= step
        excess -= step
    shown = len(out)
    while shown > 1 and total(out[:shown]) > width:
        shown -= 1
    return out[:shown]


def render(rows: Sequence[dict[str, Any]], max_width: int = 48, width: int | None = None) -> str:
    """Render dict rows as an aligned table with a header and a rule, at most ``width``
    characters wide when given (the columns that do not fit are named below the table)."""
    if not rows:
        return "(no rows)"
    columns = list(rows[0])
    texts = [[_text(row.get(c), c) for c in columns] for row in rows]
    natural = [
        min(max(len(c), *(len(r[i]) for r in texts)), max(max_width, len(c)))
        for i, c in enumerate(columns)
    ]
    widths = fit(natural, width) if width else natural
    shown = len(widths)
    numeric = [
        all(isinstance(row.get(c), int | float) or row.get(c) is None for row in rows)
        for c in columns
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            _cut(v, w).rjust(w) if num else _cut(v, w).ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=False)
        ]
        return "  ".join(parts).rstrip()

    out = [line(columns), "  ".join("-" * w for w in widths)]
    out.extend(line(r) for r in texts)
    if shown < len(columns):
        hidden = columns[shown:]
        out.append(
            f"({len(hidden)} more column{'s' if len(hidden) != 1 else ''} not shown: "
            f"{', '.join(hidden)}; widen the terminal or use --json)"
        )
    return "\n".join(out)
