"""``check`` and its messages: what a message says (over a real JSON webhook and a real SMTP
server on loopback), the rate limit, retrying a failed send, and the commands ``taskexec
check``, ``watch`` and ``schedule`` run as a user would (exit codes, errors, nothing re-sent).
"""

from __future__ import annotations

import email
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from conftest import free_port

from taskexec.alerts.check import check
from taskexec.alerts.notify import Notifier
from taskexec.alerts.schedules import Schedule
from taskexec.cli.alerts import save_schedule
from taskexec.db import Store, awareness
from taskexec.errors import BadInput
from taskexec.model import TaskExecution, format_ts

from .test_detections import JsonSink

MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
BASE_URL = "https://tasks.example.org/ui"


class SmtpSink:
    """An SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []
        lock, sink = threading.Lock(), self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                message = email.message_from_bytes(envelope.content, policy=default_policy)
                with lock:
                    sink.messages.append(message)  # type: ignore[arg-type]
                    sink.recipients.append(list(envelope.rcpt_tos))
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=free_port())
        self.controller.start()

    def url(self) -> str:
        """apprise's plain SMTP (``mailto``, no TLS, no login) to this server."""
        return (
            f"mailto://127.0.0.1:{self.controller.port}"
            "?from=taskexec@example.com&to=ops@example.com"
        )

    def body(self, index: int) -> str:
        part = self.messages[index].get_body(("plain",))
        assert part is not None
        return str(part.get_content()).replace("\r\n", "\n").strip()

    def close(self) -> None:
        self.controller.stop()


@pytest.fixture
def sink() -> Iterator[JsonSink]:
    server = JsonSink()
    yield server
    server.close()


@pytest.fixture
def mailbox() -> Iterator[SmtpSink]:
    server = SmtpSink()
    yield server
    server.close()


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def failure(store: Store, task: str, start: datetime, error: str, group: str) -> TaskExecution:
    error_type, _, message = error.partition(": ")
    record = TaskExecution(
        task_slug=task,
        started_at=start,
        ended_at=start + timedelta(seconds=2),
        status="failed",
        error_type=error_type,
        error_message=message,
        stack_hash=group,
    )
    store.append(record)
    return record


# -- the message -----------------------------------------------------------------------------


def test_message_says_what_to_which_task_since_when_and_links_the_trace(store, sink, mailbox, now):
    bad = failure(
        store,
        "mailer",
        now - 5 * MINUTE,
        "SMTPRecipientsRefused: could not deliver to bob@example.com: mailbox full",
        "a1b2c3d4e5f60718",
    )
    notifier = Notifier([sink.url(), mailbox.url()], base_url=BASE_URL + "/")
    result = check(store, now=now, notifier=notifier)
    assert result.fired and result.sent == 1 and result.failed == 0

    link = f"{BASE_URL}/-/trace/{bad.trace_id}?db=tasks"
    expected = "\n".join(
        [
            "new error in mailer: SMTPRecipientsRefused",
            "could not deliver to <email>: mailbox full (1 so far)",
            f"since {format_ts(now - 5 * MINUTE)}",
            f"trace: {link}",
            "database: tasks",
        ]
    )
    (post,) = sink.posts
    assert post["title"] == "[taskexec] NEW ERROR: mailer"
    assert post["type"] == "failure"
    assert post["message"] == expected
    assert sink.paths == ["/hook"]

    (mail,) = mailbox.messages
    assert mail["Subject"] == "[taskexec] NEW ERROR: mailer"
    assert mail["From"] == "taskexec@example.com" and mailbox.recipients == [["ops@example.com"]]
    assert mailbox.body(0) == expected  # plain text: the <email> placeholder survives
    assert "bob@example.com" not in mailbox.body(0) + post["message"]

    assert check(store, now=now + MINUTE, notifier=notifier).sent == 0
    # a new notifier, as each `taskexec check` from cron makes (apprise spaces the messages of
    # one e-mail notifier 5.5 s apart)
    notifier = Notifier([sink.url(), mailbox.url()], base_url=BASE_URL)
    gone = check(store, now=now + DAY, notifier=notifier)
    assert [a["kind"] for a in gone.resolved] == ["new_error"] and gone.sent == 1
    assert sink.posts[1]["title"] == "[taskexec] RESOLVED NEW ERROR: mailer"
    assert sink.posts[1]["type"] == "success"
    assert sink.posts[1]["message"] == "\n".join(
        [
            "new error in mailer: SMTPRecipientsRefused",
            f"resolved at {format_ts(now + DAY)}",
            f"trace: {link}",
            "database: tasks",
        ]
    )
    assert mailbox.messages[1]["Subject"] == "[taskexec] RESOLVED NEW ERROR: mailer"
    assert len(sink.posts) == len(mailbox.messages) == 2


def test_missed_run_message_has_no_trace_and_says_since_when(store, sink, now):
    save_schedule(store, Schedule("nightly", cron="0 3 * * *", timezone="Europe/Paris"))
    store.append(TaskExecution(task_slug="nightly", started_at=now - 3 * DAY))
    check(store, now=now, notifier=Notifier([sink.url()], base_url=BASE_URL))
    (post,) = sink.posts
    assert post["title"] == "[taskexec] MISSED: nightly"
    lines = post["message"].splitlines()
    assert lines[0].startswith("no run of nightly since the slot at ")
    assert "(0 3 * * *, Europe/Paris); last start: " in lines[1]
    assert lines[2].startswith("since ") and lines[2][6:] in lines[0]
    assert lines[3] == "database: tasks" and "trace:" not in post["message"]


def test_resolutions_can_stay_quiet(store, sink, now):
    failure(store, "etl", now - MINUTE, "OSError: disk full", "00000000000000e1")
    notifier = Notifier([sink.url()])
    assert check(store, now=now, notifier=notifier, notify_resolved=False).sent == 1
    gone = check(store, now=now + DAY, notifier=notifier, notify_resolved=False)
    assert len(gone.resolved) == 1 and gone.sent == 0 and len(sink.posts) == 1


# -- rate limit and retries ----------------------------------------------------------------------


def test_more_than_five_alerts_for_one_task_in_an_hour_are_suppressed(store, sink, now):
    for i in range(7):
        failure(store, "flaky", now - (10 - i) * MINUTE, f"Error{i}: broke", f"{i:016x}")
    failure(store, "calm", now - 10 * MINUTE, "ValueError: once", "00000000000ca1a0")
    notifier = Notifier([sink.url()])

    first = check(store, now=now, notifier=notifier)
    kinds = sorted((a["task_slug"], a["kind"]) for a in first.opened)
    assert kinds == [("calm", "new_error")] + [("flaky", "new_error")] * 7 + [("flaky", "spike")]
    assert (first.sent, first.suppressed, first.failed) == (6, 3, 0)
    assert sink.titles.count("[taskexec] NEW ERROR: flaky") == 5
    assert sink.titles.count("[taskexec] NEW ERROR: calm") == 1  # the limit is per task
    notices = [a["notice"] for a in awareness.list_alerts(store, task_slug="flaky")]
    assert sorted(notices) == ["sent"] * 5 + ["suppressed"] * 3

    again = check(store, now=now + MINUTE, notifier=notifier)  # suppressed is not retried
    assert (again.sent, again.suppressed) == (0, 0) and len(sink.posts) == 6

    failure(store, "flaky", now + HOUR, "Error7: broke", f"{7:016x}")
    later = check(store, now=now + HOUR + MINUTE, notifier=notifier)  # an hour later: told
    assert [a["kind"] for a in later.opened] == ["new_error"]
    assert [a["kind"] for a in later.resolved] == ["spike"]  # suppressed: its end is too
    assert (later.sent, later.suppressed) == (1, 0) and len(sink.posts) == 7

    gone = check(store, now=now + DAY, notifier=notifier)
    assert len(gone.resolved) == 8  # only what was told is told resolved
    assert gone.sent == 6 and sink.titles.count("[taskexec] RESOLVED NEW ERROR: flaky") == 5


def test_a_failed_send_is_retried_at_the_next_check(store, now):
    port = free_port()  # nothing listens there yet: the sink is down
    failure(store, "sync", now - MINUTE, "ConnectionError: refused", "00000000000005c0")
    notifier = Notifier([f"json://127.0.0.1:{port}/hook"])

    down = check(store, now=now, notifier=notifier)
    assert down.fired and (down.sent, down.failed) == (0, 1)
    (alert,) = awareness.list_alerts(store)
    assert alert["notice"] == "failed"

    sink = JsonSink(port)
    try:
        up = check(store, now=now + MINUTE, notifier=notifier)
        assert up.opened == [] and (up.sent, up.failed) == (1, 0)
        assert sink.titles == ["[taskexec] NEW ERROR: sync"]
        assert check(store, now=now + 2 * MINUTE, notifier=notifier).sent == 0
        assert len(sink.posts) == 1
    finally:
        sink.close()


def test_bad_notification_urls_are_clear_errors():
    with pytest.raises(BadInput) as caught:
        Notifier(["notaurl://ops:hunter2@example.org"])
    message = str(caught.value)
    assert "--notify" in message and "not a notification URL apprise understands" in message
    assert "notaurl://***@example.org" in message and "hunter2" not in message
    assert not Notifier([]).active and Notifier([], base_url=None).base_url.startswith("http")


# -- the commands --------------------------------------------------------------------------------


def taskexec(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TASKEXEC_")}
    return subprocess.run(
        [sys.executable, "-m", "taskexec", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **(env or {})},
    )


def one_clear_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr + result.stdout
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: ")
    return line


def test_check_exits_1_when_fired_then_0_and_sends_nothing_again(db_path, sink):
    with Store(db_path) as store:
        bad = failure(
            store, "mailer", datetime.now(UTC) - 5 * MINUTE, "KeyError: 'to'", "00000000000000aa"
        )
    env = {"TASKEXEC_NOTIFY": sink.url(), "TASKEXEC_BASE_URL": BASE_URL}

    fired = taskexec("check", str(db_path), env=env)
    assert fired.returncode == 1, fired.stderr
    assert "FIRED     new_error  new error in mailer: KeyError" in fired.stdout
    assert fired.stdout.strip().endswith("1 fired, 0 resolved, 1 open; 1 message sent")
    (post,) = sink.posts
    assert f"{BASE_URL}/-/trace/{bad.trace_id}?db=tasks" in post["message"]

    again = taskexec("check", str(db_path), "--notify", sink.url())
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "0 fired, 0 resolved, 1 open"
    assert len(sink.posts) == 1

    watched = taskexec("watch", str(db_path), "--times", "2", "--every", "1s", env=env)
    assert watched.returncode == 0, watched.stderr
    assert watched.stdout.strip().endswith("0 fired, 0 resolved, 1 open")
    assert len(sink.posts) == 1


def test_check_errors_exit_2(db_path, tmp_path):
    Store(db_path).close()
    bad_url = taskexec("check", str(db_path), "--notify", "notaurl://x")
    assert bad_url.returncode == 2
    assert "notaurl://x is not a notification URL apprise understands" in one_clear_line(bad_url)
    missing = taskexec("check", str(tmp_path / "nope.db"))
    assert missing.returncode == 2 and "no database at" in one_clear_line(missing)


def test_schedule_add_list_remove_and_bad_input(db_path):
    bad_cron = taskexec("schedule", "add", "nightly", "--db", str(db_path), "--cron", "61 * * * *")
    assert bad_cron.returncode != 0
    assert "not a cron expression: '61 * * * *'" in one_clear_line(bad_cron)
    bad_tz = taskexec("schedule", "add", "nightly", "--db", str(db_path), "--cron", "0 3 * * *",
                      "--tz", "Mars/Olympus")  # fmt: skip
    assert bad_tz.returncode != 0
    assert "unknown time zone 'Mars/Olympus'" in one_clear_line(bad_tz)

    added = taskexec("schedule", "add", "nightly", "--db", str(db_path), "--cron", "0 3 * * *",
                     "--tz", "Europe/Paris", "--grace", "10m", "--max-duration", "1h",
                     "--threshold", "factor=5")  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "nightly: 0 3 * * * (Europe/Paris), grace 600 s"
    with Store(db_path) as store:
        (row,) = awareness.schedules(store)
    assert (row["max_duration_seconds"], row["thresholds"]) == (3600, {"factor": 5})

    listed = taskexec("schedule", "list", "--db", str(db_path))
    assert listed.returncode == 0, listed.stderr
    assert "nightly" in listed.stdout and "Europe/Paris" in listed.stdout

    removed = taskexec("schedule", "remove", "nightly", "--db", str(db_path))
    assert removed.returncode == 0 and removed.stdout.strip() == "nightly: schedule removed"
    twice = taskexec("schedule", "remove", "nightly", "--db", str(db_path))
    assert twice.returncode == 1 and "no schedule for 'nightly'" in one_clear_line(twice)
