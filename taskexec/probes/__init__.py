"""Probe SQL: one named ``.sql`` file per question, the single source for Datasette's canned
queries, the notebooks and ``taskexec probe``.

Each file starts with ``--`` header lines::

    -- title: Failure rate per task
    -- description: What it answers, in a sentence.
    -- param since: What the parameter means | 7d

(``| value`` is the default the parameter shows in forms). The SQL treats a NULL or empty
parameter as "use the default". A window (``:since``) is read by ``te_since(:since, '7d')``,
one of the SQL functions taskexec adds to every connection it opens (``db/functions.py``), so
``30m``, ``2w``, ``1.5d``, ISO times and ``all`` mean the same in every face and a typo is an
error rather than "no rows". ``Probe.portable_sql`` (``taskexec probe NAME --sql``) writes
them out for a bare sqlite3 shell.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from ..errors import BadInput, UnknownProbe
from ..histogram import BIN_MS_SQL, BIN_SQL
from ..model import window_start

_HEADER = re.compile(r"^--\s*(title|description|param\s+\w+)\s*:\s*(.*)$")
#: Parameters that are windows (``model.WINDOW_FORMS``), checked before a probe runs.
WINDOW_PARAMS = frozenset({"since"})
_SINCE_CALL = re.compile(r"te_since\(:(\w+),\s*'([^']*)'\)")
_BIN_CALL = re.compile(r"\bte_bin\(([^()]*)\)")
_BIN_MS_CALL = re.compile(r"\bte_bin_ms\(([^()]*)\)")
#: A named parameter (``:since``) in probe SQL.
NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@dataclass(frozen=True)
class Param:
    """A named parameter of a probe, with its help text and form default."""

    name: str
    description: str
    default: str


@dataclass(frozen=True)
class Probe:
    """One question: its name (file stem), title, description, SQL and parameters."""

    name: str
    title: str
    description: str
    sql: str
    params: tuple[Param, ...]

    def bind(self, values: dict[str, Any] | None = None) -> dict[str, Any]:
        """Every parameter bound: given values, else None (which the SQL reads as default)."""
        values = dict(values or {})
        unknown = set(values) - {p.name for p in self.params}
        if unknown:
            known = ", ".join(p.name for p in self.params) or "none"
            raise BadInput(
                f"probe {self.name}", f"unknown parameter(s) {sorted(unknown)}; it takes: {known}"
            )
        return {p.name: values.get(p.name) for p in self.params}

    def portable_sql(self, values: dict[str, Any] | None = None) -> str:
        """The SQL with taskexec's SQL functions written out, for a bare sqlite3 shell: each
        ``te_since`` becomes the window's start (given in ``values`` or the default, resolved
        now), ``te_bin_ms`` its arithmetic (``te_bin`` is written out when a probe loads).
        InvalidRecord for a bad window."""
        values = dict(values or {})

        def since(match: re.Match[str]) -> str:
            value = values.get(match.group(1))
            return "'" + window_start(value, match.group(2), name=match.group(1)) + "'"

        sql = _SINCE_CALL.sub(since, self.sql)
        return _BIN_MS_CALL.sub(lambda m: BIN_MS_SQL.format(m.group(1)), sql)


def _parse(name: str, text: str) -> Probe:
    meta: dict[str, str] = {}
    described: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        match = _HEADER.match(line)
        if not match:
            continue
        key, value = match.group(1), match.group(2).strip()
        if key.startswith("param"):
            desc, _, default = value.partition("|")
            described[key.split()[1]] = (desc.strip(), default.strip())
        else:
            meta[key] = value
    # te_bin is written out in SQLite's built-ins: as a Python function it costs ~2 µs a raw
    # row, a fifth of a trend query at 10M rows (the part-hour a window starts in is binned).
    text = _BIN_CALL.sub(lambda m: BIN_SQL.format(m.group(1)), text)
    body = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    names = list(dict.fromkeys(NAMED.findall(body)))
    params = tuple(Param(n, *described.get(n, ("", ""))) for n in names)
    return Probe(name, meta.get("title", name), meta.get("description", ""), text.strip(), params)


@cache
def all_probes() -> tuple[Probe, ...]:
    """Every probe shipped with taskexec, sorted by name."""
    folder = resources.files(__package__)
    probes = [
        _parse(entry.name.removesuffix(".sql"), entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    ]
    return tuple(sorted(probes, key=lambda p: p.name))


def get(name: str) -> Probe:
    """The probe called ``name``; UnknownProbe lists the valid names otherwise."""
    for probe in all_probes():
        if probe.name == name:
            return probe
    names = ", ".join(p.name for p in all_probes())
    raise UnknownProbe(f"no probe named {name!r}; known probes: {names}")
