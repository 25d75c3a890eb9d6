"""The ``taskexec`` command line: click commands that parse, call the library and print.

``cli`` is the console script (``taskexec = "taskexec.cli:cli"``) and stands for the click
group ``main.cli`` in every other use (its attributes, ``cli.main(...)``, ``CliRunner``). Called
as the script with ``run`` first, it hands the arguments to ``run.fast_main``, which runs the
command without importing click (it is on every wrapped cron job's path) and leaves to the
group whatever it does not take (``--help``, a usage error).
"""

from __future__ import annotations

import gc
import os
import sys
from typing import TYPE_CHECKING, Any


def _group() -> Any:
    from .main import cli

    return cli


class _Script:
    """The click group, imported when first used, except for a plain ``taskexec run``."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not args and not kwargs and sys.argv[1:2] == ["run"] and not _completing():
            gc.disable()  # until the library is imported: see run.fast_main
            try:
                from .run import fast_main

                fast_main(sys.argv[2:], script=True)  # exits, unless click must take over
            finally:
                gc.enable()
        return _group()(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(_group(), name)

    def __repr__(self) -> str:
        return f"<taskexec.cli.cli: {_group()!r}>"


def _completing() -> bool:
    """Click's shell completion is asked for (``_TASKEXEC_COMPLETE=...``): click's to answer."""
    return any(name.startswith("_") and name.endswith("_COMPLETE") for name in os.environ)


if TYPE_CHECKING:
    from .main import cli
else:
    cli = _Script()

__all__ = ["cli"]
