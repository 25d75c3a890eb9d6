"""The integrations fill the ``schedules`` table from what their scheduler knows: APScheduler's
cron and interval jobs (at ``connect`` and when a job is added later), Celery's
``beat_schedule`` (crontab and interval entries). No scheduler runs a job, no worker starts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from taskexec import Recorder
from taskexec.db import awareness

pytest.importorskip("croniter")


def schedules_of(recorder: Recorder) -> dict[str, dict[str, Any]]:
    return {row["task_slug"]: row for row in awareness.schedules(recorder.store)}


def report() -> None:
    pass


def cleanup() -> None:
    pass


def once() -> None:
    pass


def test_apscheduler_jobs_become_schedules(tmp_path: Path) -> None:
    pytest.importorskip("apscheduler")
    from apscheduler.schedulers.background import BackgroundScheduler

    from taskexec.integrations.apscheduler import connect, disconnect

    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(report, "interval", minutes=10, id="report")
    scheduler.add_job(
        cleanup,
        "cron",
        day_of_week="mon-fri",
        hour=6,
        minute=30,
        timezone="Europe/Paris",
        misfire_grace_time=900,
        id="cleanup",
        name="nightly-cleanup",
    )
    scheduler.add_job(once, "date", run_date=datetime.now(UTC) + timedelta(days=1), id="once")
    with Recorder(tmp_path / "tasks.db") as rec:
        connect(scheduler, rec)
        try:
            found = schedules_of(rec)
            assert set(found) == {"report", "nightly-cleanup"}  # the slugs of their runs
            interval = found["report"]
            assert (interval["cron"], interval["every_seconds"]) == (None, 600.0)
            assert interval["source"] == "apscheduler"
            assert interval["grace_seconds"] == 300.0
            cron = found["nightly-cleanup"]
            assert cron["cron"] == "30 6 * * 1,2,3,4,5"  # APScheduler's mon=0 is cron's 1
            assert cron["timezone"] == "Europe/Paris"
            assert cron["every_seconds"] is None
            assert cron["grace_seconds"] == 900.0
            assert cron["source"] == "apscheduler"

            scheduler.start(paused=True)  # a job added now is announced (EVENT_JOB_ADDED)
            scheduler.add_job(report, "cron", minute="*/15", id="later", name="later-job")
            scheduler.add_job(report, "cron", second="*/10", id="seconds", name="every-10s")
            found = schedules_of(rec)
            assert found["later-job"]["cron"] == "*/15 * * * *"
            assert found["later-job"]["timezone"] == "UTC"
            assert "every-10s" not in found  # not a 5-field cron expression
            assert "once" not in found
        finally:
            if scheduler.running:
                scheduler.shutdown(wait=False)
            disconnect(scheduler)


class BeatService:
    """What ``beat_init`` sends: an object with the app (celery.beat.Service)."""

    def __init__(self, app: Any) -> None:
        self.app = app


def test_celery_beat_schedule_becomes_schedules(tmp_path: Path) -> None:
    pytest.importorskip("celery")
    from celery import Celery, signals
    from celery.schedules import crontab

    from taskexec.integrations import celery as celery_integration
    from taskexec.integrations.celery import connect, disconnect

    app = Celery("t", broker="memory://")
    app.conf.timezone = "Europe/Paris"
    app.conf.beat_schedule = {
        "morning": {"task": "proj.tasks.morning", "schedule": crontab(minute=0, hour="7-9")},
        "weekly": {
            "task": "proj.tasks.weekly",
            "schedule": crontab(minute=15, hour=3, day_of_week="sun"),
        },
        "poll": {"task": "proj.tasks.poll", "schedule": timedelta(minutes=5)},
        "tick": {"task": "proj.tasks.tick", "schedule": 30.0},
    }
    with Recorder(tmp_path / "tasks.db") as rec:
        connect(rec, app)
        try:
            found = schedules_of(rec)
            assert set(found) == {
                "proj.tasks.morning",
                "proj.tasks.weekly",
                "proj.tasks.poll",
                "proj.tasks.tick",
            }
            assert found["proj.tasks.morning"]["cron"] == "0 7-9 * * *"
            assert found["proj.tasks.morning"]["timezone"] == "Europe/Paris"
            assert found["proj.tasks.weekly"]["cron"] == "15 3 * * sun"
            assert found["proj.tasks.poll"]["every_seconds"] == 300.0
            assert found["proj.tasks.tick"]["every_seconds"] == 30.0
            assert {row["source"] for row in found.values()} == {"celery-beat"}

            # an entry added after connect is saved when beat starts in this process
            app.conf.beat_schedule["late"] = {"task": "proj.tasks.late", "schedule": 3600}
            signals.beat_init.send(sender=BeatService(app))
            assert schedules_of(rec)["proj.tasks.late"]["every_seconds"] == 3600.0
        finally:
            celery_integration._BEAT.running = False  # this thread does not run beat
            disconnect(app)
