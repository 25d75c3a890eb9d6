"""The faces: Datasette, MCP, Jupyter. Each looks at the database through ``Store`` reads and
probes, and none imports another; what they must say the same way lives here."""

from __future__ import annotations

from ..model import ALL_TIME


def when(stamp: str) -> str:
    """A stored time for people: ``2026-11-23 09:30 UTC``, or the day alone at midnight."""
    day, _, clock = stamp.partition("T")
    clock = clock[:5]
    return day if clock in ("", "00:00") else f"{day} {clock} UTC"


def empty_note(
    first: str | None, last: str | None, since: str | None = None, what: str = "runs"
) -> str:
    """Why an answer is empty, with where the data is: "no runs since 2026-11-23 09:30 UTC;
    this database spans 2025-01-02 to 2025-03-30". ``since`` is the window's start as stored
    (None when the question has no window); ``first``/``last`` the data's first and last start.
    """
    if not last or not first:
        return "this database holds no runs yet"
    if first[:10] == last[:10]:
        span = (
            f"this database holds runs of {first[:10]} only ({first[11:16]} to {last[11:16]} UTC)"
        )
    else:
        span = f"this database spans {first[:10]} to {last[:10]}"
    if since and since != ALL_TIME and since > last:
        return f"no {what} since {when(since)}; {span}"
    if since and since != ALL_TIME:
        return f"nothing matched since {when(since)}; {span}"
    return f"nothing matched; {span}"
