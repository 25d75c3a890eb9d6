"""Each detection (one ``alert_*.sql`` probe) fires exactly once, then resolves.

Every case builds its rows around an injected ``now``, checks twice (one alert opened and one
message sent, then nothing new), then makes the finding go away (the missing run arrives, the
stuck run finishes, time moves past the window) and checks that the alert resolves with one
more message. Thresholds come from the probes' defaults or from a schedule's ``thresholds``.
Every check sends to a real HTTP sink on loopback through apprise's ``json://``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from taskexec.alerts.check import CheckResult, check
from taskexec.alerts.notify import Notifier
from taskexec.alerts.schedules import Schedule
from taskexec.cli.alerts import save_schedule
from taskexec.db import Store, awareness
from taskexec.errors import BadInput
from taskexec.model import TaskExecution, format_ts

MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)


class JsonSink:
    """An HTTP server on 127.0.0.1 that keeps the JSON body of every POST it receives."""

    def __init__(self, port: int = 0) -> None:
        self.posts: list[dict[str, Any]] = []
        self.paths: list[str] = []
        lock, posts, paths = threading.Lock(), self.posts, self.paths

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    posts.append(json.loads(body))
                    paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        """The apprise URL that posts here."""
        return f"json://127.0.0.1:{self.port}{path}"

    @property
    def titles(self) -> list[str]:
        return [p["title"] for p in self.posts]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink() -> Iterator[JsonSink]:
    server = JsonSink()
    yield server
    server.close()


@pytest.fixture
def notifier(sink: JsonSink) -> Notifier:
    return Notifier([sink.url()], base_url="https://tasks.example.org")


@pytest.fixture
def now() -> datetime:
    """The injected clock: close to the real one (a schedule made now dates from it)."""
    return datetime.now(UTC).replace(microsecond=0)


def run(
    store: Store,
    task: str,
    start: datetime,
    *,
    seconds: float = 1.0,
    status: str = "success",
    error: str | None = None,
    group: str | None = None,
    **fields: Any,
) -> TaskExecution:
    """Append one attempt; ``error`` ("Type: message") and ``group`` (its stack hash) for a
    failure."""
    error_type, _, message = (error or "").partition(": ")
    record = TaskExecution(
        task_slug=task,
        started_at=start,
        ended_at=None if status == "running" else start + timedelta(seconds=seconds),
        status=status,
        error_type=error_type or None,
        error_message=message or None,
        stack_hash=group,
        **fields,
    )
    store.append(record)
    return record


def schedule(store: Store, task: str, **fields: Any) -> None:
    """A schedule for ``task`` (default: once a week, so no missed run gets in the way)."""
    fields.setdefault("cron", None)
    if fields["cron"] is None:
        fields.setdefault("every_seconds", 7 * 86400.0)
    save_schedule(store, Schedule(task, **fields))


def opened(result: CheckResult, kind: str) -> list[dict[str, Any]]:
    return [a for a in result.opened if a["kind"] == kind]


def resolved(result: CheckResult, kind: str) -> list[dict[str, Any]]:
    return [a for a in result.resolved if a["kind"] == kind]


def only(result: CheckResult, kind: str) -> dict[str, Any]:
    """The single alert of ``kind`` that ``result`` opened."""
    (alert,) = opened(result, kind)
    return alert


# -- schedules ---------------------------------------------------------------------------------


def test_schedule_slots_in_its_time_zone_and_interval():
    paris = Schedule("report", cron="0 9 * * *", timezone="Europe/Paris")
    summer, winter = datetime(2026, 7, 1, tzinfo=UTC), datetime(2026, 1, 15, tzinfo=UTC)
    assert paris.next_after(summer) == datetime(2026, 7, 1, 7, 0, tzinfo=UTC)  # CEST
    assert paris.next_after(winter) == datetime(2026, 1, 15, 8, 0, tzinfo=UTC)  # CET
    every = Schedule("sync", every_seconds=600)
    assert every.next_after(summer) == summer + 10 * MINUTE
    assert every.tolerance_seconds(summer) == 60
    assert Schedule("fast", cron="*/1 * * * * */10").tolerance_seconds(summer) == 5


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"cron": "61 * * * *"}, "not a cron expression: '61 * * * *'"),
        ({"cron": "every day"}, "not a cron expression"),
        ({"cron": "0 3 * * *", "timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({}, "give a cron expression or an interval"),
        ({"cron": "0 3 * * *", "every_seconds": 60}, "not both"),
        ({"every_seconds": 0.5}, "the interval must be from 1 s"),
        ({"every_seconds": 60, "grace_seconds": -1}, "the grace must be"),
        ({"every_seconds": 60, "thresholds": {"bogus": 1}}, "unknown threshold(s) ['bogus']"),
    ],
)
def test_bad_schedules_are_clear_errors(fields, says):
    with pytest.raises(BadInput) as caught:
        Schedule("nightly", **fields)
    assert says in str(caught.value) and "nightly" in str(caught.value)


# -- missed runs ---------------------------------------------------------------------------------


def test_missed_run_fires_once_then_resolves_when_the_run_arrives(store, sink, notifier, now):
    schedule(store, "sync", every_seconds=600, grace_seconds=60)
    run(store, "sync", now - 30 * MINUTE)  # slots at -20 and -10 passed without a run

    first = check(store, now=now, notifier=notifier)
    alert = only(first, "missed")
    assert alert["task_slug"] == "sync" and alert["since"] == format_ts(now - 20 * MINUTE)
    assert "no run of sync since the slot at" in alert["title"]
    assert "last start: " + format_ts(now - 30 * MINUTE) in alert["detail"]
    assert (first.sent, first.open_now) == (1, 1)
    assert sink.titles == ["[taskexec] MISSED: sync"]

    again = check(store, now=now + 5 * MINUTE, notifier=notifier)  # another slot missed
    assert again.opened == [] and again.resolved == [] and again.sent == 0
    assert again.open_now == 1 and len(sink.posts) == 1

    run(store, "sync", now + 6 * MINUTE)
    back = check(store, now=now + 7 * MINUTE, notifier=notifier)
    assert [a["task_slug"] for a in resolved(back, "missed")] == ["sync"]
    assert back.open_now == 0 and back.sent == 1
    assert sink.titles[-1] == "[taskexec] RESOLVED MISSED: sync"
    assert sink.posts[-1]["type"] == "success" and sink.posts[0]["type"] == "failure"
    assert check(store, now=now + 8 * MINUTE, notifier=notifier).sent == 0
    assert len(sink.posts) == 2

    # missed again later: the same alert opens again (and is told again)
    later = check(store, now=now + 30 * MINUTE, notifier=notifier)
    assert only(later, "missed")["times_opened"] == 2
    (row,) = awareness.list_alerts(store)
    assert row["state"] == "open" and row["since"] == format_ts(now + 16 * MINUTE)
    assert len(sink.posts) == 3


def test_missed_cron_slots_across_a_gap_with_an_early_start(store, now):
    hour = now.replace(minute=0, second=0)
    schedule(store, "hourly", cron="0 * * * *", grace_seconds=300)
    # cron daemons start a little early: 10 s before the slot still counts for that slot
    run(store, "hourly", hour - 3 * HOUR - 10 * timedelta(seconds=1))
    assert opened(check(store, now=hour - 3 * HOUR + 20 * MINUTE), "missed") == []
    assert opened(check(store, now=hour - 2 * HOUR + 4 * MINUTE), "missed") == []  # grace

    alert = only(check(store, now=hour - 2 * HOUR + 6 * MINUTE), "missed")
    assert alert["since"] == format_ts(hour - 2 * HOUR)
    assert "0 * * * *, UTC" in alert["detail"]
    for late in (hour - HOUR + 30 * MINUTE, hour + 30 * MINUTE):  # a gap of three slots
        assert check(store, now=late).opened == []
    (row,) = awareness.schedules(store)
    assert row["expected_at"] == format_ts(hour - 2 * HOUR)

    run(store, "hourly", hour + 40 * MINUTE)
    assert resolved(check(store, now=hour + 41 * MINUTE), "missed")
    (row,) = awareness.schedules(store)
    assert row["expected_at"] == format_ts(hour + HOUR)


def test_missed_by_a_task_that_never_ran_resolves_when_its_schedule_goes(store, now):
    schedule(store, "weekly_digest", every_seconds=3600, grace_seconds=120)
    assert check(store, now=now + 30 * MINUTE).opened == []
    alert = only(check(store, now=now + HOUR + 5 * MINUTE), "missed")
    assert alert["task_slug"] == "weekly_digest" and "last start: never" in alert["detail"]
    assert check(store, now=now + HOUR + 6 * MINUTE).opened == []

    assert awareness.remove_schedule(store, "weekly_digest")
    assert resolved(check(store, now=now + HOUR + 7 * MINUTE), "missed")


# -- late starts ---------------------------------------------------------------------------------


def test_late_start_fires_once_per_run_with_per_task_grace(store, sink, notifier, now):
    schedule(store, "report", grace_seconds=60)  # this task allows a minute
    slot = now - 12 * MINUTE
    strict = run(store, "report", slot + 2 * MINUTE, scheduled_at=slot)  # 120 s late
    run(store, "export", slot + 2 * MINUTE, scheduled_at=slot)  # default grace: 300 s
    lax = run(store, "export", slot + 7 * MINUTE, scheduled_at=slot, host="worker-2")
    run(store, "export", slot + 9 * MINUTE, scheduled_at=slot, attempt=2)  # a retry: not late

    first = check(store, now=now, notifier=notifier)
    late = {a["alert_key"]: a for a in opened(first, "late")}
    assert set(late) == {strict.span_id, lax.span_id}
    assert (
        late[strict.span_id]["title"] == f"report started 120 s after its slot at {format_ts(slot)}"
    )
    assert late[strict.span_id]["since"] == format_ts(slot)
    assert late[lax.span_id]["detail"] == "allowed: 300 s; host worker-2"
    assert late[lax.span_id]["trace_id"] == lax.trace_id
    assert sorted(sink.titles) == ["[taskexec] LATE: export", "[taskexec] LATE: report"]

    assert check(store, now=now + MINUTE, notifier=notifier).opened == []
    assert len(sink.posts) == 2

    gone = check(store, now=now + DAY, notifier=notifier)  # the runs left the 24 h window
    assert {a["alert_key"] for a in resolved(gone, "late")} == set(late)
    assert sorted(sink.titles[2:]) == [
        "[taskexec] RESOLVED LATE: export",
        "[taskexec] RESOLVED LATE: report",
    ]


# -- stuck runs ----------------------------------------------------------------------------------


def test_stuck_runs_fire_once_and_resolve_when_they_finish_or_beat(store, sink, notifier, now):
    silent = run(store, "ingest", now - 3 * HOUR, status="running")  # > 2 h, no heartbeat
    quiet = run(store, "ingest", now - 20 * MINUTE, status="running")
    store.heartbeat([quiet.span_id], now - 10 * MINUTE)  # > 5 min since its last heartbeat
    alive = run(store, "ingest", now - 20 * MINUTE, status="running")
    store.heartbeat([alive.span_id], now - MINUTE)
    young = run(store, "ingest", now - HOUR, status="running")  # < 2 h, no heartbeat
    schedule(store, "crawl", thresholds={"stuck_seconds": 600})  # this task: 10 min
    crawl = run(store, "crawl", now - 11 * MINUTE, status="running")
    schedule(store, "etl", max_duration_seconds=300)  # twice its expected maximum: 10 min
    etl = run(store, "etl", now - 15 * MINUTE, status="running")
    schedule(store, "beats", thresholds={"heartbeat_seconds": 1200})
    patient = run(store, "beats", now - HOUR, status="running")
    store.heartbeat([patient.span_id], now - 10 * MINUTE)

    first = check(store, now=now, notifier=notifier)
    stuck = {a["alert_key"]: a for a in opened(first, "stuck")}
    assert set(stuck) == {silent.span_id, quiet.span_id, crawl.span_id, etl.span_id}
    assert alive.span_id not in stuck and young.span_id not in stuck
    assert patient.span_id not in stuck
    assert stuck[silent.span_id]["title"].endswith("with no heartbeat")
    assert stuck[quiet.span_id]["title"].endswith(
        f"has not sent a heartbeat since {format_ts(now - 10 * MINUTE)}"
    )
    assert stuck[silent.span_id]["since"] == format_ts(now - 3 * HOUR)
    assert sink.titles.count("[taskexec] STUCK: ingest") == 2

    assert check(store, now=now + MINUTE, notifier=notifier).opened == []

    store.finish(silent.span_id, status="failed", ended_at=now + 2 * MINUTE, duration_ms=None)
    store.heartbeat([quiet.span_id], now + 2 * MINUTE)
    back = check(store, now=now + 2 * MINUTE, notifier=notifier)
    assert {a["alert_key"] for a in resolved(back, "stuck")} == {silent.span_id, quiet.span_id}
    assert opened(back, "stuck") == []
    assert sink.titles.count("[taskexec] RESOLVED STUCK: ingest") == 2
    assert {a["alert_key"] for a in awareness.list_alerts(store, state="open")} >= {
        crawl.span_id,
        etl.span_id,
    }


# -- long runs -----------------------------------------------------------------------------------


def test_long_runs_against_the_schedule_or_the_tasks_p95(store, sink, notifier, now):
    schedule(store, "backup", max_duration_seconds=60)
    slow_backup = run(store, "backup", now - 20 * MINUTE, seconds=300)
    run(store, "backup", now - 10 * MINUTE, seconds=50)  # within the schedule's maximum
    schedule(store, "pdf", thresholds={"factor": 20})  # this task: 20x its p95
    for task in ("thumbs", "pdf"):
        for i in range(20):  # the task's history: 1 s runs, outside the window
            run(store, task, now - 3 * DAY + i * HOUR, seconds=1)
    slow_thumbs = run(store, "thumbs", now - 5 * MINUTE, seconds=10)
    run(store, "pdf", now - 5 * MINUTE, seconds=10)
    for i in range(5):  # too little history for a p95
        run(store, "tiny", now - 2 * DAY + i * HOUR, seconds=1)
    run(store, "tiny", now - 5 * MINUTE, seconds=100)

    first = check(store, now=now, notifier=notifier)
    long = {a["task_slug"]: a for a in opened(first, "long")}
    assert set(long) == {"backup", "thumbs"}
    assert long["backup"]["alert_key"] == slow_backup.span_id
    assert long["backup"]["title"] == "backup took 300 s"
    assert long["backup"]["detail"] == "longer than its schedule allows 60.0 s; status success"
    assert long["thumbs"]["alert_key"] == slow_thumbs.span_id
    assert long["thumbs"]["detail"] == "longer than 3x its p95 of 1000 ms; status success"
    assert sorted(sink.titles) == ["[taskexec] SLOW: backup", "[taskexec] SLOW: thumbs"]

    assert check(store, now=now + MINUTE, notifier=notifier).opened == []
    gone = check(store, now=now + DAY, notifier=notifier)
    assert {a["task_slug"] for a in resolved(gone, "long")} == {"backup", "thumbs"}
    assert sink.titles.count("[taskexec] RESOLVED SLOW: thumbs") == 1


def test_a_run_still_going_past_its_maximum_is_long(store, now):
    schedule(store, "render", max_duration_seconds=600)
    going = run(store, "render", now - 15 * MINUTE, status="running")
    alert = only(check(store, now=now), "long")
    assert alert["title"] == "render has been running for 900 s"
    assert alert["detail"].endswith("status running")
    assert check(store, now=now + MINUTE).opened == []
    store.finish(going.span_id, status="success", ended_at=now + 2 * MINUTE, duration_ms=None)
    assert check(store, now=now + 3 * MINUTE).opened == []  # the same run: still one alert


# -- new errors ----------------------------------------------------------------------------------


def test_new_error_fires_once_per_group_and_resolves_after_the_window(store, sink, notifier, now):
    run(store, "mailer", now - 2 * DAY)
    first_run = run(
        store,
        "mailer",
        now - 5 * MINUTE,
        status="failed",
        error="SMTPRecipientsRefused: rejected bob@example.com",
        group="a1b2c3d4e5f60718",
    )
    first = check(store, now=now, notifier=notifier)
    alert = only(first, "new_error")
    assert alert["task_slug"] == "mailer" and alert["alert_key"] == "a1b2c3d4e5f60718"
    assert alert["title"] == "new error in mailer: SMTPRecipientsRefused"
    assert alert["detail"] == "rejected <email> (1 so far)"  # scrubbed when recorded
    assert alert["since"] == format_ts(now - 5 * MINUTE)
    assert alert["trace_id"] == first_run.trace_id
    assert sink.titles == ["[taskexec] NEW ERROR: mailer"]

    # the same error again is not new; a different one is
    run(store, "mailer", now - MINUTE, status="failed", error="SMTPRecipientsRefused: x",
        group="a1b2c3d4e5f60718")  # fmt: skip
    assert check(store, now=now + MINUTE, notifier=notifier).opened == []
    run(store, "mailer", now + 3 * MINUTE, status="failed", error="TimeoutError: slow",
        group="ffff000011112222")  # fmt: skip
    second = only(check(store, now=now + 4 * MINUTE, notifier=notifier), "new_error")
    assert second["alert_key"] == "ffff000011112222"
    assert len(sink.posts) == 2

    gone = check(store, now=now + DAY, notifier=notifier)  # the first one left the window
    assert [a["alert_key"] for a in resolved(gone, "new_error")] == ["a1b2c3d4e5f60718"]
    assert sink.titles[-1] == "[taskexec] RESOLVED NEW ERROR: mailer"


# -- regressions ---------------------------------------------------------------------------------


def test_regressions_after_quiet_days_or_a_streak(store, sink, notifier, now):
    def history(task: str, group: str, successes: int, quiet: timedelta) -> TaskExecution:
        run(store, task, now - quiet, status="failed", error="KeyError: 'sku'", group=group)
        for i in range(successes):
            run(store, task, now - quiet + (i + 1) * (quiet - HOUR) / (successes + 1))
        return run(store, task, now - HOUR, status="failed", error="KeyError: 'sku'", group=group)

    back = history("billing", "0000000000000b11", 3, 10 * DAY)  # quiet for 10 days (> 7)
    schedule(store, "invoices", thresholds={"quiet_days": 30})
    history("invoices", "00000000000001f0", 3, 10 * DAY)  # this task: 30 quiet days needed
    schedule(store, "sync", thresholds={"streak": 3})
    streak = history("sync", "000000000005c0c0", 3, 10 * HOUR)  # this task: 3 successes
    history("pull", "000000000000f011", 3, 10 * HOUR)  # default streak: 20

    first = check(store, now=now, notifier=notifier)
    found = {a["task_slug"]: a for a in opened(first, "regression")}
    assert set(found) == {"billing", "sync"}
    assert found["billing"]["title"] == "error back in billing: KeyError"
    assert found["billing"]["detail"] == f"quiet since {format_ts(now - 10 * DAY)}; 'sku'"
    assert found["billing"]["since"] == format_ts(now - HOUR)
    assert found["billing"]["trace_id"] == back.trace_id
    assert found["sync"]["detail"].startswith("after 3 successes in a row")
    assert found["sync"]["span_id"] == streak.span_id
    assert {a["task_slug"] for a in opened(first, "new_error")} == {"sync", "pull"}
    assert sorted(t for t in sink.titles if "REGRESSION" in t) == [
        "[taskexec] REGRESSION: billing",
        "[taskexec] REGRESSION: sync",
    ]

    sent = len(sink.posts)
    assert check(store, now=now + MINUTE, notifier=notifier).opened == []
    assert len(sink.posts) == sent
    gone = check(store, now=now + DAY, notifier=notifier)
    assert {a["task_slug"] for a in resolved(gone, "regression")} == {"billing", "sync"}
    assert sink.titles.count("[taskexec] RESOLVED REGRESSION: billing") == 1


# -- failure-rate spikes -------------------------------------------------------------------------


def test_failure_spike_against_the_baseline(store, sink, notifier, now):
    for task, failing in (("fetch", {3}), ("steady", {1, 5, 9, 13})):
        for i in range(20):  # a week of baseline: 5% and 20% failures
            status = "failed" if i in failing else "success"
            run(store, task, now - 6 * DAY + i * 6 * HOUR, status=status)
    for minutes in (50, 40, 30, 20, 10, 5):  # the last hour: 4 of 6 and 1 of 6 fail
        when = now - minutes * MINUTE
        run(store, "fetch", when, status="failed" if minutes in (40, 30, 20, 10) else "success")
        run(store, "steady", when, status="failed" if minutes == 30 else "success")

    first = check(store, now=now, notifier=notifier)
    alert = only(first, "spike")
    assert alert["task_slug"] == "fetch" and alert["alert_key"] == "failure_rate"
    assert alert["title"] == "fetch fails 67% of attempts (usually 5%)"
    assert alert["detail"] == "4 of 6 attempts in the window failed"
    assert alert["since"] == format_ts(now - 40 * MINUTE)
    assert sink.titles == ["[taskexec] FAILING: fetch"]
    assert check(store, now=now + MINUTE, notifier=notifier).opened == []

    for minutes in range(1, 11):  # it recovers: successes only
        run(store, "fetch", now + minutes * MINUTE)
    gone = check(store, now=now + 55 * MINUTE, notifier=notifier)
    assert [a["task_slug"] for a in resolved(gone, "spike")] == ["fetch"]
    assert sink.titles == ["[taskexec] FAILING: fetch", "[taskexec] RESOLVED FAILING: fetch"]
