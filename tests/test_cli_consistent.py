"""One way to give the database, one window grammar, one install hint, tables that fit, and
empty answers that say where the data is: the CLI as a new user meets it (issue 16)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from taskexec.cli import cli
from taskexec.cli.main import all_commands
from taskexec.cli.textable import fit, render
from taskexec.db.store import Store
from taskexec.model import WINDOW_FORMS, TaskExecution

ROOT = Path(__file__).resolve().parents[1]
#: Commands that take no database at all.
NO_DATABASE = {"probes", "metadata"}
#: Commands whose only argument is the database: it may come first, as with `datasette DB`.
DB_FIRST = {
    "init", "demo", "sweep", "prune", "serve", "mcp", "report", "notebooks", "doctor",
    "replay", "check", "watch", "export-otlp", "rollup", "schedule list",
}  # fmt: skip


def invoke(*args: object, env: dict[str, str] | None = None) -> click.testing.Result:
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def every_command() -> dict[str, click.Command]:
    """Every command, group subcommands as "group sub"."""
    found: dict[str, click.Command] = {}
    for name, command in all_commands().items():
        if isinstance(command, click.Group):
            for sub, subcommand in command.commands.items():
                found[f"{name} {sub}"] = subcommand
        else:
            found[name] = command
    return found


@pytest.fixture(scope="module")
def old_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Last year's results, backfilled: 2025-01-02 to 2025-03-30, nothing near now."""
    path = tmp_path_factory.mktemp("old") / "old.db"
    first = datetime(2025, 1, 2, 9, 0, tzinfo=UTC)
    records = []
    for day in range(0, 88, 3):
        start = first + timedelta(days=day)
        failed = day % 2 == 0
        records.append(
            TaskExecution(
                task_slug=("sync_inbox", "send_digest")[day % 2],
                started_at=start,
                ended_at=start + timedelta(seconds=2),
                status="failed" if failed else "success",
                error_type="ValueError" if failed else None,
                error_message="bad row" if failed else None,
            )
        )
    with Store(path) as store:
        store.append_many(records)
        assert store.data_range().last_started_at.startswith("2025-03-30")
    return path


# -- the database, the same way everywhere --------------------------------------------------


def test_every_command_takes_db_the_same_way():
    for name, command in every_command().items():
        if name in NO_DATABASE:
            continue
        opts = {opt for p in command.params for opt in p.opts}
        assert {"--db", "-d"} <= opts, f"taskexec {name} has no --db/-d"
        first = [p for p in command.params if isinstance(p, click.Argument)]
        if name in DB_FIRST:
            assert first and first[0].human_readable_name == "[DB]", name
        else:
            assert all(a.human_readable_name != "[DB]" for a in first), name


def test_first_argument_and_db_option_are_the_same(tmp_path):
    a = tmp_path / "a.db"
    assert invoke("init", "--db", a).exit_code == 0 and a.exists()
    assert invoke("init", a, "-d", a).exit_code == 0  # both, agreeing
    twice = invoke("sweep", a, "--db", tmp_path / "b.db")
    assert twice.exit_code == 2 and "two databases given" in twice.output
    env = invoke("sweep", env={"TASKEXEC_DB": str(a)})
    assert env.exit_code == 0 and "marked abandoned" in env.output
    merged = invoke("merge", a, "--into", tmp_path / "c.db")  # the older spelling still works
    assert merged.exit_code == 0, merged.output
    merged = invoke("merge", a, "-d", tmp_path / "c.db")
    assert merged.exit_code == 0 and "0 rows inserted" in merged.output
    exported = invoke("export-otlp", a)
    assert exported.exit_code == 0 and "exported 0 executions" in exported.output


def test_no_database_does_not_suggest_an_empty_one(tmp_path):
    missing = tmp_path / "typo.db"
    result = invoke("probe", "headline", "--db", missing)
    assert result.exit_code == 1 and not missing.exists()
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"Error: no database at {missing}: check the path")
    assert "taskexec init" not in line


# -- windows --------------------------------------------------------------------------------


@pytest.mark.parametrize("since", ["banana", "yesterday", "24", "1w2d", "2026-11-19"])
def test_probe_with_a_bad_window_is_one_line_and_fails(old_db, since):
    result = invoke("probe", "failure_rates", "--db", old_db, "-p", f"since={since}")
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith("Error: since: ") and WINDOW_FORMS in line


@pytest.mark.parametrize("since", ["2w", "1.5d", "90m", "30s", "all", "2025-03-01T00:00:00Z"])
def test_probe_reads_every_window_of_the_grammar(old_db, since):
    result = invoke("probe", "failure_rates", "--db", old_db, "-p", f"since={since}", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    if since in ("all", "2025-03-01T00:00:00Z"):
        assert {r["task_slug"] for r in rows} == {"sync_inbox", "send_digest"}
    else:
        assert rows == []


def test_empty_answer_says_where_the_data_is(old_db):
    span = "this database spans 2025-01-02 to 2025-03-30"
    empty = invoke("probe", "error_patterns", "--db", old_db)
    assert empty.exit_code == 0
    assert empty.output.startswith("(no rows: no runs since ") and span in empty.output
    zeros = invoke("probe", "headline", "--db", old_db)  # one row of zeros: said below it
    assert zeros.output.splitlines()[2].split()[0] == "0"
    assert zeros.output.splitlines()[-1].startswith("(no runs since ") and span in zeros.output
    as_json = invoke("probe", "error_patterns", "--db", old_db, "--json")
    assert json.loads(as_json.stdout) == [] and span in as_json.stderr
    found = invoke("probe", "error_patterns", "--db", old_db, "-p", "since=all")
    assert "ValueError" in found.output and "spans" not in found.output
    unwindowed = invoke("probe", "recent_failures", "--db", old_db, "-p", "task_slug=nope")
    assert unwindowed.output.strip() == "(no rows)"


# -- tables that fit ------------------------------------------------------------------------


def test_probe_table_fits_the_terminal(old_db):
    narrow = invoke("probe", "recent_failures", "--db", old_db, env={"COLUMNS": "80"})
    assert narrow.exit_code == 0
    table, note = narrow.output.splitlines()[:-1], narrow.output.splitlines()[-1]
    assert max(len(line) for line in table) <= 80
    assert table[0].split()[:4] == ["id", "started_at", "task_slug", "status"]
    assert note.startswith("(") and "more column" in note and "--json" in note
    wide = invoke("probe", "recent_failures", "--db", old_db, env={"COLUMNS": "250"})
    assert "more column" not in wide.output and "stack_hash" in wide.output.splitlines()[0]
    rates = invoke("probe", "failure_rates", "--db", old_db, "-p", "since=all")
    assert "100.0%" in rates.output and "0.0%" in rates.output  # rates as percentages


def test_fit_narrows_the_widest_first_and_drops_what_cannot_fit():
    assert fit([4, 30, 12], 40) == [4, 20, 12]  # only the widest gives way
    assert sorted(fit([40, 40, 40], 50)) == [15, 15, 16]  # then all of them, evenly
    assert fit([12] * 6, 40) == [10, 10, 10]  # none below ten: the rest is left out
    rows = [{"a": "x" * 50, "b": 1}]
    assert render(rows, width=20).splitlines()[2] == "x" * 16 + "…  1"


# -- missing extras: the same one-line hint everywhere --------------------------------------

#: A Python that behaves as if only taskexec's core were installed: every face's dependency
#: fails to import, as it does without the extras.
CORE_ONLY = """
import sys
BLOCKED = {"datasette", "datasette_dashboards", "yaml", "uvicorn", "mcp", "pydantic", "pandas",
           "matplotlib", "nbclient", "nbconvert", "nbformat", "ipykernel", "jupyterlab"}
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Blocker())
from taskexec.cli import cli
cli(sys.argv[1:], prog_name="taskexec")
"""


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (["serve"], "datasette"),
        (["metadata"], "datasette"),
        (["mcp"], "mcp"),
        (["report"], "notebooks"),
        (["notebooks"], "notebooks"),
    ],
)
def test_a_face_without_its_extra_gives_the_install_hint(old_db, args, extra):
    out = subprocess.run(
        [sys.executable, "-c", CORE_ONLY, *args, *([str(old_db)] if args != ["metadata"] else [])],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 1, out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(f"Error: taskexec {args[0]} needs ")
    assert line.endswith(f"comes with the {extra} extra: pip install 'taskexec[{extra}]'")
    assert out.stdout == ""


# -- the README ------------------------------------------------------------------------------


def test_readme_examples_use_the_default_database():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "tasks.db" not in readme  # the commands default to taskexec.db
    assert 'Recorder("taskexec.db")' in readme and "--into DB" not in readme
