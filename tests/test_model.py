"""The record validates its fields and names the one that is wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from taskexec import InvalidRecord, TaskExecution
from taskexec.model import (
    EPOCH,
    format_ts,
    from_unix_nanos,
    idempotency_key,
    new_span_id,
    new_trace_id,
    parse_ts,
    parse_when,
    parse_window,
    to_unix_nanos,
)

T0 = datetime(2025, 11, 5, 6, 0, tzinfo=UTC)


def test_defaults_and_derived_fields():
    r = TaskExecution(
        task_slug="daily_reflection", started_at=T0, ended_at=T0 + timedelta(seconds=2)
    )
    assert r.task_id == "daily_reflection"
    assert len(r.trace_id) == 32 and len(r.span_id) == 16
    assert r.duration_ms == 2000.0
    assert r.idempotency_key == idempotency_key("daily_reflection", T0, 1)


def test_idempotency_key_tells_executions_of_one_slot_apart():
    sched = T0 - timedelta(minutes=1)
    fields = {"task_slug": "x", "task_id": "t1", "started_at": T0, "scheduled_at": sched}
    same = TaskExecution(**fields, host="w1", pid=7)
    again = TaskExecution(**fields, host="w1", pid=7)  # the same execution read twice
    later = TaskExecution(**{**fields, "started_at": T0 + timedelta(seconds=5)}, host="w1", pid=7)
    other_host = TaskExecution(**fields, host="w2", pid=7)
    retry = TaskExecution(**fields, host="w1", pid=7, attempt=2)
    keys = [r.idempotency_key for r in (later, other_host, retry)]
    assert same.idempotency_key == again.idempotency_key
    assert len({same.idempotency_key, *keys}) == 4


def test_same_instant_in_other_zone_gives_same_key():
    other = T0.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert idempotency_key("t", T0, 1) == idempotency_key("t", other, 1)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"started_at": datetime(2025, 1, 1)}, "started_at"),
        ({"attempt": 0}, "attempt"),
        ({"attempt": -2}, "attempt"),
        ({"attempt": 1.5}, "attempt"),
        ({"trace_id": "ABC"}, "trace_id"),
        ({"trace_id": "0" * 32}, "trace_id"),
        ({"span_id": "zz" * 8}, "span_id"),
        ({"retry_of": "123"}, "retry_of"),
        ({"status": "exploded"}, "status"),
        ({"attributes": {"when": object()}}, "attributes"),
        ({"attributes": {"x": float("nan")}}, "attributes"),
        ({"duration_ms": -1}, "duration_ms"),
        ({"memories_retrieved": -3}, "memories_retrieved"),
        ({"files_written": "a.txt"}, "files_written"),
        ({"ended_at": T0 - timedelta(seconds=1)}, "ended_at"),
        ({"task_slug": ""}, "task_slug"),
    ],
)
def test_bad_fields_name_the_field(kwargs, field):
    base = {"task_slug": "x", "started_at": T0}
    base.update(kwargs)
    with pytest.raises(InvalidRecord) as info:
        TaskExecution(**base)
    assert info.value.field == field
    assert field in str(info.value)


def test_ids_are_w3c_shaped():
    for _ in range(100):
        assert len(new_trace_id()) == 32 and new_trace_id() != "0" * 32
        assert len(new_span_id()) == 16


def test_timestamp_format_sorts_as_text():
    a = format_ts(T0)
    b = format_ts(T0 + timedelta(microseconds=1))
    assert a == "2025-11-05T06:00:00.000000Z" and a < b and len(a) == len(b) == 27
    assert parse_ts(a) == T0
    assert parse_ts("2025-11-05T07:00:00+01:00") == T0
    with pytest.raises(InvalidRecord, match="no zone"):
        parse_ts("2025-11-05T06:00:00")


def test_windows():
    assert parse_window("90d") == timedelta(days=90)
    assert parse_window("24h") == timedelta(hours=24)
    assert parse_window("30m") == timedelta(minutes=30)
    now = datetime(2025, 1, 8, tzinfo=UTC)
    assert parse_when("7d", now) == datetime(2025, 1, 1, tzinfo=UTC)
    with pytest.raises(InvalidRecord):
        parse_window("soon")


def test_unix_nanos_round_trip_exactly():
    assert datetime(1970, 1, 1, tzinfo=UTC) == EPOCH and to_unix_nanos(EPOCH) == 0
    nanos = 1_762_322_400_123_456_789  # 2025-11-05T06:00:00.123456789Z
    when = from_unix_nanos(nanos)
    assert when == T0 + timedelta(microseconds=123_456)  # truncated to microseconds
    assert to_unix_nanos(when) == nanos - 789
    assert to_unix_nanos(T0.astimezone(timezone(timedelta(hours=5)))) == to_unix_nanos(T0)
