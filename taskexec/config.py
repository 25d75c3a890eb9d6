"""Settings read from the environment: where the database lives and the notebooks' window.

The database is ``$TASKEXEC_DB``, else ``taskexec.db`` in the current directory.
"""

from __future__ import annotations

import os

ENV_VAR = "TASKEXEC_DB"
DEFAULT_DB = "taskexec.db"
#: Environment variable with the notebooks' window length (``taskexec report --window`` sets it).
WINDOW_ENV = "TASKEXEC_WINDOW"
#: Environment variable naming the folder for spooled writes (default: the user's state folder).
SPOOL_ENV = "TASKEXEC_SPOOL_DIR"


def default_db(fallback: str = DEFAULT_DB) -> str:
    """The database path used when a command or notebook is given none: ``$TASKEXEC_DB``, else
    ``fallback`` (``taskexec.db``; the notebooks pass their demo database)."""
    return os.environ.get(ENV_VAR) or fallback
