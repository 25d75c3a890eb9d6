"""``taskexec run -- CMD``: real subprocesses through ``python -m taskexec run``.

Exit codes like a shell (0, 3, 128+N, 124 on --timeout, 127/126), stdin/stdout/stderr passed
through byte for byte (megabytes of stderr, binary stdout), signals forwarded, one row per run
with the status, the stderr tail and the command line (scrubbed), and an unusable database
that changes nothing about the command's exit code.
"""

from __future__ import annotations

import json
import os
import pty
import select
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from taskexec.integrations import command as command_lib

PY = sys.executable


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The database and the spool in the test's folder; bytecode written, as installed."""
    environ = dict(os.environ)
    environ["TASKEXEC_DB"] = str(tmp_path / "runs.db")
    environ["TASKEXEC_SPOOL_DIR"] = str(tmp_path / "spool")
    return environ


def taskexec_run(
    env: dict[str, str], *args: str, input: bytes | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    """``python -m taskexec run ARGS`` with stdin from ``input`` (or /dev/null), capturing
    stdout and stderr as bytes."""
    return subprocess.run(
        [PY, "-m", "taskexec", "run", *args],
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        env=env,
        timeout=timeout,
    )


def rows(env: dict[str, str]) -> list[dict[str, Any]]:
    conn = sqlite3.connect(env["TASKEXEC_DB"])
    conn.row_factory = sqlite3.Row
    try:
        found = [dict(r) for r in conn.execute("SELECT * FROM task_executions ORDER BY id")]
    finally:
        conn.close()
    for row in found:
        row["attributes"] = json.loads(row["attributes"] or "{}")
    return found


def only_row(env: dict[str, str]) -> dict[str, Any]:
    found = rows(env)
    assert len(found) == 1, found
    return found[0]


def py(code: str) -> list[str]:
    return [PY, "-c", code]


# -- exit codes and rows ------------------------------------------------------------------------


def test_exit_0_is_success(env: dict[str, str]) -> None:
    done = taskexec_run(env, "--", *py("print('hello')"))
    assert done.returncode == 0
    assert done.stdout == b"hello\n" and done.stderr == b""
    row = only_row(env)
    assert row["status"] == "success" and row["task_slug"] == Path(PY).name
    assert row["error_message"] is None and row["error_type"] is None
    assert row["attributes"]["exit_code"] == 0
    assert row["attributes"]["command"] == shlex.join([PY, "-c", "print('hello')"])
    assert row["host"] and row["pid"] and row["pid"] != row["attributes"]["child_pid"]
    assert row["duration_ms"] > 0 and row["ended_at"] >= row["started_at"]
    assert row["provenance"] == "live" and row["scheduled_at"] is None


def test_exit_3_is_failed_with_the_stderr_tail(env: dict[str, str]) -> None:
    code = (
        "import sys\n"
        "for i in range(30): print(f'line {i}', file=sys.stderr)\n"
        "print('to stdout')\n"
        "sys.exit(3)"
    )
    done = taskexec_run(env, "--task", "nightly-report", "--", *py(code))
    assert done.returncode == 3
    assert done.stdout == b"to stdout\n"
    assert done.stderr == b"".join(f"line {i}\n".encode() for i in range(30))
    row = only_row(env)
    assert row["task_slug"] == "nightly-report" and row["status"] == "failed"
    assert row["error_type"] == "exit 3" and row["stack_hash"]
    assert row["error_message"] == "\n".join(f"line {i}" for i in range(10, 30))  # last 20
    assert row["attributes"]["exit_code"] == 3
    assert row["attributes"]["stderr_bytes"] == len(done.stderr)


def test_a_failure_without_stderr_says_how_it_ended(env: dict[str, str]) -> None:
    done = taskexec_run(env, "--", "false")
    assert done.returncode == 1 and done.stderr == b""
    row = only_row(env)
    assert row["status"] == "failed" and row["error_message"] == "false exited with status 1"


def test_a_python_traceback_groups_by_its_frames(env: dict[str, str]) -> None:
    code = "import json\ndef load():\n    json.loads('{')\nload()"
    for _ in range(2):
        assert taskexec_run(env, "--task", "etl", "--", *py(code)).returncode == 1
    first, second = rows(env)
    assert first["error_type"] == second["error_type"] == "json.decoder.JSONDecodeError"
    assert first["stack_trace"].startswith("Traceback (most recent call last):")
    assert first["stack_hash"] == second["stack_hash"]
    assert (first["first_seen_error"], second["first_seen_error"]) == (1, 0)


def test_secrets_in_the_command_line_and_stderr_are_scrubbed(env: dict[str, str]) -> None:
    code = "import sys; print('mail alice@example.com failed from 10.1.2.3', file=sys.stderr)"
    argv = [*py(code + "; sys.exit(2)"), "bob@example.org", "--db-password", "hunter2", "x"]
    done = taskexec_run(env, "--", *argv)
    assert done.returncode == 2
    assert b"alice@example.com" in done.stderr  # the terminal sees it unchanged
    row = only_row(env)
    command = row["attributes"]["command"]
    assert "bob@example.org" not in command and "<email>" in command
    assert "hunter2" not in command and command.endswith("--db-password '<secret>' x")
    assert row["error_message"] == "mail <email> failed from <ip>"


# -- signals and timeouts -----------------------------------------------------------------------


def test_killed_by_a_signal_exits_128_plus_n(env: dict[str, str]) -> None:
    done = taskexec_run(env, "--", *py("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"))
    assert done.returncode == 128 + signal.SIGKILL == 137
    row = only_row(env)
    assert row["status"] == "failed" and row["error_type"] == "SIGKILL"
    assert row["attributes"]["signal"] == "SIGKILL" and row["attributes"]["exit_code"] == 137
    assert row["error_message"].endswith("was killed by SIGKILL")


def start_waiting(
    env: dict[str, str], *args: str, **popen: Any
) -> tuple[subprocess.Popen[bytes], int]:
    """``taskexec run`` of a child that prints ``ready PID`` once it runs (so taskexec's
    handlers are in place), then waits; returns after that line, with the child's pid."""
    child = "import os, time; print('ready', os.getpid(), flush=True); time.sleep(30)"
    popen.setdefault("stdin", subprocess.DEVNULL)
    proc = subprocess.Popen(
        [PY, "-m", "taskexec", "run", *args, "--", *py(child)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        **popen,
    )
    assert proc.stdout is not None
    ready, pid = proc.stdout.readline().split()
    assert ready == b"ready"
    return proc, int(pid)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_taskexec_run_is_forwarded(env: dict[str, str], signum: int) -> None:
    proc, _ = start_waiting(env)
    started = time.monotonic()
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=20)
    assert time.monotonic() - started < 10
    row = only_row(env)
    assert row["status"] == "cancelled"
    assert row["error_type"] == signal.Signals(signum).name
    if signum == signal.SIGTERM:
        assert proc.returncode == 143 and err == b""
    else:  # Python turns SIGINT into KeyboardInterrupt (its traceback), then dies by SIGINT
        assert proc.returncode == 130
        assert err.count(b"Traceback") == 1 and err.rstrip().endswith(b"KeyboardInterrupt")


def test_a_shell_script_stops_with_its_children(env: dict[str, str], tmp_path: Path) -> None:
    """The command has its own process group: a forwarded SIGTERM reaches the script's
    children too, as with coreutils timeout or systemd."""
    pidfile = tmp_path / "sleep.pid"
    script = f"sleep 30 & echo $! > {pidfile}; echo ready; wait"
    proc = subprocess.Popen(
        [PY, "-m", "taskexec", "run", "--", "sh", "-c", script],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    sleeper = int(pidfile.read_text())
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=20)
    assert proc.returncode == 143
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(sleeper):
        time.sleep(0.05)
    assert not _alive(sleeper)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (not reaped yet by init) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_at_a_terminal_the_command_shares_the_group(env: dict[str, str]) -> None:
    """With a terminal on stdin the command stays in taskexec's process group (it can read
    the terminal); a SIGTERM sent to taskexec run is still forwarded."""
    leader, follower = os.openpty()
    try:
        proc = subprocess.Popen(
            [
                PY,
                "-m",
                "taskexec",
                "run",
                "--",
                *py("import os, time; print(os.getpgrp(), flush=True); time.sleep(30)"),
            ],
            stdin=follower,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        assert proc.stdout is not None
        child_group = int(proc.stdout.readline())
        assert child_group == os.getpgid(proc.pid)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
        assert proc.returncode == 143
    finally:
        os.close(leader)
        os.close(follower)
    assert only_row(env)["status"] == "cancelled"


def test_ctrl_c_at_a_terminal_reaches_the_command_once(env: dict[str, str]) -> None:
    """The terminal sends SIGINT to its whole foreground group, the command included:
    taskexec run must not send it a second time."""
    code = (
        "import signal, time\n"
        "count = []\n"
        "signal.signal(signal.SIGINT, lambda *a: count.append(1))\n"
        "print('ready', flush=True)\n"
        "end = time.monotonic() + 1.0\n"
        "while time.monotonic() < end: time.sleep(0.02)\n"
        "print('count', len(count), flush=True)\n"
    )
    pid, leader = pty.fork()
    if pid == 0:  # the child: a session with the pty as its terminal, taskexec in front
        os.execve(PY, [PY, "-m", "taskexec", "run", "--", *py(code)], env)
    out = b""
    try:
        while b"ready" not in out:
            out += os.read(leader, 1024)
        os.write(leader, b"\x03")  # Ctrl-C
        while b"count" not in out or not out.endswith(b"\n"):
            ready, _, _ = select.select([leader], [], [], 10)
            assert ready, out
            out += os.read(leader, 1024)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(leader)
    assert b"count 1" in out, out
    assert os.waitstatus_to_exitcode(status) == 0
    assert only_row(env)["status"] == "success"  # it handled Ctrl-C and exited 0


def test_timeout(env: dict[str, str]) -> None:
    started = time.monotonic()
    done = taskexec_run(env, "--timeout", "1s", "--", "sleep", "30")
    elapsed = time.monotonic() - started
    assert done.returncode == 124
    assert 1.0 <= elapsed < 5, elapsed
    row = only_row(env)
    assert row["status"] == "timeout" and row["error_type"] == "timeout"
    assert row["task_slug"] == "sleep" and row["error_message"] == "sleep timed out after 1s"
    assert row["attributes"]["timeout_s"] == 1.0 and row["attributes"]["signal"] == "SIGTERM"
    assert 1000 <= row["duration_ms"] < 5000


def test_timeout_kills_a_command_that_ignores_sigterm(env: dict[str, str]) -> None:
    code = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: print('ignoring TERM', file=sys.stderr))\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)\n"
    )
    started = time.monotonic()
    done = taskexec_run(env, "--timeout", "1s", "--kill-after", "0.5s", "--", *py(code))
    assert done.returncode == 124 and time.monotonic() - started < 6
    row = only_row(env)
    assert row["status"] == "timeout" and row["attributes"]["signal"] == "SIGKILL"
    assert row["error_message"] == "ignoring TERM"


def test_bad_durations_and_times_are_usage_errors(env: dict[str, str]) -> None:
    for args in (["--timeout", "soon"], ["--timeout", "0s"], ["--scheduled-at", "yesterday"]):
        done = taskexec_run(env, *args, "--", "true")
        assert done.returncode == 2 and b"Traceback" not in done.stderr, args
    naive = taskexec_run(env, "--scheduled-at", "2026-01-01T06:00:00", "--", "true")
    assert naive.returncode == 2 and b"has no zone" in naive.stderr
    assert not Path(env["TASKEXEC_DB"]).exists()  # nothing ran, nothing recorded


def test_options_after_the_command_are_the_command_s(env: dict[str, str]) -> None:
    echo = py("import sys; print(sys.argv[1:])")
    done = taskexec_run(env, "--task", "t", *echo, "--timeout", "-x")
    assert done.returncode == 0 and done.stdout == b"['--timeout', '-x']\n"  # no -- needed
    typo = taskexec_run(env, "--tiemout", "5s", "--", "true")
    assert typo.returncode == 2 and b"No such option" in typo.stderr


# -- pass-through -------------------------------------------------------------------------------


def _maxrss_of(argv: list[str], env: dict[str, str]) -> tuple[int, bytes, int]:
    """Run ``argv``; return its exit code, its stderr and its peak RSS in KiB (the largest of
    it and the children it waited for)."""
    with open(os.devnull, "wb") as devnull:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=devnull, stderr=-1, env=env)
        assert proc.stderr is not None
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, err, usage.ru_maxrss


def test_megabytes_of_stderr_pass_through_byte_identical(env: dict[str, str]) -> None:
    # 5 MB of every byte value (not UTF-8), written in pieces of odd sizes, then exit 1.
    writer = (
        "import sys, random\n"
        "rnd = random.Random(7)\n"
        "left = {size}\n"
        "while left:\n"
        "    n = min(left, rnd.randrange(1, 200_000))\n"
        "    sys.stderr.buffer.write(rnd.randbytes(n)); left -= n\n"
        "sys.stderr.buffer.write(b'\\nlast words\\n'); sys.exit(1)\n"
    )
    size = 5 * 2**20
    expected = subprocess.run(
        py(writer.format(size=size)), stderr=subprocess.PIPE, check=False
    ).stderr
    assert len(expected) > size
    started = time.monotonic()
    code, err, rss_big = _maxrss_of(
        [PY, "-m", "taskexec", "run", "--", *py(writer.format(size=size))], env
    )
    elapsed = time.monotonic() - started
    assert code == 1 and err == expected
    assert elapsed < 15
    row = only_row(env)
    assert row["error_message"].endswith("last words")
    assert len(row["error_message"]) <= command_lib.MESSAGE_CHARS
    assert row["attributes"]["stderr_bytes"] == len(expected)
    # Memory stays bounded: 20 times more stderr costs no more than a few MB of peak RSS.
    code, _, rss_small = _maxrss_of(
        [PY, "-m", "taskexec", "run", "--", *py(writer.format(size=size // 20))], env
    )
    assert code == 1
    assert rss_big - rss_small < 4 * 1024, (rss_big, rss_small)


def test_binary_stdout_passes_through(env: dict[str, str]) -> None:
    code = "import sys; sys.stdout.buffer.write(bytes(range(256)) * 4096)"
    done = taskexec_run(env, "--", *py(code))
    assert done.returncode == 0 and done.stdout == bytes(range(256)) * 4096


def test_stdin_passes_through(env: dict[str, str]) -> None:
    data = b"line one\n\x00\xff binary\n" * 10_000
    done = taskexec_run(env, "--", "cat", input=data)
    assert done.returncode == 0 and done.stdout == data
    assert only_row(env)["task_slug"] == "cat"


def test_missing_and_unexecutable_commands(env: dict[str, str], tmp_path: Path) -> None:
    done = taskexec_run(env, "--", "no-such-command-here", "--flag")
    assert done.returncode == 127
    assert done.stderr == b"taskexec: no-such-command-here: command not found\n"
    script = tmp_path / "not-executable.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    denied = taskexec_run(env, "--", str(script))
    assert denied.returncode == 126
    assert denied.stderr.count(b"\n") == 1 and b"cannot execute" in denied.stderr
    interpreter = tmp_path / "bad-interpreter.sh"
    interpreter.write_text("#!/no/such/interpreter\necho hi\n")
    interpreter.chmod(0o755)
    bad = taskexec_run(env, "--", str(interpreter))
    assert bad.returncode == 127 and b"required file not found" in bad.stderr  # as bash 5
    missing, not_executable, bad_row = rows(env)
    assert bad_row["error_type"] == "bad interpreter"
    assert missing["status"] == "failed" and missing["error_type"] == "command not found"
    assert missing["error_message"] == "no-such-command-here: command not found"
    assert missing["attributes"]["exit_code"] == 127
    assert not_executable["error_type"] == "cannot execute"
    assert not_executable["attributes"]["exit_code"] == 126


def test_a_process_left_behind_holding_stderr_does_not_hold_taskexec(
    env: dict[str, str],
) -> None:
    started = time.monotonic()
    done = taskexec_run(env, "--", "sh", "-c", "sleep 30 >/dev/null & echo started >&2")
    assert done.returncode == 0 and done.stderr == b"started\n"
    assert time.monotonic() - started < command_lib.STDERR_GRACE + 4
    group = only_row(env)["attributes"]["child_pid"]
    os.killpg(group, signal.SIGKILL)  # the sleep left in the command's process group


# -- scheduling ---------------------------------------------------------------------------------


def test_scheduled_at_auto_and_iso(env: dict[str, str]) -> None:
    before = datetime.now(UTC).replace(second=0, microsecond=0)
    assert taskexec_run(env, "--scheduled-at", "auto", "--", "true").returncode == 0
    after = datetime.now(UTC).replace(second=0, microsecond=0)
    iso = "2026-03-01T07:30:00+01:00"
    assert taskexec_run(env, "--scheduled-at", iso, "--", "true").returncode == 0
    auto_row, iso_row = rows(env)
    stamp = auto_row["scheduled_at"]
    assert stamp.endswith(":00.000000Z")
    assert before <= datetime.fromisoformat(stamp.replace("Z", "+00:00")) <= after
    assert iso_row["scheduled_at"] == "2026-03-01T06:30:00.000000Z"


def test_scheduled_minute() -> None:
    now = datetime(2026, 5, 4, 3, 2, 59, 999_999, tzinfo=UTC)
    assert command_lib.scheduled_minute(now) == datetime(2026, 5, 4, 3, 2, tzinfo=UTC)


# -- recording never changes the run ------------------------------------------------------------


@pytest.mark.parametrize("problem", ["missing folder", "not a database"])
def test_an_unusable_database_changes_nothing(
    env: dict[str, str], tmp_path: Path, problem: str
) -> None:
    if problem == "missing folder":
        db = tmp_path / "no" / "such" / "folder" / "runs.db"
    else:
        db = tmp_path / "garbage.db"
        db.write_bytes(b"this is not SQLite\n" * 100)
    code = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(5)"
    done = taskexec_run(env, "--db", str(db), "--", *py(code))
    assert done.returncode == 5 and done.stdout == b"out\n"
    lines = done.stderr.decode().splitlines()
    assert "err" in lines and "Traceback" not in done.stderr.decode()
    assert [line for line in lines if line != "err"][0].startswith("taskexec: cannot write")
    spooled = list((tmp_path / "spool").rglob("*.jsonl"))
    assert spooled and "err" in spooled[0].read_text()


def test_running_row_is_in_the_file_while_the_command_runs(env: dict[str, str]) -> None:
    """Default mode: committed by the background writer within its flush interval (20 ms),
    while the command runs; --durable: before the command starts. Either way a run whose
    taskexec was killed leaves a running row, for ``taskexec sweep``."""
    for args in ((), ("--durable",)):
        proc, child = start_waiting(env, *args)

        def running(pid: int = proc.pid) -> list[dict[str, Any]]:
            return [r for r in rows(env) if r["status"] == "running" and r["pid"] == pid]

        try:
            found = running()
            if args:
                assert len(found) == 1  # committed before the command printed "ready"
            deadline = time.monotonic() + 5
            while not found and time.monotonic() < deadline:
                time.sleep(0.01)
                found = running()
            assert len(found) == 1, args
            assert found[0]["attributes"]["command"].startswith(PY)
        finally:
            proc.kill()  # taskexec run itself dies: the row stays running
            proc.wait(timeout=20)
            os.kill(child, signal.SIGKILL)  # orphaned; it holds our stdout pipe
            proc.communicate(timeout=20)
        assert len(running()) == 1


# -- the tail, in process -----------------------------------------------------------------------


def tail_of(data: bytes) -> list[str]:
    child = command_lib._Child(["x"], None, 1.0, None, None, 2, False)
    for start in range(0, len(data), 1000):
        piece = data[start : start + 1000]
        child.total += len(piece)
        child.tail += piece
        if len(child.tail) > command_lib.TAIL_BYTES:
            del child.tail[: len(child.tail) - command_lib.TAIL_BYTES]
            child.truncated = True
    return child._tail_lines()


def test_tail_cleans_progress_bars_colours_and_cut_lines() -> None:
    data = b"x" * 100_000 + b"\n\x1b[31mred error\x1b[0m\n 10%\r 50%\r100% done\n\n\xff\xfe bad\n\n"
    # the x line was cut by the 64 KiB window: dropped, not shown as a fragment
    assert tail_of(data) == ["red error", "100% done", "", "\ufffd\ufffd bad"]


def test_run_command_in_process_without_a_recorder(tmp_path: Path) -> None:
    out = tmp_path / "err.bin"
    with open(out, "wb") as sink:
        result = command_lib.run_command(
            None,
            ["sh", "-c", "echo one >&2; echo two >&2; exit 9"],
            stdin=subprocess.DEVNULL,
            stderr=sink.fileno(),
            forward_signals=False,
        )
    assert out.read_bytes() == b"one\ntwo\n"
    assert (result.exit_code, result.status, result.error_type) == (9, "failed", "exit 9")
    assert result.error_message == "one\ntwo"
    assert result.attributes["command"] == "sh -c 'echo one >&2; echo two >&2; exit 9'"


def test_python_traceback_takes_the_last_chain_and_only_at_the_end() -> None:
    first = 'Traceback (most recent call last):\n  File "a.py", line 1, in <module>\nValueError: x'
    chained = (
        "noise\nTraceback (most recent call last):\n  old\nOSError: earlier, handled\n"
        "more noise\n"
        f"{first}\n\nDuring handling of the above exception, another exception occurred:\n\n"
        'Traceback (most recent call last):\n  File "b.py", line 2, in <module>\nKeyError: k\n'
    )
    stack, kind = command_lib._python_traceback(chained)
    assert kind == "KeyError" and stack is not None and stack.startswith(first)
    assert command_lib._python_traceback(first + "\nretrying later ...") == (None, None)
    assert command_lib._python_traceback("plain failure") == (None, None)
