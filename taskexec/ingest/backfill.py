"""Historical task-result JSON files -> ``TaskExecution`` records -> one bulk append.

Schedulers that ran before taskexec left one JSON document per run (or JSON Lines). This module
reads them into records with ``provenance = 'backfill'`` and the idempotency key a live
recording of the same run gets, so re-running a backfill, or backfilling over live data, inserts
nothing twice. The accepted shapes and aliases are documented in ``docs/backfill.md``.

Layers, so each is testable alone:

- ``record_from_mapping``: one JSON object -> one record (pure, raises ``InvalidRecord``).
- ``records_from_bytes``: one file's bytes -> records; problems go to a ``BackfillSummary`` (pure).
- ``read_file`` / ``find_files``: the only file-system access (size cap, UTF-8 is checked later).
- ``backfill``: walks, parses and feeds one generator to ``Store.append_many`` (or, for a dry
  run, compares the keys with the database without writing).

It is built for throughput (>= 10,000 small files/s): ``os.scandir``, ``os.read`` on a raw file
descriptor, ``json.loads`` once per file, ``datetime.fromisoformat`` for ISO strings, integer
arithmetic for epochs, and ids derived from the key instead of fresh randomness.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fnmatch import translate
from typing import Any

from ..errors import BadInput, InvalidRecord
from ..model import EPOCH, STATUSES, TaskExecution, format_ts, idempotency_key

#: Files larger than this are reported, not loaded (a 100 MB "result" is not a result file).
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
#: File names looked at when no ``--glob`` is given.
DEFAULT_PATTERNS = ("*.json", "*.jsonl", "*.ndjson")
#: Extensions read as JSON Lines from the start (other files fall back to it on "extra data").
JSONL_SUFFIXES = (".jsonl", ".ndjson")

# Field aliases, most specific first. A value of None counts as absent.
TASK_ID = ("task_id", "id")
TASK_SLUG = ("task_slug", "task_name", "name")
STARTED = ("started_at", "start_time", "timestamp")
ENDED = ("ended_at", "completed_at", "end_time", "finished_at")
SCHEDULED = ("scheduled_at", "scheduled_time", "scheduled_for")
TRACEBACK = ("traceback", "stack_trace", "stacktrace", "stack")
_ERR_TYPE = ("type", "error_type", "exception", "exc_type")
_ERR_MESSAGE = ("message", "error_message", "msg")
_PLAIN = (  # copied through unchanged (the model validates them)
    "attempt",
    "memories_retrieved",
    "retrieval_sources",
    "files_written",
    "parents",
    "causes",
    "host",
    "pid",
    "trace_id",
    "span_id",
    "parent_span_id",
    "retry_of",
)
#: Recognised but not taken from files: taskexec computes these itself.
_IGNORED = ("provenance", "idempotency_key", "stack_hash")
_ID_FIELDS = ("trace_id", "span_id", "parent_span_id", "retry_of")


_PLAIN_MARK = "<plain>"  # alias-table marker: the key is a TaskExecution field as it is


def _alias_table() -> dict[str, tuple[str, int]]:
    """Every accepted key -> (canonical name, rank); rank 0 wins when a file has several."""
    table: dict[str, tuple[str, int]] = {}
    groups = {
        "task_id": TASK_ID,
        "task_slug": TASK_SLUG,
        "started_at": STARTED,
        "ended_at": ENDED,
        "scheduled_at": SCHEDULED,
        "stack_trace": TRACEBACK,
        "content": ("content", "summary"),
    }
    for canonical, names in groups.items():
        table.update({name: (canonical, rank) for rank, name in enumerate(names)})
    for name in (
        "status",
        "success",
        "error",
        "error_type",
        "error_message",
        "duration_ms",
        "duration_s",
        "attributes",
    ):
        table[name] = (name, 0)
    table.update({name: (_PLAIN_MARK, 0) for name in _PLAIN})
    table.update({name: ("", 0) for name in _IGNORED})
    return table


_ALIASES = _alias_table()

#: What schedulers write in ``status``, folded to taskexec's statuses (compared lower-cased).
STATUS_ALIASES: dict[str, str] = {
    **{s: s for s in STATUSES},
    "succeeded": "success",
    "successful": "success",
    "ok": "success",
    "completed": "success",
    "complete": "success",
    "done": "success",
    "passed": "success",
    "fail": "failed",
    "failure": "failed",
    "error": "failed",
    "errored": "failed",
    "crashed": "failed",
    "timed_out": "timeout",
    "timedout": "timeout",
    "time_out": "timeout",
    "canceled": "cancelled",
    "aborted": "cancelled",
    "killed": "cancelled",
}

# Epoch numbers are read by magnitude: seconds until 1e11 (the year 5138), then ms, µs, ns.
_EPOCH_SCALES = ((1e11, 1_000_000), (1e14, 1_000), (1e17, 1))
_DIGITS_RE = re.compile(r"^-?\d+(?:\.\d+)?$")


@dataclass(frozen=True)
class Problem:
    """Something that was not imported: which file, where in it (if not all of it), and why."""

    path: str
    reason: str
    where: str | None = None

    def __str__(self) -> str:
        return (
            f"{self.path}: {self.where}: {self.reason}"
            if self.where
            else f"{self.path}: {self.reason}"
        )


@dataclass
class BackfillSummary:
    """What a backfill saw and did. ``problems`` lists every skipped file and record.

    ``ok`` is False when anything was skipped: a whole file, or one record of a file whose other
    records were imported. Records older than ``--since`` are filtered on purpose, not skipped.
    """

    files_scanned: int = 0
    files_skipped: int = 0
    records_found: int = 0
    records_skipped: int = 0
    before_since: int = 0
    naive_timestamps: int = 0
    inserted: int = 0
    duplicates: int = 0
    dry_run: bool = False
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def file_problem(self, path: str, reason: str) -> None:
        self.files_skipped += 1
        self.problems.append(Problem(path, reason))

    def record_problem(self, path: str, where: str, reason: str) -> None:
        self.records_skipped += 1
        self.problems.append(Problem(path, reason, where))


class _Zone:
    """Counts timestamps that carried no zone and were read as UTC."""

    __slots__ = ("naive",)

    def __init__(self) -> None:
        self.naive = 0


# -- values ----------------------------------------------------------------------------------


def parse_result_time(value: Any, name: str, zone: _Zone | None = None) -> datetime:
    """An ISO-8601 string or epoch seconds/ms/µs/ns (number or digit string) -> aware UTC.

    A string without a zone is read as UTC and counted in ``zone``.
    """
    if isinstance(value, str):
        if value.isdigit():
            return _from_epoch(int(value), name)
        try:
            parsed = datetime.fromisoformat(value if value[-1:] != "z" else value[:-1] + "Z")
        except ValueError:
            if _DIGITS_RE.match(value):
                return _from_epoch(float(value) if "." in value else int(value), name)
            raise InvalidRecord(name, f"not an ISO-8601 timestamp: {value[:60]!r}") from None
        if parsed.tzinfo is None:
            if zone is not None:
                zone.naive += 1
            return parsed.replace(tzinfo=UTC)
        return parsed if parsed.tzinfo is UTC else parsed.astimezone(UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _from_epoch(value, name)
    raise InvalidRecord(
        name, f"expected an ISO-8601 string or epoch seconds/milliseconds, got {_kind(value)}"
    )


def _from_epoch(value: float, name: str) -> datetime:
    if not math.isfinite(value):
        raise InvalidRecord(name, f"not a finite number: {value!r}")
    size = abs(value)
    per_unit = next((scale for limit, scale in _EPOCH_SCALES if size < limit), 0)
    try:
        if per_unit == 0:  # nanoseconds
            return EPOCH + timedelta(microseconds=int(value) // 1000)
        if isinstance(value, int):
            return EPOCH + timedelta(microseconds=value * per_unit)
        return EPOCH + timedelta(microseconds=round(value * per_unit))
    except OverflowError:
        raise InvalidRecord(name, f"epoch value out of range: {value!r}") from None


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def _pick(obj: Mapping[str, Any], names: Sequence[str]) -> tuple[str, Any]:
    for name in names:
        value = obj.get(name)
        if value is not None:
            return name, value
    return names[0], None


def _text(value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise InvalidRecord(name, f"expected a string, got {_kind(value)}")


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRecord(name, f"expected a number, got {_kind(value)}")
    if not math.isfinite(value) or value < 0:
        raise InvalidRecord(name, f"must be finite and >= 0, got {value!r}")
    return float(value)


_Fields = dict[str, tuple[int, str, Any]]  # canonical name -> (alias rank, key used, value)


def _status(fields: _Fields, has_error: bool) -> str:
    if (item := fields.get("status")) is not None:
        if not isinstance(item[2], str):
            raise InvalidRecord("status", f"expected a string, got {_kind(item[2])}")
        status = STATUS_ALIASES.get(item[2].strip().lower())
        if status is None:
            raise InvalidRecord(
                "status", f"unknown status {item[2]!r}; expected one of {', '.join(STATUSES)}"
            )
        return status
    if (item := fields.get("success")) is not None:
        if not isinstance(item[2], bool):
            raise InvalidRecord("success", f"expected true or false, got {_kind(item[2])}")
        return "success" if item[2] else "failed"
    return "failed" if has_error else "success"


def _error(fields: _Fields) -> tuple[str | None, str | None, str | None]:
    """(type, message, traceback) from ``error`` (string or object) and top-level fields."""
    etype = message = stack = None
    if (item := fields.get("error_type")) is not None:
        etype = _text(item[2], item[1])
    if (item := fields.get("error_message")) is not None:
        message = _text(item[2], item[1])
    if (item := fields.get("stack_trace")) is not None:
        stack = _text(item[2], item[1])
    if (item := fields.get("error")) is not None:
        value = item[2]
        if isinstance(value, str):
            message = message or value
        elif isinstance(value, Mapping):
            name, found = _pick(value, _ERR_TYPE)
            etype = etype or _text(found, f"error.{name}")
            name, found = _pick(value, _ERR_MESSAGE)
            message = message or _text(found, f"error.{name}")
            name, found = _pick(value, TRACEBACK)
            stack = stack or _text(found, f"error.{name}")
        elif value is not False:
            raise InvalidRecord("error", f"expected a string or an object, got {_kind(value)}")
    return etype or None, message or None, stack or None


def _shift(when: datetime, milliseconds: float) -> datetime:
    try:
        return when + timedelta(milliseconds=milliseconds)
    except OverflowError:
        raise InvalidRecord("duration_ms", f"out of range: {abs(milliseconds)!r}") from None


def _time(fields: _Fields, canonical: str, zone: _Zone | None) -> datetime | None:
    item = fields.get(canonical)
    return None if item is None else parse_result_time(item[2], item[1], zone)


# -- one record ------------------------------------------------------------------------------


def record_from_mapping(obj: Mapping[str, Any], zone: _Zone | None = None) -> TaskExecution:
    """Build one backfill record from a result object; raises InvalidRecord naming the field.

    The key is the live one: (task_id, scheduled_at if given else started_at, attempt). Missing
    trace/span ids are derived from it, so a re-run produces identical rows. Keys taskexec does
    not model are kept in ``attributes``.
    """
    fields: _Fields = {}
    plain: dict[str, Any] = {}
    extra: list[str] = []
    table = _ALIASES
    for key, value in obj.items():  # one pass over the object, whatever spelling it uses
        alias = table.get(key)
        if alias is None:
            extra.append(key)
        elif value is None:
            continue
        elif alias[0] is _PLAIN_MARK:
            plain[key] = value
        else:
            current = fields.get(alias[0])
            if current is None or alias[1] < current[0]:
                fields[alias[0]] = (alias[1], key, value)

    task_id = None
    if (item := fields.get("task_id")) is not None:
        task_id = item[2]
        if isinstance(task_id, int) and not isinstance(task_id, bool):
            task_id = str(task_id)  # numeric scheduler ids are common; they are ids, not numbers
        task_id = _text(task_id, item[1])
    slug = task_id
    if (item := fields.get("task_slug")) is not None:
        slug = _text(item[2], item[1]) or task_id
    if not slug:
        raise InvalidRecord("task_slug", f"missing: none of {', '.join(TASK_SLUG + TASK_ID)}")
    task_id = task_id or slug

    etype, message, stack = _error(fields)
    status = _status(fields, bool(etype or message or stack))

    duration_ms = None
    if (item := fields.get("duration_ms")) is not None:
        duration_ms = _number(item[2], item[1])
    elif (item := fields.get("duration_s")) is not None:
        duration_ms = _number(item[2], item[1]) * 1000.0

    ended = _time(fields, "ended_at", zone)
    started = _time(fields, "started_at", zone)
    if started is None:
        if ended is None or duration_ms is None:
            raise InvalidRecord("started_at", f"missing: none of {', '.join(STARTED)}")
        started = _shift(ended, -duration_ms)
    if ended is None and duration_ms is not None:
        ended = _shift(started, duration_ms)
    scheduled = _time(fields, "scheduled_at", zone)

    attempt = 1
    if plain:
        for key in _ID_FIELDS:
            if isinstance(value := plain.get(key), str):
                plain[key] = value.lower()
        for key in ("files_written", "retrieval_sources"):
            value = plain.get(key)
            if isinstance(value, list) and not all(isinstance(v, str) for v in value):
                raise InvalidRecord(key, "expected a list of strings")
        attempt = plain.pop("attempt", 1)
        if type(attempt) is not int or attempt < 1:
            raise InvalidRecord("attempt", f"must be an integer >= 1, got {attempt!r}")
    when = format_ts(scheduled if scheduled is not None else started)
    key = idempotency_key(task_id, when, attempt)
    if "span_id" not in plain:
        plain["span_id"] = key[:16] if key[:16] != "0" * 16 else key[16:32]
    if "trace_id" not in plain:  # one trace per run: all attempts of a scheduled run share it
        plain["trace_id"] = hashlib.sha256(f"{task_id}\x1f{when}".encode()).hexdigest()[:32]
    attributes: Any = None
    if (item := fields.get("attributes")) is not None:
        attributes = item[2]
        if not isinstance(attributes, Mapping):
            raise InvalidRecord(item[1], f"expected an object, got {_kind(attributes)}")
    if extra:
        attributes = {**{k: obj[k] for k in extra}, **(attributes or {})}
    content = None
    if (item := fields.get("content")) is not None:
        content = _text(item[2], item[1])
    return TaskExecution(
        task_slug=slug,
        task_id=task_id,
        attempt=attempt,
        started_at=started,
        ended_at=ended,
        scheduled_at=scheduled,
        status=status,
        duration_ms=duration_ms,
        error_type=etype,
        error_message=message,
        stack_trace=stack,
        content=content,
        attributes=attributes or {},
        idempotency_key=key,
        provenance="backfill",
        **plain,
    )


# -- one file --------------------------------------------------------------------------------


def records_from_bytes(
    data: bytes,
    path: str,
    summary: BackfillSummary,
    *,
    jsonl: bool = False,
    zone: _Zone | None = None,
) -> list[TaskExecution]:
    """Parse one file's bytes (an object, a list of objects, or JSON Lines) into records.

    Never raises for bad input: a file that cannot be read at all, and each bad record of a
    readable file, are added to ``summary`` with the path and the line or record number.
    """
    if data[:3] == b"\xef\xbb\xbf":
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        summary.file_problem(
            path, f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        )
        return []
    if not text.strip():
        summary.file_problem(path, "empty file")
        return []
    if not jsonl:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            if exc.msg != "Extra data":
                summary.file_problem(
                    path, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
                )
                return []
        else:
            return _records_from_doc(doc, path, summary, zone)
    return _records_from_lines(text, path, summary, zone)


def _records_from_doc(
    doc: Any, path: str, summary: BackfillSummary, zone: _Zone | None
) -> list[TaskExecution]:
    if isinstance(doc, dict):
        summary.records_found += 1
        try:
            return [record_from_mapping(doc, zone)]
        except InvalidRecord as exc:
            summary.file_problem(path, str(exc))
            summary.records_skipped += 1
            return []
    if not isinstance(doc, list):
        summary.file_problem(path, f"expected an object or a list of objects, got {_kind(doc)}")
        return []
    if not doc:
        summary.file_problem(path, "an empty list: no records")
        return []
    out = []
    for i, item in enumerate(doc, 1):
        summary.records_found += 1
        if not isinstance(item, dict):
            summary.record_problem(path, f"record {i}", f"expected an object, got {_kind(item)}")
            continue
        try:
            out.append(record_from_mapping(item, zone))
        except InvalidRecord as exc:
            summary.record_problem(path, f"record {i}", str(exc))
    return out


def _records_from_lines(
    text: str, path: str, summary: BackfillSummary, zone: _Zone | None
) -> list[TaskExecution]:
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        summary.records_found += 1
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            summary.record_problem(
                path, f"line {number}", f"invalid JSON at column {exc.colno}: {exc.msg}"
            )
            continue
        if not isinstance(item, dict):
            summary.record_problem(path, f"line {number}", f"expected an object, got {_kind(item)}")
            continue
        try:
            out.append(record_from_mapping(item, zone))
        except InvalidRecord as exc:
            summary.record_problem(path, f"line {number}", str(exc))
    return out


# -- the file system -------------------------------------------------------------------------


def read_file(path: str, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The file's bytes; BadInput when it cannot be read or is over ``max_bytes`` (not loaded)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise BadInput(path, f"cannot open: {exc.strerror or exc}") from None
    try:
        size = os.fstat(fd).st_size
        if size > max_bytes:
            raise BadInput(path, f"file is {size:,} bytes, over the {max_bytes:,}-byte limit")
        chunks = []
        while True:  # one read for a regular small file; loop for anything that grows
            chunk = os.read(fd, max(size + 1, 65536))
            if not chunk:
                break
            chunks.append(chunk)
            if sum(map(len, chunks)) > max_bytes:
                raise BadInput(path, f"file is over the {max_bytes:,}-byte limit")
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    except OSError as exc:
        raise BadInput(path, f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def find_files(
    root: str | os.PathLike[str], patterns: Sequence[str] = DEFAULT_PATTERNS
) -> list[str]:
    """Regular files under ``root`` (recursively) whose name matches a glob, in sorted order.

    ``root`` may also be a single file, which is taken whatever its name.
    """
    root = os.fspath(root)
    if os.path.isfile(root):
        return [root]
    if not os.path.isdir(root):
        raise BadInput(root, "no such file or directory")
    match = re.compile("|".join(translate(p) for p in patterns)).match
    found: list[str] = []
    stack = [root]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
            elif match(entry.name) and entry.is_file():
                found.append(entry.path)
    found.sort()
    return found


def iter_records(
    paths: Iterable[str],
    summary: BackfillSummary,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    since: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[TaskExecution]:
    """Records of every file in turn; problems and counts go to ``summary`` (complete once the
    iterator is exhausted). ``progress(n)`` is called every few hundred files."""
    zone = _Zone()
    pending = 0
    for path in paths:
        summary.files_scanned += 1
        pending += 1
        try:
            data = read_file(path, max_bytes)
        except BadInput as exc:
            summary.file_problem(path, exc.reason)
            continue
        jsonl = path.endswith(JSONL_SUFFIXES)
        for record in records_from_bytes(data, path, summary, jsonl=jsonl, zone=zone):
            if since is not None and record.started_at < since:
                summary.before_since += 1
            else:
                yield record
        if progress is not None and pending >= 256:
            progress(pending)
            pending = 0
    summary.naive_timestamps = zone.naive
    if progress is not None and pending:
        progress(pending)


def backfill(
    root: str | os.PathLike[str],
    db: str | os.PathLike[str],
    *,
    dry_run: bool = False,
    since: datetime | None = None,
    patterns: Sequence[str] = DEFAULT_PATTERNS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    progress: Callable[[int], None] | None = None,
    paths: Sequence[str] | None = None,
) -> BackfillSummary:
    """Import every result file under ``root`` into ``db`` (or, with ``dry_run``, only count).

    ``paths`` (from ``find_files``) may be passed when the caller already listed them, e.g. to
    size a progress bar. A dry run opens an existing database read-only and never creates one.
    """
    from ..db import Store  # deferred: parsing alone needs no database code

    if paths is None:
        paths = find_files(root, patterns)
    summary = BackfillSummary(dry_run=dry_run)
    records = iter_records(paths, summary, max_bytes=max_bytes, since=since, progress=progress)
    if not dry_run:
        with Store(db) as store:
            result = store.append_many(records)
        summary.inserted, summary.duplicates = result.inserted, result.duplicates
        return summary
    summary.inserted, summary.duplicates = _count_new(records, os.fspath(db))
    return summary


def _count_new(records: Iterable[TaskExecution], db: str) -> tuple[int, int]:
    """(would insert, duplicates) without writing: repeats in the input, then keys in ``db``."""
    keys: dict[str, str] = {}
    spans: set[str] = set()
    repeats = 0
    for record in records:
        if record.idempotency_key in keys or record.span_id in spans:
            repeats += 1
            continue
        keys[record.idempotency_key] = record.span_id
        spans.add(record.span_id)
    if not keys or not os.path.exists(db):
        return len(keys), repeats
    from ..db import Store

    with Store.open_readonly(db) as store:
        hit_keys, hit_spans = store.existing(list(keys), list(keys.values()))
    present = sum(1 for k, s in keys.items() if k in hit_keys or s in hit_spans)
    return len(keys) - present, repeats + present
