"""CLI: init, demo (deterministic, idempotent), sweep, prune, help everywhere, clean errors."""

from __future__ import annotations

import sqlite3

from click.testing import CliRunner

from taskexec.cli import cli
from taskexec.cli.main import all_commands

END = "2026-11-20T12:00:00Z"


def run(*args, env=None):
    result = CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False)
    return result


def test_help_on_every_command():
    top = run("--help")
    assert top.exit_code == 0
    for name, command in all_commands().items():
        result = run(name, "--help")
        assert result.exit_code == 0, name
        assert command.help and len(command.help.strip()) > 20, f"{name} needs a help text"


def test_init_and_env_default(tmp_path):
    path = tmp_path / "env.db"
    result = run("init", env={"TASKEXEC_DB": str(path)})
    assert result.exit_code == 0 and path.exists()


def test_demo_is_deterministic_and_idempotent(tmp_path):
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    first = run("demo", a, "--runs", 500, "--days", 5, "--seed", 3, "--end", END)
    assert first.exit_code == 0, first.output
    again = run("demo", a, "--runs", 500, "--days", 5, "--seed", 3)  # reuses the stored anchor
    assert "0 rows inserted" in again.output
    run("demo", b, "--runs", 500, "--days", 5, "--seed", 3, "--end", END)
    q = "SELECT idempotency_key, status, duration_ms FROM task_executions ORDER BY idempotency_key"
    rows_a = sqlite3.connect(a).execute(q).fetchall()
    assert rows_a == sqlite3.connect(b).execute(q).fetchall()
    conn = sqlite3.connect(a)
    n_runs = conn.execute("SELECT count(DISTINCT trace_id) FROM task_executions").fetchone()[0]
    assert n_runs == 500
    statuses = dict(
        conn.execute("SELECT status, count(*) FROM task_executions GROUP BY status").fetchall()
    )
    failed_share = (statuses.get("failed", 0) + statuses.get("timeout", 0)) / sum(statuses.values())
    assert 0.03 < failed_share < 0.25
    assert conn.execute("SELECT count(*) FROM task_executions WHERE attempt > 1").fetchone()[0] > 0
    assert (
        conn.execute("SELECT count(DISTINCT stack_hash) FROM task_executions").fetchone()[0] >= 10
    )


def test_sweep_and_prune(tmp_path):
    path = tmp_path / "p.db"
    run("demo", path, "--runs", 300, "--days", 10, "--end", "2020-01-10T00:00:00Z")
    sweep = run("sweep", path)
    assert sweep.exit_code == 0 and "marked abandoned" in sweep.output
    pruned = run("prune", path, "--older-than", "90d")
    assert pruned.exit_code == 0 and "deleted" in pruned.output
    assert sqlite3.connect(path).execute("SELECT count(*) FROM task_executions").fetchone()[0] == 0
    assert sqlite3.connect(path).execute("SELECT count(*) FROM error_groups").fetchone()[0] == 0


def test_errors_are_messages_not_tracebacks(tmp_path):
    result = CliRunner().invoke(cli, ["sweep", str(tmp_path / "missing.db")])
    assert result.exit_code == 1 and "no database" in result.output
    assert "Traceback" not in result.output
    bad = CliRunner().invoke(cli, ["prune", str(tmp_path / "x.db"), "--older-than", "soon"])
    assert bad.exit_code == 1 and "window" in bad.output
    naive = CliRunner().invoke(
        cli, ["demo", str(tmp_path / "y.db"), "--end", "2025-01-01T00:00:00"]
    )
    assert naive.exit_code == 1 and "no zone" in naive.output


def test_windows_and_numbers_are_bounded(tmp_path):
    db = tmp_path / "p.db"
    run("init", db)
    for window in ("99999999999d", "9" * 400 + "d", "36526d", "5300000w"):
        result = CliRunner().invoke(cli, ["prune", str(db), "--older-than", window])
        assert result.exit_code == 1, result.output
        assert "is longer than the limit of 100 years (36525d)" in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
    assert run("prune", db, "--older-than", "36525d").exit_code == 0
    assert run("sweep", db, "--older-than", "1e9d").exit_code == 1  # not a window at all
    for args, words in [
        (["demo", db, "--seed", "-1"], "--seed"),
        (["demo", db, "--seed", str(2**64)], "--seed"),
        (["demo", db, "--days", "0"], "--days"),
        (["demo", db, "--runs", "99999999999"], "--runs"),
        (["demo", db, "--end", "0001-01-10T00:00:00Z"], "reaches outside the years 1970 to 9998"),
        (["demo", db, "--end", "9999-12-31T23:59:59-05:00"], "out of range"),
        (["serve", db, "--port", "70000"], "--port"),
        (["report", db, "--window", "99999999999d"], "100 years"),
        (["backfill", tmp_path, "--db", db, "--since", "99999999999d"], "100 years"),
        (["export-otlp", "--db", db, "--since", "9999-12-31T23:59:59-05:00"], "out of range"),
    ]:
        result = CliRunner().invoke(cli, [str(a) for a in args])
        assert result.exit_code in (1, 2) and words in result.output, (args, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit), args


def test_an_unexpected_error_is_one_line(tmp_path, monkeypatch):
    from taskexec.db import Store

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(Store, "sweep", broken)
    db = tmp_path / "p.db"
    run("init", db)
    result = CliRunner().invoke(cli, ["sweep", str(db)])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: unexpected RuntimeError: disk on fire second line "
        "(set TASKEXEC_DEBUG=1 to see where)"
    )
    monkeypatch.setenv("TASKEXEC_DEBUG", "1")
    debug = CliRunner().invoke(cli, ["sweep", str(db)])
    assert isinstance(debug.exception, RuntimeError)  # the traceback, for whoever asked
