"""Tests of awareness (taskexec/alerts/, the alert_*.sql probes, `taskexec check/watch/schedule`).

Databases are built by hand around an injected ``now`` and ``check`` is called at chosen
times, so nothing sleeps; notifications go to real sinks on loopback (an HTTP server for
apprise's ``json://``, an aiosmtpd server for ``mailto://``).
"""
