"""The TaskExecution record, status values, W3C ids and the canonical timestamp format. No I/O."""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .errors import InvalidRecord
from .scrub import scrub_text

_bits = random.getrandbits
STATUSES = ("running", "success", "failed", "timeout", "cancelled", "abandoned")
#: Statuses that count as a failure in rates and in "last failed" (a crashed run failed too).
FAILURE_STATUSES = ("failed", "timeout", "abandoned")
PROVENANCES = ("live", "backfill", "otlp")

_TRACE_RE = re.compile(r"^[0-9a-f]{32}$")
_SPAN_RE = re.compile(r"^[0-9a-f]{16}$")
_TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def new_trace_id() -> str:
    """A random W3C trace id: 32 lowercase hex, never all zero.

    From ``random`` (seeded from the OS, reseeded in every forked child), like OpenTelemetry's
    own id generator: ids must be unique, not secret, and this is 10x cheaper than
    ``secrets`` on the recording path."""
    while True:
        value = _bits(128)
        if value:
            return f"{value:032x}"


def new_span_id() -> str:
    """A random W3C span id: 16 lowercase hex, never all zero (see ``new_trace_id``)."""
    while True:
        value = _bits(64)
        if value:
            return f"{value:016x}"


_UUID_RE = re.compile(
    r"^(?:urn:uuid:)?\{?([0-9a-fA-F]{8})-?([0-9a-fA-F]{4})-?([0-9a-fA-F]{4})-?"
    r"([0-9a-fA-F]{4})-?([0-9a-fA-F]{12})\}?$"
)


def uuid_hex(value: object) -> str | None:
    """The 32 lowercase hex digits of a UUID in any standard form (hyphens or not, braces,
    ``urn:uuid:``, any case, a ``uuid.UUID``), else None."""
    if hasattr(value, "hex") and type(value).__name__ == "UUID":
        return str(value.hex)
    if not isinstance(value, str):
        return None
    match = _UUID_RE.match(value.strip())
    return "".join(match.groups()).lower() if match else None


def as_trace_id(value: object) -> object:
    """A trace id from what a framework gives: a W3C id as is, a UUID as its 32 hex digits.
    Anything else is returned unchanged (and fails validation, naming the field)."""
    if isinstance(value, str) and _TRACE_RE.match(value):
        return value
    return uuid_hex(value) or value


def as_span_id(value: object) -> object:
    """A span id from what a framework gives: a W3C span id as is; a UUID (or a W3C trace id)
    becomes the first 16 hex digits of the SHA-256 of its 32 hex digits, so distinct UUIDs give
    distinct span ids with overwhelming probability. Anything else is returned unchanged."""
    if isinstance(value, str) and _SPAN_RE.match(value):
        return value
    digits = uuid_hex(value) or (
        value if isinstance(value, str) and _TRACE_RE.match(value) else None
    )
    if digits is None:
        return value
    return derive_span_id(digits)


def derive_span_id(*parts: object) -> str:
    """A stable span id from any values (e.g. a framework's job id and the attempt number), so
    every process that sees the same job computes the same id for its attempt."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()
    for i in range(0, 64, 16):
        if digest[i : i + 16] != "0" * 16:
            return digest[i : i + 16]
    return "0" * 15 + "1"  # pragma: no cover - sha256 of anything is never all zero


def check_trace_id(value: object, field_name: str = "trace_id") -> str:
    """Return a valid trace id or raise InvalidRecord naming the field."""
    if not isinstance(value, str) or not _TRACE_RE.match(value) or value == "0" * 32:
        raise InvalidRecord(
            field_name, f"expected 32 lowercase hex characters, not all zero; got {value!r}"
        )
    return value


def check_span_id(value: object, field_name: str = "span_id") -> str:
    """Return a valid span id or raise InvalidRecord naming the field."""
    if not isinstance(value, str) or not _SPAN_RE.match(value) or value == "0" * 16:
        raise InvalidRecord(
            field_name, f"expected 16 lowercase hex characters, not all zero; got {value!r}"
        )
    return value


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


#: The Unix epoch, aware UTC.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_unix_nanos(value: datetime) -> int:
    """Aware datetime -> Unix nanoseconds, exactly (integer arithmetic, no float rounding)."""
    return (value - EPOCH) // timedelta(microseconds=1) * 1000


def from_unix_nanos(nanos: int) -> datetime:
    """Unix nanoseconds -> aware UTC datetime (truncated to microseconds, as stored)."""
    return EPOCH + timedelta(microseconds=nanos // 1000)


#: The largest integer an SQLite INTEGER column holds (``attempt``, ``memories_retrieved``,
#: ``pid`` are checked against it: a bigger one could not be written).
MAX_INTEGER = 2**63 - 1
_INT64 = range(-(2**63), 2**63).__contains__
#: The longest ``duration_ms``: the span from ``datetime.min`` to ``datetime.max`` (~10,000
#: years), so any duration two storable timestamps can be apart is accepted and 1e300 is not.
MAX_DURATION_MS = (datetime.max - datetime.min).total_seconds() * 1000


def _short(value: object, limit: int = 60) -> str:
    """``repr`` of a bad value for a message, cut to ``limit`` characters (a 5,000-digit
    integer or a 6 MB string must not become the message)."""
    if isinstance(value, int) and value.bit_length() > 3 * limit:  # str() of one may fail
        return f"an integer of about {value.bit_length() * 0.30103:,.0f} digits"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _in_utc_range(value: datetime, field_name: str) -> datetime:
    """The aware value, after checking that it has a UTC equivalent (``9999-12-31T23:00-05:00``
    is past ``datetime.max`` in UTC and could not be stored)."""
    if value.tzinfo is not UTC:
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise InvalidRecord(
                field_name,
                f"out of range: {value.isoformat()} is past year 9999 (or before 1) in UTC",
            ) from None
    return value


def _aware(value: object, field_name: str) -> datetime:
    """The value if it is a timezone-aware datetime; InvalidRecord naming the field otherwise."""
    if type(value) is datetime and value.tzinfo is UTC:  # the usual case, checked first
        return value
    if not isinstance(value, datetime):
        raise InvalidRecord(field_name, f"expected a datetime, got {type(value).__name__}")
    if value.utcoffset() is None:
        raise InvalidRecord(
            field_name, "naive datetime; pass a timezone-aware value (e.g. datetime.now(UTC))"
        )
    return value


_TS_TEXT = "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ"


def utc_text(value: datetime) -> str:
    """The canonical text of a datetime already in UTC (no checks: the callers made them).
    ``%`` formatting of its fields is ~40% cheaper than ``isoformat`` and slicing off the
    offset, and this runs three times a row on the bulk-load and writer paths."""
    return _TS_TEXT % (
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
    )


def format_ts(value: datetime, field_name: str = "timestamp") -> str:
    """Canonical text form: UTC, fixed width, microseconds, Z suffix, so it sorts as text."""
    if type(value) is datetime and value.tzinfo is UTC:
        return utc_text(value)
    if _aware(value, field_name).utcoffset():
        value = value.astimezone(UTC)
    return utc_text(value)


def parse_ts(value: str, field_name: str = "timestamp") -> datetime:
    """Parse an ISO-8601 timestamp that carries a zone (Z or an offset) into aware UTC.

    InvalidRecord naming the field for anything else, a time without a zone, or one that is
    outside the years 1 to 9999 once converted to UTC."""
    if not isinstance(value, str):
        raise InvalidRecord(field_name, f"expected an ISO-8601 string, got {_short(value)}")
    if _TS_RE.match(value):  # fast path for our own format
        return datetime.strptime(value, _TS_FORMAT).replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except (TypeError, ValueError):
        raise InvalidRecord(field_name, f"not an ISO-8601 timestamp: {_short(value)}") from None
    if parsed.tzinfo is None:
        raise InvalidRecord(
            field_name, f"timestamp {_short(value)} has no zone; add Z or an offset"
        )
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-05:00 is in the year 10000 in UTC
        raise InvalidRecord(
            field_name, f"out of range: {_short(value)} is past year 9999 (or before 1) in UTC"
        ) from None


_WINDOW_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)\s*$", re.IGNORECASE)
_WINDOW_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
#: The longest window ``parse_window`` accepts: 100 years (36,525 days).
MAX_WINDOW = timedelta(days=36_525)


def parse_window(value: str) -> timedelta:
    """Parse a relative window such as ``90d``, ``24h``, ``30m`` or ``2w`` into a timedelta.

    At most ``MAX_WINDOW`` (100 years): a longer one is an InvalidRecord, not an OverflowError.
    """
    match = _WINDOW_RE.match(value) if isinstance(value, str) else None
    if not match:
        raise InvalidRecord(
            "window", f"expected a number and a unit (s, m, h, d, w), got {_short(value)}"
        )
    seconds = float(match.group(1)) * _WINDOW_UNITS[match.group(2).lower()]
    if not seconds <= MAX_WINDOW.total_seconds():  # also inf, from 400 digits
        raise InvalidRecord(
            "window", f"{_short(value.strip())} is longer than the limit of 100 years (36525d)"
        )
    return timedelta(seconds=seconds)


def parse_when(value: str, now: datetime | None = None) -> datetime:
    """A point in time given either as ISO-8601 with a zone or as a window back from now."""
    if isinstance(value, str) and _WINDOW_RE.match(value):
        try:
            return (now or utcnow()) - parse_window(value)
        except OverflowError:  # only with a ``now`` within 100 years of the year 1
            raise InvalidRecord("since", f"{value!r} reaches back before the year 1") from None
    return parse_ts(value, "since")


#: The one window grammar of every face (CLI, canned queries, dashboard, MCP, notebooks).
WINDOW_FORMS = "30s, 15m, 24h, 7d, 2w (decimals too: 1.5d), an ISO-8601 time with a zone, or all"
#: The start of the window ``all``: before every stored time.
ALL_TIME = "0001-01-01T00:00:00.000000Z"


def window_start(
    value: object, default: str = "7d", *, name: str = "since", now: datetime | None = None
) -> str:
    """The start of a window as stored text: ``value`` (or ``default`` when it is None or
    blank) in the grammar of ``WINDOW_FORMS``. InvalidRecord naming ``name`` and the accepted
    forms for anything else, so no face silently reads a typo as "no rows"."""
    if value is None or (isinstance(value, str) and not value.strip()):
        value = default
    if not isinstance(value, str):
        raise InvalidRecord(name, f"expected a window ({WINDOW_FORMS}), got {_short(value)}")
    text = value.strip()
    if text.lower() == "all":
        return ALL_TIME
    if _WINDOW_RE.match(text):
        try:
            return format_ts((now or utcnow()) - parse_window(text), name)
        except InvalidRecord as exc:
            raise InvalidRecord(name, str(exc).partition(": ")[2]) from None
        except OverflowError:
            raise InvalidRecord(name, f"{_short(text)} reaches back before the year 1") from None
    try:
        return format_ts(parse_ts(text, name), name)
    except InvalidRecord as exc:
        if "T" in text or "-" in text[1:]:  # a time, but a wrong one: say what is wrong with it
            raise InvalidRecord(
                name, f"{exc.args[0].partition(': ')[2]} (or use {WINDOW_FORMS})"
            ) from None
        raise InvalidRecord(name, f"{_short(text)} is not a window; use {WINDOW_FORMS}") from None


def _stamp(value: datetime | str, field_name: str) -> str:
    """A time in the canonical text form (text is taken as already canonical, as stored)."""
    if type(value) is datetime and value.tzinfo is UTC:  # the usual case, inlined
        return utc_text(value)
    return value if isinstance(value, str) else format_ts(value, field_name)


def idempotency_key(
    task_id: str,
    started_at: datetime | str,
    attempt: int,
    *,
    host: object = None,
    pid: object = None,
    scheduled_at: datetime | str | None = None,
) -> str:
    """The key of a record that carries none: SHA-256 of what tells two executions apart.

    That is the task id, the start to the microsecond, the attempt, the host (scrubbed, as the
    row stores it) and the pid when known, and the scheduled slot when known. Two workers, a
    slot re-run by hand or a scheduler that fires twice differ in start, host or pid, so they
    are two rows; the same execution read again (a re-run backfill or import) has the same
    fields, so it is one. Every input is a column of the row, so the key can be recomputed
    from a stored row (migration ``m003``). Times may be datetimes or canonical text.
    """
    # A host that is not text cannot be stored; its type stands in (str() of a deeply nested
    # value could recurse) and the record is refused later.
    where = "" if host is None else scrub_text(host) if isinstance(host, str) else repr(type(host))
    slot = "" if scheduled_at is None else _stamp(scheduled_at, "scheduled_at")
    text = (
        f"exec\x1f{task_id}\x1f{_stamp(started_at, 'started_at')}\x1f{attempt}\x1f{where}"
        f"\x1f{'' if pid is None else pid}\x1f{slot}"
    )
    return hashlib.sha256(text.encode()).hexdigest()


def live_key(span_id: str) -> str:
    """The idempotency key of an attempt recorded live: one per span, so two processes that
    start the same task in the same microsecond stay two rows (the span id is random)."""
    return hashlib.sha256(f"live\x1f{span_id}".encode()).hexdigest()


def _json_list(name: str, value: Any) -> tuple[Any, ...]:
    if value is None:
        return ()
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise InvalidRecord(name, f"expected a list, got {type(value).__name__}")
    return tuple(value)


_SCALARS = (str, int, bool, type(None))


def _check_jsonable(name: str, value: Any) -> None:
    if isinstance(value, dict) and all(
        type(k) is str and (type(v) in _SCALARS or (type(v) is float and math.isfinite(v)))
        for k, v in value.items()
    ):
        return  # the common flat case, without a trial json.dumps
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidRecord(name, f"not JSON-serialisable ({exc})") from None


@dataclass(frozen=True, slots=True)
class TaskExecution:
    """One attempt of one task: the row of ``task_executions``. Validated on construction."""

    task_slug: str
    started_at: datetime
    task_id: str = ""
    status: str = "success"
    trace_id: str = field(default_factory=new_trace_id)
    span_id: str = field(default_factory=new_span_id)
    parent_span_id: str | None = None
    attempt: int = 1
    retry_of: str | None = None
    scheduled_at: datetime | None = None
    idempotency_key: str = ""
    ended_at: datetime | None = None
    duration_ms: float | None = None
    error_type: str | None = None
    error_message: str | None = None
    stack_trace: str | None = None
    stack_hash: str | None = None
    memories_retrieved: int | None = None
    retrieval_sources: tuple[str, ...] = ()
    files_written: tuple[str, ...] = ()
    parents: tuple[Any, ...] = ()
    causes: tuple[Any, ...] = ()
    provenance: str = "live"
    host: str | None = None
    pid: int | None = None
    content: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        setter = object.__setattr__
        if not isinstance(self.task_slug, str) or not self.task_slug.strip():
            raise InvalidRecord("task_slug", "must be a non-empty string")
        if not self.task_id:
            setter(self, "task_id", self.task_slug)
        elif not isinstance(self.task_id, str):
            raise InvalidRecord("task_id", f"must be a string, got {type(self.task_id).__name__}")
        if self.status not in STATUSES:
            raise InvalidRecord(
                "status", f"must be one of {', '.join(STATUSES)}; got {self.status!r}"
            )
        if self.provenance not in PROVENANCES:
            raise InvalidRecord("provenance", f"must be one of {', '.join(PROVENANCES)}")
        check_trace_id(self.trace_id)
        check_span_id(self.span_id)
        if self.parent_span_id is not None:
            check_span_id(self.parent_span_id, "parent_span_id")
        if self.retry_of is not None:
            check_span_id(self.retry_of, "retry_of")
        if type(self.attempt) is not int or not 1 <= self.attempt <= MAX_INTEGER:
            raise InvalidRecord(
                "attempt", f"must be an integer >= 1 and <= 2**63-1, got {_short(self.attempt)}"
            )
        if self.pid is not None and (type(self.pid) is not int or not _INT64(self.pid)):
            raise InvalidRecord("pid", f"must be a 64-bit integer, got {_short(self.pid)}")
        _in_utc_range(_aware(self.started_at, "started_at"), "started_at")
        if self.ended_at is not None and (
            _in_utc_range(_aware(self.ended_at, "ended_at"), "ended_at") < self.started_at
        ):
            raise InvalidRecord("ended_at", "is before started_at")
        if self.scheduled_at is not None:
            _in_utc_range(_aware(self.scheduled_at, "scheduled_at"), "scheduled_at")
        if not self.idempotency_key:
            key = idempotency_key(
                self.task_id,
                self.started_at,
                self.attempt,
                host=self.host,
                pid=self.pid,
                scheduled_at=self.scheduled_at,
            )
            setter(self, "idempotency_key", key)
        if self.duration_ms is None and self.ended_at is not None:
            setter(self, "duration_ms", (self.ended_at - self.started_at).total_seconds() * 1000)
        if self.duration_ms is not None:
            if isinstance(self.duration_ms, bool) or not isinstance(self.duration_ms, int | float):
                raise InvalidRecord("duration_ms", "must be a number")
            if not 0 <= self.duration_ms <= MAX_DURATION_MS:  # NaN fails too; no float() of it
                raise InvalidRecord(
                    "duration_ms",
                    f"must be finite, >= 0 and <= {MAX_DURATION_MS:.0f}, "
                    f"got {_short(self.duration_ms)}",
                )
        if self.memories_retrieved is not None and (
            type(self.memories_retrieved) is not int
            or not 0 <= self.memories_retrieved <= MAX_INTEGER
        ):
            raise InvalidRecord(
                "memories_retrieved",
                f"must be an integer >= 0 and <= 2**63-1, got {_short(self.memories_retrieved)}",
            )
        for name in ("retrieval_sources", "files_written", "parents", "causes"):
            value = getattr(self, name)
            if not isinstance(value, tuple):
                setter(self, name, _json_list(name, value))
        if self.parents or self.causes:
            _check_jsonable("parents", list(self.parents))
            _check_jsonable("causes", list(self.causes))
        if not isinstance(self.attributes, Mapping):
            raise InvalidRecord(
                "attributes", f"must be a mapping, got {type(self.attributes).__name__}"
            )
        if self.attributes:
            _check_jsonable("attributes", dict(self.attributes))


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt ended: what ``finish`` writes to its row and to its span.

    One value flows from the recorder (or an integration) to the row and to the OpenTelemetry
    span, so both say the same thing. Empty fields leave the row's start values as they were.
    """

    status: str
    ended_at: datetime
    duration_ms: float | None  # None: computed from the row's start when written
    error_type: str | None = None
    error_message: str | None = None
    stack_trace: str | None = None
    stack_hash: str | None = None
    memories_retrieved: int | None = None
    retrieval_sources: tuple[str, ...] = ()
    files_written: tuple[str, ...] = ()
    attributes: Mapping[str, Any] = field(default_factory=dict)
    content: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES or self.status == "running":
            raise InvalidRecord("status", f"cannot finish with status {self.status!r}")
        _aware(self.ended_at, "ended_at")
        for name in ("retrieval_sources", "files_written"):
            value = getattr(self, name)
            if not isinstance(value, tuple):
                object.__setattr__(self, name, _json_list(name, value))
