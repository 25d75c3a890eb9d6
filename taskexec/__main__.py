"""``python -m taskexec`` runs the CLI."""

from .cli import cli

cli()
