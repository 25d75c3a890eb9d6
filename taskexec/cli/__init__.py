"""The ``taskexec`` command line: click commands that parse, call the library and print."""

from __future__ import annotations

from .main import cli

__all__ = ["cli"]
