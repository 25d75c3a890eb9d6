"""Telling people: one apprise object for every notification URL (Slack, e-mail, Discord,
ntfy, Matrix, JSON webhooks...; see apprise's list of services), and the text of a message."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from ..errors import BadInput

#: Where the trace page lives when no base URL is given (``taskexec serve``'s default).
DEFAULT_BASE_URL = "http://127.0.0.1:8001"
BASE_URL_ENV = "TASKEXEC_BASE_URL"
NOTIFY_ENV = "TASKEXEC_NOTIFY"

_LABELS = {
    "missed": "MISSED",
    "late": "LATE",
    "stuck": "STUCK",
    "long": "SLOW",
    "new_error": "NEW ERROR",
    "regression": "REGRESSION",
    "spike": "FAILING",
}


def _apprise() -> Any:
    try:
        import apprise
    except ImportError:  # pragma: no cover - the alerts extra
        raise BadInput(
            "--notify", "notifications need the alerts extra: pip install 'taskexec[alerts]'"
        ) from None
    return apprise


class Notifier:
    """Sends alert messages to every configured URL; a URL apprise cannot use is a clear error
    up front, not a silent drop later."""

    def __init__(self, urls: Sequence[str], base_url: str | None = None) -> None:
        self.urls = [u for u in urls if u]
        self.base_url = (base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")
        self._apprise: Any = None
        if self.urls:
            apprise = _apprise()
            self._apprise = apprise.Apprise()
            for url in self.urls:
                if not self._apprise.add(url):
                    raise BadInput(
                        "--notify",
                        f"{_redact(url)} is not a notification URL apprise understands "
                        "(e.g. json://host/path, mailto://user:pass@host, slack://..., ntfy://...)",
                    )

    @property
    def active(self) -> bool:
        """Whether any URL was given."""
        return self._apprise is not None

    def trace_url(self, alert: Mapping[str, Any], database: str) -> str | None:
        """The trace page of the alert's run, when it has one."""
        trace = alert.get("trace_id")
        if not trace:
            return None
        return f"{self.base_url}/-/trace/{quote(str(trace))}?db={quote(database)}"

    def message(
        self, alert: Mapping[str, Any], database: str, *, resolved: bool = False
    ) -> tuple[str, str]:
        """(title, body) of the message about an alert opening or resolving."""
        label = _LABELS.get(str(alert["kind"]), str(alert["kind"]).upper())
        task = alert["task_slug"]
        if resolved:
            title = f"[taskexec] RESOLVED {label}: {task}"
            lines = [f"{alert['title']}", f"resolved at {alert.get('resolved_at')}"]
        else:
            title = f"[taskexec] {label}: {task}"
            lines = [str(alert["title"])]
            if alert.get("detail"):
                lines.append(str(alert["detail"]))
            if alert.get("since"):
                lines.append(f"since {alert['since']}")
        link = self.trace_url(alert, database)
        if link:
            lines.append(f"trace: {link}")
        lines.append(f"database: {database}")
        return title, "\n".join(lines)

    def send(self, alert: Mapping[str, Any], database: str, *, resolved: bool = False) -> bool:
        """Send one message to every URL; True when every service accepted it."""
        if self._apprise is None:
            return False
        apprise = _apprise()
        title, body = self.message(alert, database, resolved=resolved)
        kind = apprise.NotifyType.SUCCESS if resolved else apprise.NotifyType.FAILURE
        return bool(
            self._apprise.notify(
                title=title, body=body, notify_type=kind, body_format=apprise.NotifyFormat.TEXT
            )
        )


def _redact(url: str) -> str:
    """A URL for an error message, without the password it may carry."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"
