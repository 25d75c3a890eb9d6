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

import errno
import json
import math
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fnmatch import translate
from typing import Any

from ..errors import BadInput, InvalidRecord
from ..model import EPOCH, MAX_INTEGER, STATUSES, TaskExecution, idempotency_key
from .linking import link_retries, trace_of_key

#: Files larger than this are reported, not loaded (a 100 MB "result" is not a result file).
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
#: File names looked at when no ``--glob`` is given.
DEFAULT_PATTERNS = ("*.json", "*.jsonl", "*.ndjson")
#: Extensions read as JSON Lines from the start (other files fall back to it on "extra data").
JSONL_SUFFIXES = (".jsonl", ".ndjson")
#: How deeply one field's value may nest lists and objects. Deeper values are refused (the
#: record is skipped, naming the field): real results are shallow, and scrubbing and encoding
#: a value walk it recursively.
MAX_DEPTH = 32
#: ``os.open`` flags: never block on a FIFO; with ``within``, do not follow a final symlink.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
#: What a path that is not a regular file is (``stat.S_IFMT`` -> words for the message).
_FILE_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}

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
    # Celery, RQ, Airflow and friends, as their result backends write them.
    "finished": "success",  # RQ
    "retry": "failed",  # Celery: this attempt failed and the task will be retried
    "retrying": "failed",
    "up_for_retry": "failed",  # Airflow
    "revoked": "cancelled",  # Celery
    "rejected": "cancelled",  # Celery: the worker refused it
    "stopped": "cancelled",  # RQ
    "started": "running",  # Celery, RQ: began, no end recorded (yet)
    "in_progress": "running",
    "lost": "abandoned",
}

#: States of a task that has not run (yet): such a record is no execution. It is counted
#: (``BackfillSummary.not_run``) and left out, not reported as a problem.
NOT_RUN_STATES = frozenset(
    {"pending", "queued", "received", "scheduled", "deferred", "waiting", "enqueued", "skipped"}
)


class NotRun(Exception):
    """A record whose status says the task has not run (``NOT_RUN_STATES``)."""


def status_help() -> str:
    """What ``status`` accepts: taskexec's statuses, every alias by what it means, and the
    states of tasks that have not run."""
    meaning: dict[str, list[str]] = {}
    for alias, target in STATUS_ALIASES.items():
        if alias != target:
            meaning.setdefault(target, []).append(alias)
    aliases = "; ".join(f"{', '.join(names)} = {target}" for target, names in meaning.items())
    return (
        f"expected one of {', '.join(STATUSES)} (any case), or an alias ({aliases}); "
        f"{', '.join(sorted(NOT_RUN_STATES))} mean the task has not run: such records are "
        "counted, not imported"
    )


#: The earliest and latest time a result may hold: a day inside what ``datetime`` can represent,
#: so what is computed from a time (an end from a duration, a retry window) stays in range.
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)
# Epoch numbers are read by magnitude: seconds until 1e11 (the year 5138), then ms, µs, ns.
_EPOCH_SCALES = ((1e11, 1_000_000), (1e14, 1_000), (1e17, 1))
_DIGITS_RE = re.compile(r"^-?\d{1,40}(?:\.\d{1,40})?$", re.ASCII)
#: A ``\\uD800``-``\\uDFFF`` escape: JSON may encode a lone surrogate, which no UTF-8 text (and
#: so no SQLite column) can hold; only files containing one get the per-record check.
_SURROGATE_ESCAPE_RE = re.compile(r"\\u[dD][89a-fA-F]")


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
    records were imported. Records older than ``--since`` are filtered on purpose, not skipped,
    and so are records of tasks that have not run yet (``not_run``: pending, queued...).
    """

    files_scanned: int = 0
    files_skipped: int = 0
    records_found: int = 0
    records_skipped: int = 0
    before_since: int = 0
    not_run: int = 0
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

    A string without a zone is read as UTC and counted in ``zone``. Times outside
    ``EARLIEST``..``LATEST`` are an InvalidRecord naming the field.
    """
    when = _parse_time(value, name, zone)
    if not EARLIEST <= when <= LATEST:
        raise InvalidRecord(
            name, f"out of range: {repr(value)[:60]} is not between 0001-01-02 and 9999-12-30 UTC"
        )
    return when


def _parse_time(value: Any, name: str, zone: _Zone | None) -> datetime:
    if isinstance(value, str):
        if value.isdigit() and value.isascii():  # not "²" or other digits int() refuses
            if len(value) > 40:
                raise InvalidRecord(name, f"epoch value out of range: {value[:40]}...")
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
        if parsed.tzinfo is UTC:
            return parsed
        try:
            return parsed.astimezone(UTC)
        except OverflowError:  # 9999-12-31T23:59:59-05:00 is in the year 10000 in UTC
            raise InvalidRecord(
                name, f"out of range: {value[:60]!r} is past year 9999 (or before 1) in UTC"
            ) from None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _from_epoch(value, name)
    raise InvalidRecord(
        name, f"expected an ISO-8601 string or epoch seconds/milliseconds, got {_kind(value)}"
    )


def _from_epoch(value: float, name: str) -> datetime:
    if not math.isfinite(value):
        raise InvalidRecord(name, f"not a finite number: {brief(value)}")
    size = abs(value)
    per_unit = next((scale for limit, scale in _EPOCH_SCALES if size < limit), 0)
    try:
        if per_unit == 0:  # nanoseconds
            return EPOCH + timedelta(microseconds=int(value) // 1000)
        if isinstance(value, int):
            return EPOCH + timedelta(microseconds=value * per_unit)
        return EPOCH + timedelta(microseconds=round(value * per_unit))
    except OverflowError:
        raise InvalidRecord(name, f"epoch value out of range: {repr(value)[:40]}") from None


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """True when ``value`` nests lists/objects more than ``limit`` levels deep (``[]`` is one
    level). Iterative, so it cannot itself run out of stack."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((v, depth + 1) for v in children if isinstance(v, dict | list))
    return False


def brief(value: Any, limit: int = 60) -> str:
    """``repr`` of a value from a file for a message, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _label(key: str) -> str:
    """A key from a file as a field name in a message: as it is when short and printable."""
    return key if len(key) <= 40 and key.isprintable() and key.isascii() else ascii(key[:40])


def _unencodable_field(obj: Mapping[str, Any]) -> str | None:
    """The first key of ``obj`` whose key or value holds a lone surrogate (from a ``\\ud800``
    escape): text that is not Unicode and that SQLite cannot store. None when all are fine."""
    for key, value in obj.items():
        try:
            json.dumps([key, value], ensure_ascii=False).encode()
        except UnicodeEncodeError:
            return _label(key)
        except (TypeError, ValueError, RecursionError):
            continue  # not this check's business; validation names it
    return None


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
        raise InvalidRecord(name, f"must be finite and >= 0, got {brief(value)}")
    return float(value)


_Fields = dict[str, tuple[int, str, Any]]  # canonical name -> (alias rank, key used, value)


def _status(fields: _Fields, has_error: bool) -> str:
    if (item := fields.get("status")) is not None:
        if not isinstance(item[2], str):
            raise InvalidRecord("status", f"expected a string, got {_kind(item[2])}")
        text = item[2].strip().lower()
        status = STATUS_ALIASES.get(text)
        if status is None:
            if text in NOT_RUN_STATES:
                raise NotRun(text)
            raise InvalidRecord("status", f"unknown status {brief(item[2])}; {status_help()}")
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
        shifted = when + timedelta(milliseconds=milliseconds)
    except OverflowError:
        shifted = None
    if shifted is None or not EARLIEST <= shifted <= LATEST:
        raise InvalidRecord(
            "duration_ms",
            f"out of range: {abs(milliseconds)!r} ms from {when.isoformat()} leaves "
            "0001-01-02 to 9999-12-30 UTC",
        )
    return shifted


def _time(fields: _Fields, canonical: str, zone: _Zone | None) -> datetime | None:
    item = fields.get(canonical)
    return None if item is None else parse_result_time(item[2], item[1], zone)


# -- one record ------------------------------------------------------------------------------


def record_from_mapping(obj: Mapping[str, Any], zone: _Zone | None = None) -> TaskExecution:
    """Build one backfill record from a result object; raises InvalidRecord naming the field.

    The key is ``model.idempotency_key`` of (task_id, start, attempt, host, pid, slot). Missing
    trace/span ids are derived from it, so a re-run produces identical rows. Keys taskexec does
    not model are kept in ``attributes``.
    """
    fields: _Fields = {}
    plain: dict[str, Any] = {}
    extra: list[str] = []
    table = _ALIASES
    for key, value in obj.items():  # one pass over the object, whatever spelling it uses
        if (type(value) is dict or type(value) is list) and value and too_deep(value):
            raise InvalidRecord(_label(key), f"nested deeper than {MAX_DEPTH} levels")
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
        if "host" in plain and not isinstance(plain["host"], str):
            raise InvalidRecord("host", f"expected a string, got {_kind(plain['host'])}")
        for key in ("files_written", "retrieval_sources"):
            value = plain.get(key)
            if isinstance(value, list) and not all(isinstance(v, str) for v in value):
                raise InvalidRecord(key, "expected a list of strings")
        attempt = plain.pop("attempt", 1)
        if type(attempt) is not int or not 1 <= attempt <= MAX_INTEGER:
            raise InvalidRecord(
                "attempt", f"must be an integer >= 1 and <= 2**63-1, got {brief(attempt)}"
            )
    key = idempotency_key(
        task_id,
        started,
        attempt,
        host=plain.get("host"),
        pid=plain.get("pid"),
        scheduled_at=scheduled,
    )
    if "span_id" not in plain:
        plain["span_id"] = key[:16] if key[:16] != "0" * 16 else key[16:32]
    if "trace_id" not in plain:  # one per execution; link_retries gives a retry its run's
        plain["trace_id"] = trace_of_key(key)
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
        if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
            summary.file_problem(path, "UTF-16 text (byte-order mark); convert it to UTF-8")
        else:
            summary.file_problem(
                path, f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
            )
        return []
    if not text.strip():
        summary.file_problem(path, "empty file")
        return []
    check_text = "\\u" in text and _SURROGATE_ESCAPE_RE.search(text) is not None
    if not jsonl:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            if exc.msg != "Extra data":
                summary.file_problem(
                    path, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
                )
                return []
        except (RecursionError, ValueError) as exc:  # nested ~1,000 deep; a 5,000-digit number
            summary.file_problem(path, _json_error(exc))
            return []
        else:
            return _records_from_doc(doc, path, summary, zone, check_text)
    return _records_from_lines(text, path, summary, zone, check_text)


def _json_error(exc: BaseException) -> str:
    """What ``json.loads`` refused, beyond a syntax error, in a few words."""
    if isinstance(exc, RecursionError):
        return "invalid JSON: nested too deeply to parse"
    return f"invalid JSON: {str(exc).split(';')[0][:200]}"


def _record(item: dict[str, Any], zone: _Zone | None, check_text: bool) -> TaskExecution:
    """``record_from_mapping``, after refusing text SQLite cannot store (lone surrogates)."""
    if check_text and (name := _unencodable_field(item)) is not None:
        raise InvalidRecord(name, "holds a lone surrogate (a \\ud800-\\udfff escape): not Unicode")
    return record_from_mapping(item, zone)


def _record_error(exc: Exception) -> str:
    """The reason a record was refused: InvalidRecord's "field: reason", else what broke."""
    if isinstance(exc, InvalidRecord):
        return str(exc)
    if isinstance(exc, RecursionError):
        return "nested too deeply to read"
    return f"unreadable record ({type(exc).__name__}: {str(exc)[:200]})"


#: What reading one record may raise besides InvalidRecord, on input nobody anticipated.
_RECORD_ERRORS = (InvalidRecord, RecursionError, OverflowError, ValueError, TypeError)


def _records_from_doc(
    doc: Any, path: str, summary: BackfillSummary, zone: _Zone | None, check_text: bool = False
) -> list[TaskExecution]:
    if isinstance(doc, dict):
        summary.records_found += 1
        try:
            return [_record(doc, zone, check_text)]
        except NotRun:
            summary.not_run += 1
            return []
        except _RECORD_ERRORS as exc:
            summary.file_problem(path, _record_error(exc))
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
            out.append(_record(item, zone, check_text))
        except NotRun:
            summary.not_run += 1
        except _RECORD_ERRORS as exc:
            summary.record_problem(path, f"record {i}", _record_error(exc))
    return out


def _records_from_lines(
    text: str, path: str, summary: BackfillSummary, zone: _Zone | None, check_text: bool = False
) -> list[TaskExecution]:
    out = []
    # "\n" only: str.splitlines() would also split inside a JSON string at U+2028, U+0085...
    for number, line in enumerate(text.split("\n"), 1):
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
        except (RecursionError, ValueError) as exc:
            summary.record_problem(path, f"line {number}", _json_error(exc))
            continue
        if not isinstance(item, dict):
            summary.record_problem(path, f"line {number}", f"expected an object, got {_kind(item)}")
            continue
        try:
            out.append(_record(item, zone, check_text))
        except NotRun:
            summary.not_run += 1
        except _RECORD_ERRORS as exc:
            summary.record_problem(path, f"line {number}", _record_error(exc))
    return out


# -- the file system -------------------------------------------------------------------------


def read_file(path: str, max_bytes: int = DEFAULT_MAX_BYTES, *, within: str | None = None) -> bytes:
    """The file's bytes; BadInput when it cannot be read or is over ``max_bytes`` (not loaded).

    Only regular files are read (a FIFO is reported, never waited on). With ``within`` (a
    directory's real path) a symbolic link is read only when its target is inside it; a link
    leading elsewhere, a loop or a dangling link is reported instead.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS | (_NOFOLLOW if within is not None else 0))
    except OSError as exc:
        if within is None or not os.path.islink(path):
            raise BadInput(path, open_error(path, exc)) from None
        real = _inside(path, within)
        try:  # the real path has no link left in it: a link swapped in now is refused
            fd = os.open(real, _OPEN_FLAGS | _NOFOLLOW)
        except OSError as again:
            raise BadInput(path, open_error(real, again)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = _FILE_KINDS.get(stat.S_IFMT(info.st_mode), "a special file")
            raise BadInput(path, f"not a regular file ({kind})")
        size = info.st_size
        if size > max_bytes:
            raise BadInput(path, f"file is {size:,} bytes, over the {max_bytes:,}-byte limit")
        chunks = []
        total = 0
        while True:  # one read for a regular small file; loop for anything that grows
            chunk = os.read(fd, max(size + 1, 65536))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise BadInput(path, f"file is over the {max_bytes:,}-byte limit")
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    except OSError as exc:
        raise BadInput(path, f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def open_error(path: str, exc: OSError) -> str:
    """Why ``os.open(path)`` failed, in words: a loop, a dangling link and a file removed
    since it was listed are told apart."""
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    if exc.errno == errno.ENOENT and os.path.islink(path):
        return "dangling symbolic link (its target does not exist)"
    if exc.errno == errno.ENOENT:
        return "cannot open: it disappeared (no such file)"
    return f"cannot open: {exc.strerror or exc}"


def _inside(path: str, within: str) -> str:
    """The real path of the link ``path`` when it leads to something inside ``within``;
    BadInput otherwise (outside, a loop, dangling)."""
    try:
        real = os.path.realpath(path, strict=True)
    except OSError as exc:
        raise BadInput(path, open_error(path, exc)) from None
    if real != within and not real.startswith(within.rstrip(os.sep) + os.sep):
        raise BadInput(
            path,
            f"symbolic link to {real}, outside the directory: not followed "
            "(--follow-symlinks reads it)",
        )
    return real


def find_files(
    root: str | os.PathLike[str],
    patterns: Sequence[str] = DEFAULT_PATTERNS,
    *,
    follow_symlinks: bool = False,
    summary: BackfillSummary | None = None,
) -> list[str]:
    """Files under ``root`` (recursively) whose name matches a glob, in sorted order.

    ``root`` may also be a single file, which is taken whatever its name. Symbolic links to
    directories are walked only with ``follow_symlinks`` (each directory once, so a loop ends);
    without it, links whose names match are listed (``read_file`` reads those that stay inside
    ``root``) and so are links to directories outside ``root``, for ``read_file`` to report.
    Matching special files (FIFOs, sockets) are listed too, to be reported, never opened.
    A directory that cannot be listed goes to ``summary`` when one is given.
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        if os.path.lexists(root):
            return [root]
        raise BadInput(root, "no such file or directory")
    match = re.compile("|".join(translate(p) for p in patterns)).match
    base = os.path.realpath(root)
    seen: set[tuple[int, int]] = set()  # directories walked, when links are followed
    if follow_symlinks:
        info = os.stat(root)
        seen.add((info.st_dev, info.st_ino))
    found: list[str] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = list(listing)
        except OSError as exc:
            if summary is not None:
                summary.file_problem(folder, f"cannot list the directory: {exc.strerror or exc}")
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if follow_symlinks:
                        info = entry.stat(follow_symlinks=False)
                        seen.add((info.st_dev, info.st_ino))
                    stack.append(entry.path)
                elif not entry.is_symlink():
                    if match(entry.name):
                        found.append(entry.path)
                elif follow_symlinks and entry.is_dir():
                    info = entry.stat()
                    if (info.st_dev, info.st_ino) not in seen:
                        seen.add((info.st_dev, info.st_ino))
                        stack.append(entry.path)
                elif match(entry.name):
                    found.append(entry.path)
                elif not follow_symlinks and entry.is_dir():
                    real = os.path.realpath(entry.path)
                    if real != base and not real.startswith(base.rstrip(os.sep) + os.sep):
                        found.append(entry.path)  # reported by read_file: not followed
            except OSError:  # a link loop, an entry removed meanwhile: read_file says which
                if match(entry.name):
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
    within: str | None = None,
) -> Iterator[TaskExecution]:
    """Records of every file in turn; problems and counts go to ``summary`` (complete once the
    iterator is exhausted). ``progress(n)`` is called every few hundred files. ``within`` is
    passed to ``read_file`` (symbolic links must stay inside that directory)."""
    zone = _Zone()
    pending = 0
    for path in paths:
        summary.files_scanned += 1
        pending += 1
        try:
            data = read_file(path, max_bytes, within=within)
        except BadInput as exc:
            summary.file_problem(path, exc.reason)
            continue
        except OSError as exc:  # pragma: no cover - read_file turns these into BadInput
            summary.file_problem(path, f"cannot read: {exc.strerror or exc}")
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
    follow_symlinks: bool = False,
    summary: BackfillSummary | None = None,
) -> BackfillSummary:
    """Import every result file under ``root`` into ``db`` (or, with ``dry_run``, only count).

    ``paths`` (from ``find_files``) may be passed when the caller already listed them, e.g. to
    size a progress bar; ``summary`` too, when ``find_files`` reported into it. A dry run opens
    an existing database read-only and never creates one. Symbolic links that lead outside
    ``root`` are reported, not read, unless ``follow_symlinks``.
    """
    from ..db import Store  # deferred: parsing alone needs no database code

    if summary is None:
        summary = BackfillSummary(dry_run=dry_run)
    summary.dry_run = dry_run
    if paths is None:
        paths = find_files(root, patterns, follow_symlinks=follow_symlinks, summary=summary)
    folder = os.fspath(root)
    within = None if follow_symlinks or not os.path.isdir(folder) else os.path.realpath(folder)
    records = link_retries(
        iter_records(
            paths, summary, max_bytes=max_bytes, since=since, progress=progress, within=within
        )
    )
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
