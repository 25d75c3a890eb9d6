"""The durable spool: scrubbed writes that could not reach the database wait here as JSON lines
and are replayed, in order, once it is usable again.

Where: ``$TASKEXEC_SPOOL_DIR``, else ``$XDG_STATE_HOME/taskexec/spool`` (``~/.local/state/...``),
one folder per database (its name plus a hash of its absolute path). Not beside the database:
the usual reasons a write fails (a read-only or missing folder, a full disk there) would stop
the spool too. When that folder cannot be written either, the system temp folder is used.

Each writing process appends to its own file (``<pid>-<start>.jsonl``) and holds an exclusive
``flock`` on it while it is open; a group is one flushed and synced write, so a crash loses at
most a torn last line (skipped on replay). A replayer takes a file only when it can get that
lock (its writer closed it or died), applies it in one transaction and deletes it; a line that
can never apply (bad data) goes to ``rejected.jsonl`` with the reason, for ``taskexec doctor``.
Replaying twice is harmless: inserts are idempotent and ``finish`` only closes running rows.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import SPOOL_ENV

REJECTED = "rejected.jsonl"


def state_home() -> Path:
    """``$XDG_STATE_HOME`` or ``~/.local/state``."""
    base = os.environ.get("XDG_STATE_HOME")
    return Path(base) if base else Path.home() / ".local" / "state"


def spool_dir(db_path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> Path:
    """The spool folder of one database (not created)."""
    absolute = os.path.abspath(os.fspath(db_path))
    digest = hashlib.sha256(absolute.encode()).hexdigest()[:12]
    name = f"{Path(absolute).name}-{digest}"
    if root is not None:
        return Path(root) / name
    env = os.environ.get(SPOOL_ENV)
    return (Path(env) if env else state_home() / "taskexec" / "spool") / name


def _temp_root() -> str:
    """``tempfile.gettempdir()``'s answer in the usual cases without importing ``tempfile``
    (with ``shutil``, ``bz2`` and ``lzma``: ~5 ms of every recording process's start, since
    the writer looks for pending spools when it starts): the first of ``TMPDIR``, ``TEMP``,
    ``TMP`` that is a writable folder, else ``/tmp``; anything unusual is tempfile's to say."""
    for name in ("TMPDIR", "TEMP", "TMP"):
        value = os.environ.get(name)
        if value and os.path.isdir(value) and os.access(value, os.W_OK | os.X_OK):
            return os.path.abspath(value)
    if os.name == "posix" and os.access("/tmp", os.W_OK | os.X_OK):
        return "/tmp"
    import tempfile

    return tempfile.gettempdir()


def _fallback_dir(db_path: str) -> Path:
    return spool_dir(db_path, Path(_temp_root()) / f"taskexec-spool-{os.getuid()}")


def spool_dirs(db_path: str | os.PathLike[str]) -> list[Path]:
    """Every folder a spool of this database may be in (the usual one, then the fallback)."""
    return [spool_dir(db_path), _fallback_dir(os.fspath(db_path))]


class SpoolWriter:
    """Appends operations for one database from this process; durable line by line."""

    def __init__(self, db_path: str) -> None:
        self.db_path = db_path
        self._file: Any = None
        self.path: Path | None = None
        self.pending = 0  # lines written by this process and not yet replayed

    def _open(self) -> None:
        last: OSError | None = None
        for folder in spool_dirs(self.db_path):
            try:
                folder.mkdir(parents=True, exist_ok=True, mode=0o700)
                path = folder / f"{os.getpid()}-{time.time_ns()}.jsonl"
                handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours until closed
                self._file = handle
                self.path = path
                return
            except OSError as exc:
                last = exc
        raise last or OSError("no spool folder")

    def write(self, lines: list[str]) -> None:
        """Append and sync JSON lines; raises OSError when no folder can take them."""
        if not lines:
            return
        if self._file is None:
            self._open()
        text = "\n".join(lines) + "\n"
        try:
            self._file.write(text)
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError:
            self.close()
            raise
        self.pending += len(lines)

    def close(self) -> None:
        """Close this process's file (the next write starts a new one)."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
        self._file = None
        self.path = None

    def forget(self) -> None:
        """After a fork: the parent's file belongs to the parent; start afresh."""
        self._file = None
        self.path = None
        self.pending = 0


@dataclass
class SpoolStatus:
    """What waits in a database's spool, and what was rejected and why."""

    folders: list[str] = field(default_factory=list)
    files: int = 0
    operations: int = 0
    oldest: float | None = None  # mtime of the oldest pending file
    rejected: list[dict[str, Any]] = field(default_factory=list)


def pending_files(db_path: str) -> list[Path]:
    """Spool files of this database, oldest first (some may still be open by their writer)."""
    found: list[Path] = []
    for folder in spool_dirs(db_path):
        try:
            found.extend(p for p in folder.iterdir() if p.suffix == ".jsonl" and p.name != REJECTED)
        except OSError:
            continue
    return sorted(found, key=_order)


def _order(path: Path) -> tuple[int, str]:
    """Oldest first, by the start time in the name (``<pid>-<ns>.jsonl``): unlike the file's
    mtime it survives copying the folder."""
    stamp = path.stem.rsplit("-", 1)[-1]
    return (int(stamp) if stamp.isdigit() else int(_mtime(path) * 1e9), path.name)


@contextlib.contextmanager
def taken(path: Path) -> Iterator[bool]:
    """Hold a spool file's lock for a replay: yields False when its writer still has it open
    (it replays its own file once the database works) or it is gone."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        yield True
    finally:
        handle.close()


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def read_ops(path: Path) -> Iterator[tuple[int, Any, str]]:
    """(line number, the line's JSON value or None when unreadable, raw line) of a file."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            if not line.endswith("\n"):  # torn last line of a crash: never completed
                return
            try:
                op = json.loads(line)
            except ValueError:
                yield number, None, line
                continue
            yield number, op, line


def reject(folder: Path, source: str, number: int, line: str, reason: str) -> None:
    """Keep a line that can never be applied, with why, where doctor will show it."""
    entry = {"source": source, "line": number, "reason": reason, "op": line.rstrip("\n")[:10000]}
    with contextlib.suppress(OSError), open(folder / REJECTED, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, ensure_ascii=False) + "\n")


def status(db_path: str) -> SpoolStatus:
    """Pending files and operations, and rejected lines, of one database's spool."""
    out = SpoolStatus()
    for folder in spool_dirs(db_path):
        if not folder.is_dir():
            continue
        out.folders.append(str(folder))
        with contextlib.suppress(OSError):
            rejected = folder / REJECTED
            if rejected.exists():
                for line in rejected.read_text(encoding="utf-8", errors="replace").splitlines():
                    with contextlib.suppress(ValueError):
                        out.rejected.append(json.loads(line))
    for path in pending_files(db_path):
        out.files += 1
        with contextlib.suppress(OSError):
            out.operations += sum(1 for _ in read_ops(path))
        mtime = _mtime(path)
        out.oldest = mtime if out.oldest is None else min(out.oldest, mtime)
    return out
