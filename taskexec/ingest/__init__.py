"""Filling the database from outside: result-file backfill, OTLP/JSON, merge, demo data."""
