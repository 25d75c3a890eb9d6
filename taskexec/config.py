"""Where the database lives when nobody says: ``$TASKEXEC_DB``, else ``taskexec.db`` here."""

from __future__ import annotations

import os

ENV_VAR = "TASKEXEC_DB"
DEFAULT_DB = "taskexec.db"


def default_db() -> str:
    """The database path used when a command or notebook is given none."""
    return os.environ.get(ENV_VAR) or DEFAULT_DB
