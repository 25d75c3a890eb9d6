"""Probe SQL: headers parse, every probe runs on the demo data with plausible numbers,
the same file runs unchanged in the sqlite3 shell, and the CLI prints it."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess

import pytest
from click.testing import CliRunner

from taskexec import probes
from taskexec.cli import cli
from taskexec.db import Store
from taskexec.errors import BadInput, UnknownProbe

WIDE = {"since": "2026-11-01T00:00:00Z"}  # the demo fixture covers 2026-11-06 .. 2026-11-20

EXPECTED = {
    "failure_rates",
    "duration_stats",
    "error_patterns",
    "new_errors",
    "retry_analysis",
    "retrieval_stats",
    "daily_trend",
    "recent_failures",
    "slowest_runs",
    "abandoned_runs",
    "headline",
    "error_trend",
}


def run(demo_db, name, **params):
    values = {
        **{k: v for k, v in WIDE.items() if k in {p.name for p in probes.get(name).params}},
        **params,
    }
    with Store.open_readonly(demo_db) as store:
        return store.run_probe(name, values).dicts()


def test_every_probe_has_a_header():
    names = {p.name for p in probes.all_probes()}
    assert names >= EXPECTED
    for p in probes.all_probes():
        assert p.title and p.title != p.name and len(p.description) > 30
        for param in p.params:
            assert param.description, f"{p.name}: param {param.name} needs a description"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_probe_runs_with_defaults_and_wide_window(demo_db, name):
    with Store.open_readonly(demo_db) as store:
        store.run_probe(name)  # defaults (relative to now): must not fail
    assert run(demo_db, name) is not None


def test_failure_rates_plausible(demo_db):
    rows = run(demo_db, "failure_rates")
    assert len(rows) == 8
    for r in rows:
        assert 0 <= r["failure_rate"] <= 1
        assert r["successes"] + r["failures"] + r["cancelled"] == r["attempts"]
        assert r["runs"] <= r["attempts"]


def test_duration_percentiles_ordered_and_exact(demo_db):
    rows = run(demo_db, "duration_stats")
    for r in rows:
        assert r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"] <= r["max_ms"]
    # Nearest-rank p95 for one task matches Python on the same rows, within the histogram's 1%.
    conn = sqlite3.connect(demo_db)
    slug = rows[0]["task_slug"]
    values = sorted(
        v
        for (v,) in conn.execute(
            "SELECT duration_ms FROM task_executions WHERE task_slug = ? AND started_at >= ? "
            "AND duration_ms IS NOT NULL",
            (slug, WIDE["since"]),
        )
    )
    import math

    want = values[math.ceil(0.95 * len(values)) - 1]
    assert abs(rows[0]["p95_ms"] - want) <= 0.01 * want
    assert rows[0]["runs"] == len(values)


def test_error_patterns_and_new_errors(demo_db):
    patterns = run(demo_db, "error_patterns", limit="5")
    assert 1 <= len(patterns) <= 5
    assert patterns == sorted(patterns, key=lambda r: -r["occurrences"])
    assert all(r["tasks_affected"] >= 1 and r["first_seen"] <= r["last_seen"] for r in patterns)
    new = run(demo_db, "new_errors", since="2026-11-19T00:00:00Z")
    assert new and all(r["first_seen"] >= "2026-11-19" for r in new)


def test_retry_analysis(demo_db):
    rows = run(demo_db, "retry_analysis")
    assert sum(r["retried_runs"] for r in rows) > 0
    for r in rows:
        assert r["attempts_per_run"] >= 1
        assert r["succeeded_after_retry"] + r["retried_never_succeeded"] <= r["retried_runs"]


def test_retrieval_daily_and_lists(demo_db):
    retrieval = {r["task_slug"]: r for r in run(demo_db, "retrieval_stats")}
    assert retrieval["daily_reflection"]["runs_with_retrieval"] > 0
    assert "semantic" in retrieval["daily_reflection"]["sources"]
    assert (
        retrieval["sync_inbox"]["runs_with_retrieval"] is None
        or retrieval["sync_inbox"]["runs_with_retrieval"] == 0
    )
    trend = run(demo_db, "daily_trend")
    assert len({r["day"] for r in trend}) >= 14
    assert all(r["p50_ms"] <= r["p95_ms"] for r in trend if r["p50_ms"] is not None)
    assert len(run(demo_db, "recent_failures", limit="7")) == 7
    slow = run(demo_db, "slowest_runs", limit="5")
    assert [r["duration_ms"] for r in slow] == sorted(
        (r["duration_ms"] for r in slow), reverse=True
    )
    assert all(r["task_slug"] for r in run(demo_db, "abandoned_runs"))
    (head,) = run(demo_db, "headline")
    assert head["attempts"] > 0 and 0 <= head["failure_rate"] <= 1


def test_bad_parameters(demo_db):
    with pytest.raises(BadInput, match="unknown parameter"):
        run(demo_db, "failure_rates", colour="blue")
    with pytest.raises(UnknownProbe, match="known probes"):
        probes.get("nope")


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="sqlite3 shell not installed")
def test_probe_runs_unchanged_in_sqlite3_shell(demo_db):
    sql = probes.get("failure_rates").portable_sql({"since": "2026-11-01T00:00:00Z"})
    assert "te_since" not in sql
    script = f"{sql};\n"
    out = subprocess.run(
        ["sqlite3", "-csv", str(demo_db)], input=script, capture_output=True, text=True, check=True
    )
    assert len(out.stdout.strip().splitlines()) == 8


def test_cli_probe_and_probes(demo_db):
    runner = CliRunner()
    listing = runner.invoke(cli, ["probes"])
    assert listing.exit_code == 0 and "failure_rates" in listing.output
    table = runner.invoke(
        cli, ["probe", "failure_rates", "--db", str(demo_db), "-p", "since=2026-11-01T00:00:00Z"]
    )
    assert (
        table.exit_code == 0
        and "failure_rate" in table.output
        and "daily_reflection" in table.output
    )
    bad = runner.invoke(cli, ["probe", "nope", "--db", str(demo_db)])
    assert bad.exit_code == 1 and "known probes" in bad.output


def test_numeric_parameters_given_as_text_count(demo_db):
    """Forms and `--param` give text: '1' must mean 1, not a string that no number reaches."""
    now = "2026-11-20T12:00:00Z"
    as_text = run(
        demo_db, "alert_failure_spikes", now=now, min_attempts="1", window_seconds="86400"
    )
    as_number = run(demo_db, "alert_failure_spikes", now=now, min_attempts=1, window_seconds=86400)
    assert as_text == as_number
    late = run(demo_db, "alert_long_runs", now=now, factor="1", history="10")
    assert late and late == run(demo_db, "alert_long_runs", now=now, factor=1, history=10)
