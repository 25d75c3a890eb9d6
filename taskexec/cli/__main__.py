"""``python -m taskexec.cli``."""

from .main import cli

cli()
