"""Hostile input never reaches a user as a Python traceback, and never stops an import.

One corpus of hostile files (symlink loops, JSON nested 900 and 5,000 deep, integers over 2**63,
dates past the year 9999, FIFOs, undecodable bytes, a 6 MB string, 50,000 tiny records, ...) sits
next to good result files. Every ``taskexec`` command is then run as a real process
(``python -m taskexec``) over the inputs that concern it: the corpus, bad database files (not
SQLite, a directory, a foreign SQLite file, a newer schema) and out-of-range options. Each run
must end without "Traceback" in its output, with the exit status expected, and, for importers,
with every good record imported.

The runs happen once, a few at a time, in a module fixture; each case is then its own test.
By default every command meets a garbage database and one other bad kind; the rest of the
commands x bad databases matrix is marked slow. Permission denied is real: as root, the run
drops the capabilities that skip permission checks (``setpriv``); without it, the case is
skipped and ``test_backfill.py`` simulates the refusal. A file vanishing mid-run cannot be
timed from outside a process, so ``test_backfill.py`` covers it in process.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from taskexec.cli.main import all_commands
from taskexec.db import Store
from taskexec.model import TaskExecution

T0 = "2025-11-05T06:00:00Z"
#: Slugs of the records that must be imported from the corpus whatever else it holds.
GOOD = [f"good_{i}" for i in range(6)]
#: Records in the corpus that are valid besides GOOD (BOM, naive times, 6 MB field, ...).
ALSO_GOOD = ["bom", "naive", "big_text", "deep_ok", "jsonl_good", "weird\nname"]
TINY = 50_000  # records in one JSON list

CAN_FIFO = hasattr(os, "mkfifo")


def _good(slug: str, minute: int = 0) -> dict:
    return {"task_id": slug, "started_at": f"2025-11-05T06:{minute:02}:00Z", "success": True}


def _nested(depth: int, leaf: object = 1) -> object:
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


#: One record per way a field can have the wrong type or an impossible value: each is skipped.
WRONG_TYPES = [
    {"task_id": ["a"], "started_at": T0},
    {"task_id": "w", "task_slug": 5, "started_at": T0},
    {"task_id": "w", "started_at": True},
    {"task_id": "w", "started_at": {"at": T0}},
    {"task_id": "w", "started_at": T0, "ended_at": [1]},
    {"task_id": "w", "started_at": T0, "scheduled_at": "tomorrow"},
    {"task_id": "w", "started_at": T0, "status": 1},
    {"task_id": "w", "started_at": T0, "success": "yes"},
    {"task_id": "w", "started_at": T0, "error": 42},
    {"task_id": "w", "started_at": T0, "error": {"message": ["x"]}},
    {"task_id": "w", "started_at": T0, "error_type": 1},
    {"task_id": "w", "started_at": T0, "duration_ms": "slow"},
    {"task_id": "w", "started_at": T0, "duration_ms": -1},
    {"task_id": "w", "started_at": T0, "duration_s": 1e300},
    {"task_id": "w", "started_at": T0, "duration_ms": 10**30},
    {"task_id": "w", "started_at": T0, "memories_retrieved": "many"},
    {"task_id": "w", "started_at": T0, "memories_retrieved": -1},
    {"task_id": "w", "started_at": T0, "files_written": "a.md"},
    {"task_id": "w", "started_at": T0, "files_written": [1, 2]},
    {"task_id": "w", "started_at": T0, "retrieval_sources": {"a": 1}},
    {"task_id": "w", "started_at": T0, "attempt": "2"},
    {"task_id": "w", "started_at": T0, "attempt": 0},
    {"task_id": "w", "started_at": T0, "attempt": 2.5},
    {"task_id": "w", "started_at": T0, "pid": "123"},
    {"task_id": "w", "started_at": T0, "pid": -(2**64)},
    {"task_id": "w", "started_at": T0, "host": 7},
    {"task_id": "w", "started_at": T0, "trace_id": "xyz"},
    {"task_id": "w", "started_at": T0, "span_id": 12},
    {"task_id": "w", "started_at": T0, "parent_span_id": "0" * 16},
    {"task_id": "w", "started_at": T0, "retry_of": []},
    {"task_id": "w", "started_at": T0, "attributes": "not an object"},
    {"task_id": "w", "started_at": T0, "content": 3},
    {"task_id": "w", "started_at": T0, "parents": "p"},
    {"task_id": "w", "started_at": T0, "causes": 5},
    {"task_id": "w", "started_at": 10**30},
    {"task_id": "w", "started_at": "²³"},
    {"task_id": "w", "started_at": "0001-01-01T00:00:00+05:00"},
    {"task_id": "w", "started_at": "1" * 60},
    {"task_id": "w", "started_at": T0, "ended_at": "2020-01-01T00:00:00Z"},
    {"task_id": "w", "started_at": T0, "status": "exploded"},
    {"task_id": "w", "started_at": T0, "status": "ok" * 1000},
    ["not", "an", "object"],
    None,
]


def build_corpus(root: Path, outside: Path) -> dict[str, str]:
    """Write the hostile corpus into ``root`` (and a few targets into ``outside``).

    Returns {file name: words its ``skipped:`` line must contain}."""
    root.mkdir(parents=True)
    outside.mkdir(parents=True)
    expect: dict[str, str] = {}

    def put(name: str, content: object, reason: str | None = None) -> Path:
        path = root / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_text(json.dumps(content), encoding="utf-8")
        if reason is not None:
            expect[name] = reason
        return path

    for i, slug in enumerate(GOOD):
        put(f"{slug}.json", _good(slug, i))

    # -- the five: each stopped a whole import before
    os.symlink("loop.json", root / "loop.json")
    expect["loop.json"] = "symbolic link loop"
    put("deep_list_900.json", "[" * 900 + "]" * 900, "expected an object")
    put(
        "deep_field_900.json",
        {"task_id": "deep", "started_at": T0, "payload": _nested(900)},
        "payload: nested deeper than 32 levels",
    )
    put(
        "deep_5000.json", "[" * 5000 + "]" * 5000, "invalid JSON: nested too deeply"
    )  # RecursionError inside json.loads
    for name in ("attempt", "pid", "memories_retrieved"):
        put(
            f"overflow_{name}.json",
            f'{{"task_id": "o", "started_at": "{T0}", "{name}": 99999999999999999999}}',
            f"{name}: must be",
        )
    put(
        "year_10000.json",
        {"task_id": "y", "started_at": "9999-12-31T23:59:59-05:00"},
        "out of range",
    )

    # -- the rest of the corpus
    put("empty.json", b"", "empty file")
    put("garbage.json", bytes(range(256)) * 8, "not UTF-8")
    put(
        "tiny_50k.json",
        [{"id": f"tiny-{i}", "timestamp": 1_762_322_400 + i} for i in range(TINY)],
    )
    put("big_text.json", {"task_id": "big_text", "started_at": T0, "content": "x" * 6_000_000})
    with open(root / "huge.json", "wb") as handle:  # sparse: 60 MB on paper
        handle.write(b'{"task_id": "huge", "started_at": 1}')
        handle.truncate(60 * 2**20)
    expect["huge.json"] = "over the 52,428,800-byte limit"
    put("wrong_types.json", WRONG_TYPES, "record 1: task_id")
    put(
        "naive.json",
        {
            "task_id": "naive",
            "started_at": "2025-11-05 06:00:00",
            "ended_at": "2025-11-05T06:00:01",
        },
    )
    put(
        "nan.json",
        '[{"task_id": "n1", "started_at": NaN}, {"task_id": "n2", "started_at": "'
        + T0
        + '", "duration_ms": Infinity}, {"task_id": "n3", "started_at": "'
        + T0
        + '", "attributes": {"x": -Infinity}}]',
        "record 1: started_at",
    )
    put("bom.json", b"\xef\xbb\xbf" + json.dumps(_good("bom")).encode())
    put("utf16.json", json.dumps(_good("utf16")).encode("utf-16"), "UTF-16")
    put(
        "surrogate.json",
        '{"task_id": "s", "started_at": "' + T0 + '", "note": "\\ud800"}',
        "note: holds a lone surrogate",
    )
    put("digits.json", '{"task_id": "d", "started_at": ' + "9" * 5000 + "}", "invalid JSON")
    put(
        "deep_ok.json",
        {"task_id": "deep_ok", "started_at": T0, "payload": _nested(31)},
    )
    put(
        "deep_33.json",
        {"task_id": "deep_33", "started_at": T0, "payload": _nested(33)},
        "payload: nested deeper than 32 levels",
    )
    put(
        "lines.jsonl",
        json.dumps(_good("jsonl_good"))
        + "\n"
        + "[" * 5000
        + "]" * 5000
        + "\n"
        + '{"task_id": "l", "started_at": "9999-12-31T23:59:59-05:00"}\n'
        + "\x00\x01 not json\n",
        "line 2: invalid JSON",
    )
    put("newline.json", _good("weird\nname"))  # a value with a newline is imported as it is
    # A file name that is not UTF-8 and holds a newline: reported on one printable line.
    with open(os.path.join(os.fsencode(root), b"bad\xff\nname.json"), "wb") as handle:
        handle.write(b"{")
    (root / "dir.json").mkdir()  # a directory with a result file's name: walked, nothing in it
    if CAN_FIFO:
        os.mkfifo(root / "fifo.json")
        expect["fifo.json"] = "not a regular file (a FIFO)"
    os.symlink(root / "no-such-target.json", root / "dangling.json")
    expect["dangling.json"] = "dangling symbolic link"
    (outside / "outside.json").write_text(json.dumps(_good("outside")))
    os.symlink(outside / "outside.json", root / "escape.json")
    expect["escape.json"] = "outside the directory: not followed"
    (outside / "elsewhere").mkdir()
    (outside / "elsewhere" / "far.json").write_text(json.dumps(_good("far")))
    os.symlink(outside / "elsewhere", root / "linked_dir")
    expect["linked_dir"] = "outside the directory: not followed"
    os.symlink(root, root / "self_dir")  # a directory loop: not walked, or walked once
    os.symlink(root / "good_0.json", root / "alias.json")  # inside: read (a duplicate)
    return expect


def _newer_db(path: Path) -> Path:
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO _taskexec_migrations (name, applied_at) VALUES ('m999_from_the_future', '')"
    )
    conn.commit()
    conn.close()
    return path


def bad_databases(folder: Path) -> dict[str, Path]:
    """Database paths no command may choke on."""
    folder.mkdir()
    garbage = folder / "garbage.db"
    garbage.write_bytes(os.urandom(8192))
    directory = folder / "directory.db"
    directory.mkdir()
    foreign = folder / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE people (name TEXT)")
    conn.commit()
    conn.close()
    empty = folder / "empty.db"
    empty.write_bytes(b"")
    return {
        "garbage": garbage,
        "directory": directory,
        "foreign": foreign,
        "newer": _newer_db(folder / "newer.db"),
        "missing": folder / "missing.db",
        "in-a-file": garbage / "x.db",
    }


# -- OTLP ------------------------------------------------------------------------------------


def _span(slug: str, n: int, **attrs: dict) -> dict:
    start = 1_762_322_400_000_000_000 + n * 1_000_000_000
    return {
        "traceId": f"{n + 1:032x}",
        "spanId": f"{n + 1:016x}",
        "name": slug,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + 5_000_000),
        "attributes": [{"key": "taskexec.task_slug", "value": {"stringValue": slug}}]
        + [{"key": k, "value": v} for k, v in attrs.items()],
    }


def _doc(*spans: dict) -> dict:
    return {"resourceSpans": [{"scopeSpans": [{"spans": list(spans)}]}]}


def build_otlp(folder: Path) -> dict[str, Path]:
    folder.mkdir()
    files: dict[str, Path] = {}

    def put(name: str, content: str | bytes) -> None:
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        files[name] = path

    good = [_span(f"otlp_good_{i}", i) for i in range(3)]
    hostile = [
        _span("big_pid", 10, **{"process.pid": {"intValue": str(2**70)}}),
        _span("big_attempt", 11, **{"taskexec.attempt": {"intValue": "9" * 30}}),
        _span("deep_attr", 12, deep=json.loads(_deep_anyvalue(60))),
        _span("surrogate", 13, note={"stringValue": "\ud800"}),
        {**_span("late", 14), "startTimeUnixNano": "9" * 30},
        {**_span("nan", 15), "endTimeUnixNano": "NaN"},
        _span(
            "sched", 16, **{"taskexec.scheduled_at": {"stringValue": "9999-12-31T23:59:59-05:00"}}
        ),
        _span("parents", 17, **{"taskexec.parents": {"stringValue": "[" * 900 + "]" * 900}}),
        "not a span",
    ]
    put("good.json", json.dumps(_doc(*good)))
    put("mixed.json", "\n".join(json.dumps(_doc(s)) for s in hostile if isinstance(s, dict)))
    put("deep_900.json", '{"resourceSpans": ' + "[" * 900 + "]" * 900 + "}")
    put("deep_5000.json", "[" * 5000 + "]" * 5000)
    put("deep_lines.json", json.dumps(_doc(good[0])) + "\n" + "[" * 5000 + "]" * 5000 + "\n")
    put("garbage.json", bytes(range(256)) * 4)
    put("empty.json", "")
    put("utf16.json", json.dumps(_doc(good[1])).encode("utf-16"))
    put("digits.json", '{"resourceSpans": [' + "9" * 5000 + "]}")
    put("scalar.json", "42")
    if CAN_FIFO:
        os.mkfifo(folder / "fifo.json")
        files["fifo.json"] = folder / "fifo.json"
    return files


def _deep_anyvalue(depth: int) -> str:
    return '{"arrayValue": {"values": [' * depth + "{}" + "]}}" * depth


# -- running the CLI -------------------------------------------------------------------------


@dataclass
class Case:
    """One ``taskexec`` run and what must hold afterwards."""

    name: str
    args: list[str]
    exit: Callable[[int], bool] = lambda code: code != 0
    check: Callable[[subprocess.CompletedProcess[str]], None] | None = None
    timeout: float = 60
    prefix: list[str] = field(default_factory=list)  # e.g. setpriv, to drop root's powers


def _sh(path: Path | str) -> str:
    return os.fspath(path)


def _rows(db: Path, sql: str = "SELECT task_slug FROM task_executions") -> list:
    conn = sqlite3.connect(db)
    try:
        return [r[0] for r in conn.execute(sql)]
    finally:
        conn.close()


def _no_root_powers() -> list[str] | None:
    """A command prefix that makes a root process obey file permissions, or None.

    As root, ``chmod 0`` stops nothing. ``setpriv`` can drop the two capabilities that skip
    permission checks. The process stays uid 0, so it can still run this venv's python, which
    may sit in root's private home where an unprivileged user could not run it."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    prefix = [
        setpriv,
        "--inh-caps=-dac_override,-dac_read_search",
        "--bounding-set=-dac_override,-dac_read_search",
    ]
    probe = subprocess.run([*prefix, sys.executable, "-c", "pass"], capture_output=True)
    return prefix if probe.returncode == 0 else None


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("hostile")
    corpus, outside = base / "results", base / "outside"
    expect = build_corpus(corpus, outside)
    dbs = bad_databases(base / "bad")
    otlp_files = build_otlp(base / "otlp")
    good_db = base / "good.db"
    with Store(good_db):
        pass
    (base / "db").mkdir()
    spool = base / "spool"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKEXEC_")}
    env["TASKEXEC_SPOOL_DIR"] = str(spool)
    env["PYTHONIOENCODING"] = "utf-8"
    return {
        "base": base,
        "corpus": corpus,
        "expect": expect,
        "dbs": dbs,
        "otlp": otlp_files,
        "good_db": good_db,
        "env": env,
    }


def run_taskexec(case: Case, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*case.prefix, sys.executable, "-m", "taskexec", *case.args],
        capture_output=True,
        text=True,
        errors="replace",
        env=env,
        cwd=cwd,
        timeout=case.timeout,
        stdin=subprocess.DEVNULL,
    )


# -- the cases -------------------------------------------------------------------------------


def _db(w: dict, name: str) -> str:
    return _sh(w["base"] / "db" / name)


def _stderr_names(result: subprocess.CompletedProcess[str], expect: dict[str, str]) -> None:
    lines = result.stderr.splitlines()
    assert lines and all(line.startswith("skipped: ") for line in lines), result.stderr[:3000]
    for name, reason in expect.items():
        hits = [line for line in lines if f"/{name}:" in line]
        assert hits, f"{name} not reported:\n{result.stderr[:5000]}"
        assert any(reason in line for line in hits), (name, reason, hits)


def _check_corpus(w: dict, db: str, *extra: str) -> Callable:
    def check(result: subprocess.CompletedProcess[str]) -> None:
        _stderr_names(result, w["expect"])
        slugs = _rows(Path(db))
        for slug in GOOD + ALSO_GOOD + list(extra):
            assert slug in slugs, f"{slug} not imported"
        assert sum(s.startswith("tiny-") for s in slugs) == TINY
        assert len(slugs) == len(GOOD) + len(ALSO_GOOD) + len(extra) + TINY, sorted(
            s for s in slugs if not s.startswith("tiny-")
        )
        assert "bad\\udcff\\x0aname.json" in result.stderr  # printable, on one line
        wrong = [line for line in result.stderr.splitlines() if "/wrong_types.json: " in line]
        assert [line.split(": ")[2] for line in wrong] == [
            f"record {i}" for i in range(1, len(WRONG_TYPES) + 1)
        ]
        assert result.stderr.count("/nan.json: record ") == 3

    return check


def _summary(stdout: str) -> dict[str, int]:
    """The importer's summary lines ("label:   1,234  note") as {label: number}."""
    out = {}
    for line in stdout.splitlines():
        if m := re.match(r"^([a-z][a-z \-]+):\s+([\d,]+)", line):
            out[m.group(1)] = int(m.group(2).replace(",", ""))
    return out


def _fails_with(*words: str) -> Callable:
    def check(result: subprocess.CompletedProcess[str]) -> None:
        text = result.stdout + result.stderr
        for word in words:
            assert word in text, f"{word!r} not in:\n{text[-2000:]}"

    return check


def _one_line_error(result: subprocess.CompletedProcess[str]) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and len(lines) <= 3, result.stderr[-2000:]  # usage errors add a hint line


CaseFactory = Callable[[dict], Case]
CASES: dict[str, CaseFactory] = {}
#: Cases left to ``-m slow`` runs (the rest of the commands x bad databases matrix).
SLOW: set[str] = set()
#: Cases that must run in this order (they share a database); lanes run side by side.
LANES: list[list[str]] = []


def case(
    name: str, lane: str | None = None, slow: bool = False
) -> Callable[[CaseFactory], CaseFactory]:
    def register(factory: CaseFactory) -> CaseFactory:
        CASES[name] = factory
        if slow:
            SLOW.add(name)
        for group in LANES:
            if lane is not None and group[0] == lane:
                group.append(name)
                break
        else:
            LANES.append([name])
        return factory

    return register


@case("backfill corpus")
def _(w: dict) -> Case:
    db = _db(w, "corpus.db")
    return Case("", ["backfill", _sh(w["corpus"]), "--db", db], check=_check_corpus(w, db))


@case("backfill corpus again", lane="backfill corpus")
def _(w: dict) -> Case:
    db = _db(w, "corpus.db")

    def check(result: subprocess.CompletedProcess[str]) -> None:
        assert _summary(result.stdout)["inserted"] == 0, result.stdout
        _check_corpus(w, db)(result)

    return Case("", ["backfill", _sh(w["corpus"]), "--db", db], check=check)


@case("backfill --dry-run")
def _(w: dict) -> Case:
    db = _db(w, "dry.db")

    def check(result: subprocess.CompletedProcess[str]) -> None:
        _stderr_names(result, w["expect"])
        assert not Path(db).exists()
        assert _summary(result.stdout)["would insert"] == len(GOOD) + len(ALSO_GOOD) + TINY

    return Case("", ["backfill", _sh(w["corpus"]), "--db", db, "--dry-run"], check=check)


@case("backfill --follow-symlinks")
def _(w: dict) -> Case:
    db = _db(w, "follow.db")
    shown = ("loop.json", "dangling.json", "fifo.json" if CAN_FIFO else "loop.json")
    expect = {k: v for k, v in w["expect"].items() if k in shown}

    def check(result: subprocess.CompletedProcess[str]) -> None:
        _stderr_names(result, expect)
        assert "escape.json" not in result.stderr and "linked_dir" not in result.stderr
        assert sorted(_rows(Path(db))) == sorted({"outside", "far", *GOOD})

    # Only the files that matter here (the 50,000 records are read by the other runs).
    globs = ["--glob", "good_*.json", "--glob", "escape.json", "--glob", "far.json"]
    globs += ["--glob", "loop.json", "--glob", "dangling.json", "--glob", "fifo.json"]
    args = ["backfill", _sh(w["corpus"]), "--db", db, "--follow-symlinks", *globs]
    return Case("", args, check=check)


@case("backfill unreadable files (permission denied)")
def _(w: dict) -> Case:
    prefix = _no_root_powers()
    if prefix is None:
        pytest.skip(
            "root, and no setpriv to drop the permission-skipping capabilities: "
            "test_backfill.py::test_permission_denied_is_reported simulates the refusal"
        )
    folder = w["base"] / "locked"
    if not folder.exists():
        folder.mkdir()
        for i, slug in enumerate(GOOD):
            (folder / f"{slug}.json").write_text(json.dumps(_good(slug, i)))
        (folder / "secret.json").write_text(json.dumps(_good("secret")))
        (folder / "secret.json").chmod(0)
        (folder / "closed").mkdir()
        (folder / "closed" / "inner.json").write_text(json.dumps(_good("inner")))
        (folder / "closed").chmod(0)
    db = _db(w, "locked.db")

    def check(result: subprocess.CompletedProcess[str]) -> None:
        _stderr_names(result, {"secret.json": "Permission denied", "closed": "Permission denied"})
        assert sorted(_rows(Path(db))) == sorted(GOOD)

    return Case("", ["backfill", _sh(folder), "--db", db], check=check, prefix=prefix)


@case("backfill a FIFO as RESULTS_DIR")
def _(w: dict) -> Case:
    if not CAN_FIFO:
        pytest.skip("no FIFOs here")
    return Case(
        "",
        ["backfill", _sh(w["corpus"] / "fifo.json"), "--db", _db(w, "fifo.db")],
        exit=lambda code: code == 1,
        check=_fails_with("not a regular file (a FIFO)"),
    )


@case("backfill a symlink loop as RESULTS_DIR")
def _(w: dict) -> Case:
    return Case(
        "",
        ["backfill", _sh(w["corpus"] / "loop.json"), "--db", _db(w, "loop.db")],
        exit=lambda code: code == 2,
    )


for _option, _value, _words in [
    ("--since", "99999999999d", "100 years"),
    ("--since", "9" * 400 + "d", "100 years"),
    ("--since", "9999-12-31T23:59:59-05:00", "out of range"),
    ("--since", "yesterday", "ISO-8601"),
    ("--max-mb", "0", "--max-mb"),
    ("--max-mb", "99999999999", "--max-mb"),
    ("--glob", "[", ""),
]:

    @case(f"backfill {_option} {_value[:20]}")
    def _(w: dict, option: str = _option, value: str = _value, words: str = _words) -> Case:
        db = _db(w, f"opt{len(CASES)}.db")
        return Case(
            "",
            ["backfill", _sh(w["corpus"] / "good_0.json"), "--db", db, option, value],
            exit=(lambda code: code != 0) if words else (lambda code: True),
            check=_fails_with(words),
        )


@case("import-otlp")
def _(w: dict) -> Case:
    db = _db(w, "otlp.db")
    files = w["otlp"]

    def check(result: subprocess.CompletedProcess[str]) -> None:
        lines = result.stderr.splitlines()
        assert lines and all(line.startswith("skipped: ") for line in lines), result.stderr
        for name, words in {
            "deep_900.json": "resourceSpans",
            "deep_5000.json": "nested too deeply",
            "deep_lines.json:2": "nested too deeply",
            "garbage.json": "invalid JSON",
            "digits.json": "invalid JSON",
            "scalar.json": "not an OTLP/JSON traces document",
            "fifo.json": "not a regular file (a FIFO)",
        }.items():
            if name == "fifo.json" and not CAN_FIFO:
                continue
            assert any(name in line and words in line for line in lines), (name, result.stderr)
        mixed = [line for line in lines if "mixed.json" in line]
        assert len(mixed) == 8, mixed  # every hostile span, each on its own line
        for words in ("pid", "attempt", "nested deeper", "lone surrogate", "out of range"):
            assert any(words in line for line in mixed), (words, mixed)
        slugs = _rows(Path(db))
        assert {"otlp_good_0", "otlp_good_1", "otlp_good_2"} <= set(slugs)

    return Case("", ["import-otlp", *map(_sh, files.values()), "--db", db], check=check)


@case("export-otlp of rows that are not valid records")
def _(w: dict) -> Case:
    db = w["base"] / "db" / "broken_rows.db"
    _broken_rows_db(db)

    def check(result: subprocess.CompletedProcess[str]) -> None:
        assert "row id" in result.stderr and "started_at" in result.stderr
        assert len([line for line in result.stdout.splitlines() if line.strip()]) == 1

    return Case("", ["export-otlp", "--db", _sh(db)], check=check)


@case("merge good, broken and bad sources")
def _(w: dict) -> Case:
    good = w["base"] / "db" / "merge_source.db"
    with Store(good) as store:
        store.append_many(
            TaskExecution(task_slug=f"m{i}", started_at=datetime(2025, 1, 1, i, tzinfo=UTC))
            for i in range(5)
        )
    broken = w["base"] / "db" / "merge_broken.db"
    _broken_rows_db(broken)
    bad = w["dbs"]
    target = _db(w, "merged.db")

    def check(result: subprocess.CompletedProcess[str]) -> None:
        assert set(_rows(Path(target))) >= {f"m{i}" for i in range(5)} | {"ok_row"}
        text = result.stderr
        assert "not a usable SQLite database" in text and "not a taskexec" in text
        assert "newer taskexec" in text and "row id" in text

    sources = [good, broken, bad["garbage"], bad["foreign"], bad["newer"]]
    return Case("", ["merge", *map(_sh, sources), "--into", target], check=check)


def _broken_rows_db(path: Path) -> None:
    if path.exists():
        return
    with Store(path) as store:
        store.append_many(
            [
                TaskExecution(task_slug="ok_row", started_at=datetime(2025, 1, 1, tzinfo=UTC)),
                TaskExecution(task_slug="bad_time", started_at=datetime(2025, 1, 2, tzinfo=UTC)),
            ]
        )
    conn = sqlite3.connect(path)
    conn.execute("UPDATE task_executions SET started_at = 'soon' WHERE task_slug = 'bad_time'")
    conn.commit()
    conn.close()


# Every command that opens a database, over every bad database.
_DB_COMMANDS = {
    "init": lambda db: ["init", db],
    "demo": lambda db: ["demo", db, "--runs", "5", "--days", "1"],
    "sweep": lambda db: ["sweep", db],
    "prune": lambda db: ["prune", db, "--older-than", "30d"],
    "probe": lambda db: ["probe", "headline", "--db", db],
    "serve": lambda db: ["serve", db, "--port", "1"],
    "mcp": lambda db: ["mcp", db],
    "report": lambda db: ["report", db, "--out", db + ".reports"],
    "notebooks": lambda db: ["notebooks", db, "--no-browser"],
    "backfill": lambda db: ["backfill", "{corpus}/good_0.json", "--db", db],
    "import-otlp": lambda db: ["import-otlp", "{otlp}/good.json", "--db", db],
    "export-otlp": lambda db: ["export-otlp", "--db", db],
    "merge": lambda db: ["merge", "{good_db}", "--into", db],
    "doctor": lambda db: ["doctor", db],
    "replay": lambda db: ["replay", db],
    "rollup": lambda db: ["rollup", db],
    "check": lambda db: ["check", db],
    "watch": lambda db: ["watch", db, "--times", "1", "--every", "1s"],
    "schedule": lambda db: ["schedule", "list", "--db", db],
    "run": lambda db: ["run", "--db", db, "--", sys.executable, "-c", "pass"],
}
_BAD_DBS = ("garbage", "directory", "foreign", "newer", "missing", "in-a-file")
#: (command, bad database) pairs that legitimately succeed: a missing file is created.
_CREATES = {"init", "demo", "backfill", "import-otlp", "merge", "replay"}
#: Commands whose exit status does not depend on the database: `watch` prints a round's error
#: and goes on; `run` exits with its command's status and spools what it cannot write.
_ANY_EXIT = {"watch", "run"}

for _index, (_command, _build) in enumerate(_DB_COMMANDS.items()):
    for _kind in _BAD_DBS:
        # By default each command meets a garbage file and one other kind in turn; the whole
        # matrix runs with ``-m slow``.
        _fast = _kind == "garbage" or _kind == _BAD_DBS[1 + _index % (len(_BAD_DBS) - 1)]

        @case(f"{_command} on a {_kind} database", slow=not _fast)
        def _(
            w: dict, command: str = _command, build: Callable = _build, kind: str = _kind
        ) -> Case:
            db = w["dbs"][kind]
            if kind == "missing":  # each command gets its own missing file
                db = db.with_name(f"missing-{command}.db")
            args = [
                a.format(corpus=w["corpus"], otlp=w["base"] / "otlp", good_db=w["good_db"])
                for a in build(_sh(db))
            ]
            ok = kind == "missing" and command in _CREATES
            if command in _ANY_EXIT or (kind == "missing" and command in ("check", "schedule")):
                return Case("", args, exit=lambda code: True)
            return Case("", args, exit=(lambda code: code == 0) if ok else (lambda code: code != 0))


_OPTION_CASES = {  # name: (arguments, split on spaces; words the error must hold)
    "demo --runs 0": ("demo {db} --runs 0", "--runs"),
    "demo --days 99999": ("demo {db} --days 99999", "--days"),
    "demo --seed -1": ("demo {db} --seed -1", "--seed"),
    "demo --seed 2**70": (f"demo {{db}} --seed {2**70}", "--seed"),
    "demo --end year 1": ("demo {db} --end 0001-01-01T00:00:00Z", "--end"),
    "demo --end year 10000": ("demo {db} --end 9999-12-31T23:59:59-05:00", "range"),
    "demo --end naive": ("demo {db} --end 2025-01-01T00:00:00", "no zone"),
    "sweep --older-than 99999999999d": ("sweep {good_db} --older-than 99999999999d", "100 years"),
    "sweep --older-than 400 digits": ("sweep {good_db} --older-than {nines}d", "100 years"),
    "prune --older-than 99999999999d": ("prune {good_db} --older-than 99999999999d", "100 years"),
    "prune --older-than -1d": ("prune {good_db} --older-than -1d", "window"),
    "prune --older-than 1e9999d": ("prune {good_db} --older-than 1e9999d", "window"),
    "probe unknown": ("probe no_such_probe --db {good_db}", "no_such_probe"),
    "probe --param junk": ("probe headline --db {good_db} --param junk", "KEY=VALUE"),
    "probe --param unknown": ("probe headline --db {good_db} --param x=1", "unknown"),
    "serve --port 0": ("serve {good_db} --port 0", "--port"),
    "serve --port 70000": ("serve {good_db} --port 70000", "--port"),
    "mcp --port 70000": ("mcp {good_db} --http --port 70000", "--port"),
    "mcp --port without --http": ("mcp {good_db} --port 9", "--http"),
    "report --window 99999999999d": ("report {good_db} --window 99999999999d", "100 years"),
    "report --window soon": ("report {good_db} --window soon", "window"),
    "notebooks --port 0": ("notebooks {good_db} --port 0", "--port"),
    "notebooks --notebooks missing": ("notebooks {good_db} --notebooks {db}", "exist"),
    "export-otlp --since 99999999999d": (
        "export-otlp --db {good_db} --since 99999999999d",
        "100 years",
    ),
    "replay --into a directory": ("replay {good_db} --into {base}", "directory"),
    "import-otlp a directory": ("import-otlp {base} --db {db}", "directory"),
    "merge a directory": ("merge {base} --into {db}", "directory"),
    "run --timeout 99999999999d": ("run --timeout 99999999999d --db {db} -- true", "--timeout"),
    "watch --every 99999999999d": ("watch {good_db} --every 99999999999d --times 1", "100 years"),
    "watch --times 0": ("watch {good_db} --times 0", "--times"),
    "schedule add --every 99999999999d": (
        "schedule add t --db {db} --every 99999999999d",
        "100 years",
    ),
    "schedule add --grace soon": ("schedule add t --db {db} --every 1h --grace soon", "window"),
    "run --scheduled-at year 10000": (
        "run --scheduled-at 9999-12-31T23:59:59-05:00 --db {db} -- true",
        "range",
    ),
}

for _name, (_args, _words) in _OPTION_CASES.items():

    @case(_name)
    def _(w: dict, args: str = _args, words: str = _words, name: str = _name) -> Case:
        db = w["base"] / "db" / f"opt-{list(_OPTION_CASES).index(name)}.db"
        values = {"db": db, "good_db": w["good_db"], "base": w["base"], "nines": "9" * 400}
        return Case(
            "",
            [a.format(**values) for a in args.split(" ")],
            check=lambda result: (_fails_with(words)(result), _one_line_error(result)),
        )


@case("probes and metadata (no input to get wrong)")
def _(w: dict) -> Case:
    return Case("", ["probes", "--sql"], exit=lambda code: code == 0)


@case("metadata with an odd database name")
def _(w: dict) -> Case:
    return Case("", ["metadata", "--database", "we\x01ird\nname"], exit=lambda code: code == 0)


def _run_all(world: dict, names: set[str]) -> dict:
    """Run the named cases once, lanes side by side; name -> (case, result, skip reason)."""
    out: dict[str, tuple[Case, subprocess.CompletedProcess[str] | None, str]] = {}

    def run_lane(lane: list[str]) -> None:
        for name in lane:
            if name not in names:
                continue
            try:
                built = CASES[name](world)
            except pytest.skip.Exception as exc:
                out[name] = (Case(name, []), None, str(exc))
                continue
            built.name = name
            out[name] = (built, run_taskexec(built, world["env"], world["base"]), "")

    with ThreadPoolExecutor(max_workers=3) as pool:
        for future in [pool.submit(run_lane, lane) for lane in sorted(LANES, key=len)[::-1]]:
            future.result()
    return out


@pytest.fixture(scope="module")
def results(world: dict) -> dict:
    return _run_all(world, set(CASES) - SLOW)


@pytest.fixture(scope="module")
def slow_results(world: dict) -> dict:
    return _run_all(world, SLOW)


def _check(found: tuple) -> None:
    built, result, skipped = found
    if result is None:
        pytest.skip(skipped)
    output = result.stdout + result.stderr
    assert "Traceback (most recent call last)" not in output, f"{built.args}:\n{output[-4000:]}"
    assert built.exit(result.returncode), (
        f"{built.args}: exit {result.returncode}\n{output[-3000:]}"
    )
    if built.check is not None:
        built.check(result)


@pytest.mark.parametrize("name", [n for n in CASES if n not in SLOW])
def test_no_traceback(results: dict, name: str) -> None:
    _check(results[name])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SLOW))
def test_no_traceback_slow(slow_results: dict, name: str) -> None:
    _check(slow_results[name])


def test_every_command_is_exercised() -> None:
    fast = {name.split()[0] for name in CASES if name not in SLOW}
    assert set(all_commands()) <= fast, set(all_commands()) - fast
