"""CLI: init, demo (deterministic, idempotent), sweep, prune, help everywhere, clean errors."""

from __future__ import annotations

import sqlite3

from click.testing import CliRunner

from taskexec.cli import cli

END = "2026-11-20T12:00:00Z"


def run(*args, env=None):
    result = CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False)
    return result


def test_help_on_every_command():
    top = run("--help")
    assert top.exit_code == 0
    for name, command in cli.commands.items():
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
