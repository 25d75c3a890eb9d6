"""Scheduler integrations: one thin module per framework over the recording API
(``Recorder.start`` / ``Run.finish``, ``Recorder.finish_span``), each importing its framework
lazily, only inside that module, so ``import taskexec.integrations`` never loads one.

- ``taskexec.integrations.celery``: Celery, from its signals (``connect(recorder, app)``);
  ``taskexec[celery]``, docs/integrations.md.
- ``taskexec.integrations.rq``: RQ, a worker class / mixin; ``taskexec[rq]``.
- ``taskexec.integrations.apscheduler``: APScheduler 3.x, from its events;
  ``taskexec[apscheduler]``.
- ``taskexec.integrations.dramatiq``: Dramatiq, a broker middleware; ``taskexec[dramatiq]``.
- ``taskexec.integrations.huey``: Huey, from its signals; ``taskexec[huey]``.
- ``taskexec.integrations.arq``: arq, the worker's job hooks; ``taskexec[arq]``.
- ``taskexec.integrations.command``: any command (``taskexec run -- CMD``), for cron, systemd
  timers and CI; docs/integrations.md.

Each scheduler module derives an attempt's span id from the framework's job id and attempt
number (``model.derive_span_id``), so every process that sees the job agrees on it.
"""
