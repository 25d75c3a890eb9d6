"""Run any command and record it: the library behind ``taskexec run -- CMD ARGS...``.

For cron, systemd timers, CI steps: anything that starts a process. The command's stdin and
stdout are inherited untouched; its stderr goes through a pipe so that its last lines can be
kept, and every byte read is written at once, unchanged, to the real stderr. What is recorded:
one attempt, ``running`` before the command starts, then the status from how it ended, the
duration, the last lines of stderr as the error message, host and pid, and the command line
(all scrubbed by ``db/rows.py`` like every other record).

How it ends, like a shell (and coreutils ``timeout``):

=================================  ===========  =============================================
the command                        exit code    status
=================================  ===========  =============================================
exits 0                            0            success
exits N > 0                        N            failed (cancelled after a forwarded INT/TERM)
killed by SIGINT / SIGTERM         128 + N      cancelled
killed by any other signal         128 + N      failed
runs past ``timeout``              124          timeout (SIGTERM, SIGKILL ``kill_after`` later)
is not found                       127          failed (also a missing #! interpreter)
is found but cannot be executed    126          failed
=================================  ===========  =============================================

Recording never changes the command's behaviour or its exit code: the recorder is fail-open
(an unusable database spools, see docs/recording.md) and every call into it is guarded again
here. Signals: SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent to this process are
forwarded to the command (to its process group, see ``_Child``); one this process inherited
as ignored stays ignored for the command too.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import select
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import FrameType
from typing import Any

from .. import scrub
from ..model import utcnow
from ..recorder import Recorder, Run

#: Bytes of stderr kept (the newest); the error message is cut from them.
TAIL_BYTES = 64 * 1024
#: Lines of stderr in the error message (the last ones).
TAIL_LINES = 20
#: The error message is at most this many characters (the end is kept).
MESSAGE_CHARS = 8_000
#: Seconds from SIGTERM to SIGKILL when ``timeout`` expires.
KILL_AFTER = 5.0
#: Seconds to keep copying stderr after the command ended, while a process it left behind
#: still holds the pipe open (a daemon, a background job). Then ``taskexec run`` exits.
STDERR_GRACE = 2.0
#: Seconds ``record_command`` gives the recorder to write the outcome at the end (a locked or
#: broken file: it goes to the spool instead).
CLOSE_TIMEOUT = 2.0
#: Seconds between heartbeats of a running command (so ``sweep`` tells long from dead).
HEARTBEAT = 60.0
#: Exit codes, as a shell and coreutils ``timeout`` use them.
EXIT_TIMEOUT, EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND = 124, 126, 127
#: Signals forwarded to the command.
FORWARDED = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
#: Signals a terminal sends to its whole foreground process group (the command has it).
_FROM_TERMINAL = (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP)
#: A child that ended by these (or exited non-zero after we forwarded one) was cancelled.
_CANCELLING = (signal.SIGINT, signal.SIGTERM)
_CHUNK = 64 * 1024
_NOT_ALNUM_RE = re.compile(r"[^a-z0-9]")
#: Option names whose next argument is a secret, when ``scrub`` does not list its own.
_SENSITIVE = ("password", "passwd", "passphrase", "secret", "token", "apikey", "auth")
_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_EXC_LINE_RE = re.compile(r"^([A-Za-z_][\w.]*)(?::|$)")
_TRACEBACK = "Traceback (most recent call last):"
_CHAINED = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)
#: Control characters shown as U+FFFD in the message (a NUL would end the text in SQLite).
_CONTROLS = {c: "\ufffd" for c in (*range(0x09), *range(0x0B, 0x20), 0x7F)}


@dataclass
class CommandResult:
    """How the command ended, and what was recorded about it."""

    exit_code: int  # what ``taskexec run`` exits with
    status: str  # the recorded status
    returncode: int | None = None  # Popen's: < 0 for a signal; None when it never started
    signal: str | None = None  # e.g. "SIGKILL", when a signal ended it
    timed_out: bool = False
    error_type: str | None = None
    error_message: str | None = None
    stack_trace: str | None = None  # a Python traceback found at the end of stderr
    stderr_bytes: int = 0  # everything the command wrote to stderr
    duration_s: float = 0.0
    attributes: dict[str, Any] = field(default_factory=dict)


def task_name(argv: Sequence[str]) -> str:
    """The default task name: the command's basename (``/opt/bin/backup.sh`` -> ``backup.sh``)."""
    return os.path.basename(argv[0].rstrip("/")) or argv[0] or "command"


def scheduled_minute(now: datetime | None = None) -> datetime:
    """``--scheduled-at auto``: now, rounded down to the minute (cron fires on minutes)."""
    return (now or utcnow()).replace(second=0, microsecond=0)


def command_line(argv: Sequence[str]) -> str:
    """The command as a shell would take it back (``shlex.join``), with the argument after an
    option named like a secret (``--password X``, ``--api-token X``) shown as ``<secret>``;
    scrubbed like any text when recorded (``--password=X`` is the scrubber's)."""
    shown = list(argv)
    for i, token in enumerate(argv[:-1]):
        if i and token.startswith("-") and "=" not in token and _secret_option(token):
            shown[i + 1] = "<secret>"
    return shlex.join(shown)


def _secret_option(token: str) -> bool:
    name = _NOT_ALNUM_RE.sub("", token.lower())
    names = getattr(scrub, "SENSITIVE_KEYS", _SENSITIVE)
    return len(name) > 2 and name.endswith(tuple(_NOT_ALNUM_RE.sub("", n) for n in names))


def run_command(
    recorder: Recorder | None,
    argv: Sequence[str],
    *,
    task: str | None = None,
    scheduled_at: datetime | None = None,
    timeout: float | None = None,
    kill_after: float = KILL_AFTER,
    stdin: int | None = None,
    stdout: int | None = None,
    stderr: int = 2,
    forward_signals: bool = True,
    close: bool = False,
) -> CommandResult:
    """Run ``argv``, pass its streams through and record the attempt in ``recorder``.

    ``stdin`` / ``stdout`` are file descriptors for the command (``None``: inherited);
    ``stderr`` is the descriptor its stderr is copied to as it comes. ``timeout`` in seconds
    sends SIGTERM, then SIGKILL ``kill_after`` seconds later (exit 124, status ``timeout``).
    ``forward_signals`` (main thread only) passes ``FORWARDED`` signals on to the command,
    which then gets a process group of its own unless a terminal is attached (see
    ``_Child``); without it the command is an ordinary child in our group. ``close`` closes
    the recorder (the outcome is committed or spooled) before the handlers are put back.
    Returns how the command ended; never raises because of the recording
    (``recorder=None`` records nothing).
    """
    argv = [os.fspath(a) for a in argv]
    if not argv:
        raise ValueError("no command given")
    cmdline = command_line(argv)
    child = _Child(argv, timeout, kill_after, stdin, stdout, stderr, forward_signals)
    # Handlers go in first: a signal that comes before the command starts is passed on as
    # soon as it does, and one that comes after it ended (while the outcome is written) is
    # ignored rather than cutting the recording short.
    previous = child.install() if forward_signals else {}
    try:
        run: Run | None = None
        if recorder is not None:
            name = task or task_name(argv)
            run = _guard(
                lambda: recorder.start(
                    name, scheduled_at=scheduled_at, attributes={"command": cmdline}
                )
            )
        result = child.run()
        result.attributes = {"command": cmdline, **result.attributes}
        if run is not None:
            _guard(lambda: _finish(run, result))
        if close and recorder is not None:
            _guard(lambda: recorder.close(CLOSE_TIMEOUT))
        return result
    finally:
        _restore(previous)


def record_command(
    db: str | os.PathLike[str],
    argv: Sequence[str],
    *,
    durable: bool = False,
    **options: Any,
) -> CommandResult:
    """``run_command`` with a ``Recorder`` on ``db`` made for it and closed after it (the
    outcome is committed, or spooled, before this returns). ``durable=True`` commits the
    running row before the command starts. A recorder that cannot even be made (it should
    not happen: it is fail-open) costs the record, never the run."""
    recorder: Recorder | None = None
    try:
        recorder = Recorder(db, durable=durable, heartbeat=HEARTBEAT)
    except Exception as exc:  # noqa: BLE001 - the command runs whatever the recorder does
        _warn(f"not recording this run ({exc})")
    return run_command(recorder, argv, close=True, **options)


# -- the child process ------------------------------------------------------------------------


class _Child:
    """Starts the command, copies its stderr, forwards signals, enforces the timeout.

    Process groups: when none of our stdin, stdout or stderr is a terminal (cron, systemd,
    CI, a pipeline) the command gets a process group of its own, and forwarded signals and
    the timeout's SIGTERM/SIGKILL go to that whole group, so a shell script's children stop
    with it (as with coreutils ``timeout`` and systemd). At a terminal the command stays in
    our group, so it can read the terminal and gets Ctrl-C from it directly; signals then go
    to the command alone, and SIGINT/SIGQUIT/SIGHUP are not sent a second time while we are
    the terminal's foreground group (the terminal sent them to the command already).
    """

    def __init__(
        self,
        argv: list[str],
        timeout: float | None,
        kill_after: float,
        stdin: int | None,
        stdout: int | None,
        stderr: int,
        forward_signals: bool,
    ) -> None:
        self.argv, self.timeout, self.kill_after = argv, timeout, kill_after
        self.stdin, self.stdout, self.out = stdin, stdout, stderr
        self.proc: subprocess.Popen[bytes] | None = None
        self.group = forward_signals and not any(_isatty(fd) for fd in (0, 1, 2))
        self.pending: list[int] = []  # signals that came before the command started
        self.cancelled = False  # an INT or TERM was forwarded
        self.reaped = False
        self.timed_out = False
        self.tail = bytearray()
        self.total = 0
        self.truncated = False
        self.discard = False  # our stderr is gone (EBADF): keep draining, drop the bytes
        self.broken = False  # our stderr's reader went away (EPIPE)

    # -- running ----------------------------------------------------------------------------

    def run(self) -> CommandResult:
        t0 = time.monotonic()
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=self.stdin,
                stdout=self.stdout,
                stderr=subprocess.PIPE,
                bufsize=0,
                close_fds=False,  # fds we inherited pass on, as from a shell; ours are CLOEXEC
                process_group=0 if self.group else None,
            )
        except OSError as exc:
            return self._not_started(exc, time.monotonic() - t0)
        for signum in self.pending:
            self._forward(signum, terminal_saw_it=False)  # it came before the command did
        try:
            self._supervise(t0)
        except Exception as exc:  # noqa: BLE001 - the command's exit code must still come out
            _warn(f"lost track of the command's stderr ({exc!r})")
        return self._result(time.monotonic() - t0)

    def install(self) -> dict[int, Any]:
        """Our handler on every ``FORWARDED`` signal that is not ignored; the previous ones."""
        previous: dict[int, Any] = {}
        for signum in FORWARDED:
            try:
                current = signal.getsignal(signum)
                if current is signal.SIG_IGN:
                    continue  # ignored by whoever started us: the command inherits that
                signal.signal(signum, self._on_signal)
                previous[signum] = current
            except (ValueError, OSError):  # not the main thread, or not supported here
                continue
        return previous

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.proc is None:
            self.pending.append(signum)
        elif not self.reaped:  # after the end: ignored while the outcome is written
            self._forward(signum)

    def _forward(self, signum: int, terminal_saw_it: bool = True) -> None:
        if signum in _CANCELLING:
            self.cancelled = True
        if (
            terminal_saw_it
            and not self.group
            and signum in _FROM_TERMINAL
            and _terminal_foreground()
        ):
            return  # the terminal sent it to the command as well
        self._send(signum)

    def _send(self, signum: int) -> None:
        proc = self.proc
        if proc is None or self.reaped:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.group:
                os.killpg(proc.pid, signum)
            else:
                os.kill(proc.pid, signum)

    def _supervise(self, t0: float) -> None:
        """Copy stderr until EOF and wait for the command, minding the deadlines."""
        proc = self.proc
        assert proc is not None and proc.stderr is not None
        err = proc.stderr.fileno()
        poller = select.poll()
        poller.register(err, select.POLLIN)
        reading = True
        pidfd = _pidfd(proc.pid)
        if pidfd is not None:
            poller.register(pidfd, select.POLLIN)
        deadline = t0 + self.timeout if self.timeout is not None else None
        kill_at: float | None = None
        grace_until: float | None = None
        try:
            while True:
                now = time.monotonic()
                if not self.reaped and deadline is not None and now >= deadline:
                    self.timed_out, deadline = True, None
                    self._send(signal.SIGTERM)
                    kill_at = now + self.kill_after
                if not self.reaped and kill_at is not None and now >= kill_at:
                    kill_at = None
                    self._send(signal.SIGKILL)
                if not self.reaped and pidfd is None and proc.poll() is not None:
                    self.reaped = True
                if self.reaped:
                    if not reading:
                        return
                    if grace_until is None:
                        grace_until = now + STDERR_GRACE
                    elif now >= grace_until:
                        return  # a process the command left behind holds stderr open
                waits = [t for t in (deadline, kill_at, grace_until) if t is not None]
                wait = min(waits) - now if waits else None
                if not self.reaped and pidfd is None:  # no exit notification: look often
                    wait = 0.05 if wait is None else min(wait, 0.05)
                ready = poller.poll(None if wait is None else max(0, int(wait * 1000) + 1))
                for fd, _ in ready:
                    if fd == err:
                        if not self._copy(err):
                            poller.unregister(err)
                            reading = False
                    elif fd == pidfd:
                        poller.unregister(pidfd)
                        proc.wait()
                        self.reaped = True
        finally:
            if pidfd is not None:
                os.close(pidfd)
            with contextlib.suppress(OSError):
                proc.stderr.close()
            if not self.reaped:  # only after the grace, or an error: wait for the exit
                proc.wait()
                self.reaped = True

    def _copy(self, err: int) -> bool:
        """Move one chunk of stderr along; False at end of file."""
        try:
            chunk = os.read(err, _CHUNK)
        except OSError:
            return False
        if not chunk:
            return False
        self.total += len(chunk)
        self.tail += chunk
        if len(self.tail) > TAIL_BYTES:
            del self.tail[: len(self.tail) - TAIL_BYTES]
            self.truncated = True
        if not self.discard:
            self._write(chunk)
            if self.broken:
                # Nobody reads our stderr any more: stop reading the command's, so its next
                # write fails (EPIPE / SIGPIPE) just as it would have without us.
                if self.proc is not None and self.proc.stderr is not None:
                    with contextlib.suppress(OSError):
                        self.proc.stderr.close()
                return False
        return True

    def _write(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            try:
                view = view[os.write(self.out, view) :]
            except BlockingIOError:  # a non-blocking stderr: wait until it takes more
                select.select([], [self.out], [], 1.0)
            except BrokenPipeError:
                self.discard = True
                self.broken = True
                return
            except OSError:  # our stderr is closed (EBADF): drop, keep the command going
                self.discard = True
                return

    # -- the outcome ------------------------------------------------------------------------

    def _not_started(self, exc: OSError, elapsed: float) -> CommandResult:
        name = self.argv[0]
        if exc.errno == errno.ENOENT and not _exists(name):
            code, kind, text = EXIT_NOT_FOUND, "command not found", f"{name}: command not found"
        elif exc.errno == errno.ENOENT:  # it exists: its #! interpreter does not (bash: 127)
            code, kind = EXIT_NOT_FOUND, "bad interpreter"
            text = f"{name}: cannot execute: required file not found (its #! interpreter?)"
        else:
            code, kind = EXIT_CANNOT_EXECUTE, "cannot execute"
            text = f"{name}: cannot execute: {exc.strerror or exc}"
        _warn(text)
        return CommandResult(
            exit_code=code,
            status="failed",
            error_type=kind,
            error_message=text,
            duration_s=elapsed,
            attributes={"exit_code": code},
        )

    def _result(self, elapsed: float) -> CommandResult:
        proc = self.proc
        assert proc is not None
        rc = proc.returncode
        signame = _signal_name(-rc) if rc is not None and rc < 0 else None
        stack: str | None = None
        error_type: str | None
        if self.timed_out:
            code, status, error_type = EXIT_TIMEOUT, "timeout", "timeout"
            note = f"timed out after {_seconds(self.timeout)}"
        elif signame is not None:
            code = 128 - (rc or 0)
            status = "cancelled" if -(rc or 0) in _CANCELLING else "failed"
            error_type, note = signame, f"was killed by {signame}"
        elif rc == 0:
            code, status, error_type, note = 0, "success", None, ""
        else:
            code = rc if rc is not None else 1
            status = "cancelled" if self.cancelled else "failed"
            error_type, note = f"exit {code}", f"exited with status {code}"
        attributes: dict[str, Any] = {"exit_code": code}
        if signame is not None:
            attributes["signal"] = signame
        if self.timed_out:
            attributes["timeout_s"] = self.timeout
        attributes.update(child_pid=proc.pid, stderr_bytes=self.total)
        message = None
        if status != "success":
            lines = self._tail_lines()
            message = _cut("\n".join(lines[-TAIL_LINES:])) or f"{self.argv[0]} {note}"
            if status == "failed":
                stack, exc_type = _python_traceback("\n".join(lines))
                error_type = exc_type or error_type
        return CommandResult(
            exit_code=code,
            status=status,
            returncode=rc,
            signal=signame,
            timed_out=self.timed_out,
            error_type=error_type,
            error_message=message,
            stack_trace=stack,
            stderr_bytes=self.total,
            duration_s=elapsed,
            attributes=attributes,
        )

    def _tail_lines(self) -> list[str]:
        """The kept end of stderr as lines of text: decoded leniently, colour codes removed,
        a progress line (``\\r``) reduced to what it showed last, other control characters
        shown as U+FFFD, blank lines at either end dropped."""
        text = self.tail.decode("utf-8", errors="replace")
        lines = text.split("\n")
        if self.truncated and len(lines) > 1:
            lines = lines[1:]  # the first line was cut in the middle
        cleaned = []
        for line in lines:
            line = _ANSI_RE.sub("", line) if "\x1b" in line else line
            if "\r" in line:
                parts = [p for p in line.split("\r") if p.strip()]
                line = parts[-1] if parts else ""
            cleaned.append(line.translate(_CONTROLS).rstrip())
        while cleaned and not cleaned[-1]:
            cleaned.pop()
        while cleaned and not cleaned[0]:
            cleaned.pop(0)
        return cleaned


def _finish(run: Run, result: CommandResult) -> None:
    run.set(**result.attributes)
    run.finish(
        status=result.status,
        error_type=result.error_type,
        error_message=result.error_message,
        stack_trace=result.stack_trace,
    )


def _cut(text: str) -> str:
    """At most ``MESSAGE_CHARS`` characters: the end of ``text``."""
    return text if len(text) <= MESSAGE_CHARS else "…" + text[-(MESSAGE_CHARS - 1) :]


def _python_traceback(text: str) -> tuple[str | None, str | None]:
    """When stderr ends with a Python traceback: that traceback, with the exceptions chained
    to it (for the stack hash, so runs failing the same way group together), and its
    exception type; (None, None) otherwise."""
    start = text.rfind(_TRACEBACK)
    if start < 0:
        return None, None
    while text[:start].rstrip().endswith(_CHAINED):
        earlier = text.rfind(_TRACEBACK, 0, start)
        if earlier < 0:
            break
        start = earlier
    stack = text[start:].rstrip()
    match = _EXC_LINE_RE.match(stack.rsplit("\n", 1)[-1])
    if match is None:  # something else was written after it: not how the command ended
        return None, None
    return stack, match.group(1)


def _restore(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        with contextlib.suppress(ValueError, OSError, TypeError):
            signal.signal(signum, handler)


def _guard(fn: Callable[[], Any]) -> Any:
    """Call into the recorder; a problem there is one warning, never the command's failure."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - recording must not change the run
        _warn(f"recording problem: {exc}")
        return None


def _warn(text: str) -> None:
    with contextlib.suppress(Exception):
        sys.stderr.write(f"taskexec: {text}\n")
        sys.stderr.flush()


def _exists(name: str) -> bool:
    """The command file exists (a path, or a name found on PATH)."""
    if os.sep in name:
        return os.path.exists(name)
    import shutil  # only for a command that did not start

    return shutil.which(name) is not None


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def _terminal_foreground() -> bool:
    """True when this process's group is its terminal's foreground group."""
    for fd in (0, 1, 2):
        with contextlib.suppress(OSError):
            if os.isatty(fd):
                return os.tcgetpgrp(fd) == os.getpgrp()
    return False


def _pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when ``pid`` exits (Linux 5.3+), else None."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        fd: int = opener(pid)
    except OSError:
        return None
    return fd


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:g}s"
