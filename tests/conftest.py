"""Shared fixtures: fresh database files and a small demo database built once per session."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from taskexec.db.store import Store
from taskexec.ingest.demo import generate

#: A fixed anchor so demo rows (and the assertions on them) are the same on every run.
DEMO_END = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A path for a new database file (not created yet)."""
    return tmp_path / "tasks.db"


@pytest.fixture
def store(db_path: Path):
    """A fresh, migrated store; closed after the test."""
    s = Store(db_path)
    yield s
    s.close()


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo database with 3,000 runs over 14 days, shared read-only by many tests."""
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    with Store(path) as s:
        s.append_many(generate(runs=3000, days=14, seed=7, end=DEMO_END))
    return path
