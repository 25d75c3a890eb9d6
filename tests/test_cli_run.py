"""``taskexec run`` without click: the console script parses ``run``'s options itself (click
costs ~35 ms of every wrapped cron job's start) and must read them exactly as the click
command does, leaving to click every usage error, ``--help`` and any form it does not take.
The runs themselves are tested end to end in ``tests/integrations/test_command.py`` (through
``python -m taskexec run``, which takes this path)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from taskexec.cli import cli
from taskexec.cli import run as run_cli
from taskexec.config import ENV_VAR
from taskexec.errors import DatabaseError
from taskexec.integrations import command as command_lib

#: Words the property test builds argument lists from: every option in every spelling the
#: fast parser takes or refuses, values good and bad, and words that look like options.
WORDS = [
    *(flag for option in run_cli.OPTIONS for flag in option.flags),
    *(f"{option.flags[0]}={v}" for option in run_cli.OPTIONS for v in ("", "5s", "x")),
    "--",
    "-",
    "-h",
    "--help",
    "--version",
    "--tiemout",
    "-dfile.db",
    "-d=file.db",
    "-x",
    "--x=1",
    "5s",
    "0s",
    "1.5m",
    "soon",
    "auto",
    "2026-01-01T06:00:00Z",
    "2026-01-01T06:00:00",
    "9999-12-31T23:59:59-05:00",
    "*/15 * * * *",
    "",
    "true",
    "file.db",
    "a dir",
]


def click_params(args: list[str]) -> dict[str, Any] | None:
    """What the click command makes of ``args`` (None: a usage error, help or an exit)."""
    try:
        with run_cli.run.make_context("run", list(args)) as ctx:
            return dict(ctx.params)
    except (click.exceptions.Exit, click.UsageError):
        return None


def fast_params(args: list[str]) -> dict[str, Any] | None:
    try:
        return run_cli.parse(args)
    except run_cli.NotMine:
        return None


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a dir").mkdir()
    monkeypatch.delenv(ENV_VAR, raising=False)
    return tmp_path


@pytest.mark.parametrize(
    "args",
    [
        ["--", "true"],
        ["true", "--timeout", "-x"],
        ["--task", "t", "--db=x.db", "--timeout", "5s", "--kill-after=1s", "--durable", "true"],
        ["-d", "x.db", "--scheduled-at", "auto", "--schedule", "*/15 * * * *", "--", "--", "a"],
        ["--scheduled-at", "2026-01-01T06:00:00+02:00", "--task", "a", "--task", "b", "-", "x"],
        ["--task", "--", "true"],
        ["--db", "", "true"],
        ["--task=", "true"],
    ],
)
def test_the_fast_parser_reads_what_click_reads(in_tmp: Path, args: list[str]) -> None:
    expected = click_params(args)
    assert expected is not None
    assert fast_params(args) == expected


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--"],
        ["--task"],
        ["--task", "x"],
        ["-h"],
        ["--help", "true"],
        ["--tiemout", "5s", "--", "true"],
        ["--timeout", "soon", "true"],
        ["--timeout", "0s", "true"],
        ["--timeout=", "true"],
        ["--kill-after", "99999999999d", "true"],
        ["--scheduled-at", "2026-01-01T06:00:00", "true"],
        ["--scheduled-at", "9999-12-31T23:59:59-05:00", "true"],
        ["--durable=1", "true"],
        ["--db", "a dir", "true"],
        ["--version", "true"],
    ],
)
def test_usage_errors_and_help_are_left_to_click(in_tmp: Path, args: list[str]) -> None:
    assert click_params(args) is None
    with pytest.raises(run_cli.NotMine):
        run_cli.parse(args)


def test_the_database_comes_from_the_environment_as_with_click(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for value in ("env.db", "", "a dir"):
        monkeypatch.setenv(ENV_VAR, value)
        assert fast_params(["true"]) == click_params(["true"]), value
    assert fast_params(["-d", "x.db", "true"]) == click_params(["-d", "x.db", "true"])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(WORDS), max_size=7))
def test_any_arguments_are_read_as_click_reads_them_or_left_to_it(args: list[str]) -> None:
    """Whatever the fast parser takes, click takes the same way; it may leave more to click
    (``-dX``), never less (every usage error is click's)."""
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "a dir").mkdir()
        os.chdir(folder)
        try:
            fast = fast_params(args)
            if fast is not None:
                assert fast == click_params(args)
        finally:
            os.chdir(cwd)


def test_the_options_table_is_the_click_command_s() -> None:
    """One table drives both parsers; ``--db`` is ``_common.db_option``'s, checked here."""
    params = run_cli.run.params
    options = [p for p in params if isinstance(p, click.Option) and p.name != "help"]
    assert [(p.name, tuple(p.opts), tuple(p.secondary_opts)) for p in options] == [
        (o.dest, o.flags, ()) for o in run_cli.OPTIONS
    ]
    for param, option in zip(options, run_cli.OPTIONS, strict=True):
        assert param.is_flag == option.flag, option.dest
        default = param.default if isinstance(param.default, str) else None  # or click's UNSET
        assert default == option.default, option.dest
        assert param.envvar == option.envvar, option.dest
        is_file = isinstance(param.type, click.Path) and not param.type.dir_okay
        assert is_file == option.file, option.dest
        assert not param.multiple and not param.required
    (argument,) = [p for p in params if isinstance(p, click.Argument)]
    assert argument.name == "command" and argument.nargs == -1 and argument.required


@pytest.mark.parametrize(
    "error",
    [
        OSError(28, "No space left on device", "/x/runs.db"),
        DatabaseError("the file is broken"),
        RuntimeError("a bug"),
        KeyboardInterrupt(),
    ],
)
def test_an_unexpected_error_ends_as_with_click(
    in_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    error: BaseException,
) -> None:
    def fail(*args: Any, **kwargs: Any) -> None:
        raise error

    monkeypatch.setattr(command_lib, "record_command", fail)
    monkeypatch.delenv("TASKEXEC_DEBUG", raising=False)
    with pytest.raises(SystemExit) as fast:
        run_cli.fast_main(["--", "true"])
    fast_err = capsys.readouterr().err
    result = CliRunner().invoke(cli, ["run", "--", "true"])
    assert fast.value.code == result.exit_code == 1
    assert fast_err == result.stderr and fast_err.strip()


def test_a_bad_schedule_is_click_s_to_report(in_tmp: Path) -> None:
    assert run_cli.fast_main(["--schedule", "every day", "--", "true"]) is None  # nothing ran
    assert not (in_tmp / "taskexec.db").exists()
    result = CliRunner().invoke(cli, ["run", "--schedule", "every day", "--", "true"])
    assert result.exit_code == 2 and "--schedule" in result.stderr


def _imports_click(argv: list[str], tmp_path: Path) -> tuple[int, bool]:
    code = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: print('click' in sys.modules, file=sys.stderr))\n"
        "atexit.register(lambda: print('gc on:', gc.isenabled(), file=sys.stderr))\n"
        f"sys.argv = {['taskexec', *argv]!r}\n"
        "from taskexec.cli import cli\n"
        "cli()\n"
    )
    env = dict(os.environ, TASKEXEC_DB=str(tmp_path / "t.db"))
    env["TASKEXEC_SPOOL_DIR"] = str(tmp_path / "spool")
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert "gc on: True" in done.stderr  # the collector is off only while the library loads
    return done.returncode, done.stderr.strip().splitlines()[-1] == "True"


def test_the_console_script_runs_a_command_without_click(tmp_path: Path) -> None:
    assert _imports_click(["run", "--task", "t", "--", "sh", "-c", "exit 3"], tmp_path) == (
        3,
        False,
    )
    assert _imports_click(["run", "--help"], tmp_path) == (0, True)
    assert _imports_click(["run", "--timeout", "soon", "true"], tmp_path) == (2, True)
    assert _imports_click(["--version"], tmp_path) == (0, True)
