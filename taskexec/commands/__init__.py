"""Click commands, one module per face; ``taskexec.cli`` assembles them into one group."""
