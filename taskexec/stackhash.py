"""Versioned grouping fingerprint for errors: the same bug gets the same hash across deploys.

The hash covers the exception type and the in-app frames (file basename + function name) of
every exception in the cause/context chain, never line numbers or absolute paths, so a deploy
that only moves code keeps grouping stable. It is computed identically from a live exception and
from its formatted traceback text (e.g. imported later), and falls back to type + normalised
message when no frame is in-app. Bump ``HASH_VERSION`` whenever the recipe changes.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import sysconfig
import traceback
from dataclasses import dataclass, field
from functools import lru_cache
from types import TracebackType

from .scrub import scrub_text

HASH_VERSION = "v1"
_CHAIN = "<chained>"  # separator token between the exceptions of a chain
_FALLBACK = "<message>"  # marks the type + message recipe, so it can never collide with frames
_SEPARATORS = {  # the lines traceback prints between chained exceptions
    "The above exception was the direct cause of the following exception:",
    "During handling of the above exception, another exception occurred:",
}
_FRAME_RE = re.compile(r'^  File "(?P<path>.*)", line [^,]+, in (?P<name>.+)$')
_TYPE_RE = re.compile(r"^(?P<type>[^\s:]+)(?::(?: (?P<msg>.*))?)?$")
_NOT_APP_RE = re.compile(
    r"[\\/](?:site|dist)-packages[\\/]|[\\/]lib(?:64)?[\\/]python\d+(?:\.\d+)?[\\/]"
    r"|[\\/]python\d+\.zip[\\/]|\\Lib\\|^<frozen "
    # taskexec's own wrappers (recorder, store) are never the bug, installed or from a checkout
    r"|[\\/]taskexec[\\/](?:recorder|store|otel_live)\.py$"
)
_ADDR_RE = re.compile(r"0x[0-9a-fA-F]+")
_DIGITS_RE = re.compile(r"[0-9]+")
_PSEUDO_NUM_RE = re.compile(r"[_\-]?[0-9]+(?=>$)")  # "<lambda_3>" -> "<lambda>"


def _stdlib_prefixes() -> tuple[str, ...]:
    """This interpreter's stdlib directories (raw and resolved), each ending in a separator."""
    paths = sysconfig.get_paths()
    ver = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    dirs = {paths.get("stdlib", ""), paths.get("platstdlib", "")}
    for base in (sys.base_prefix, sys.base_exec_prefix):
        dirs.update({os.path.join(base, "lib", ver), os.path.join(base, "Lib")})
    found = {p.rstrip("\\/") + os.sep for d in dirs if d for p in (d, os.path.realpath(d))}
    return tuple(sorted(found))


_STDLIB = _stdlib_prefixes()


@lru_cache(maxsize=8192)
def _in_app(path: str) -> bool:
    """Not stdlib, not an installed package, not a frozen module (decided from the path only)."""
    return not (path.startswith(_STDLIB) or _NOT_APP_RE.search(path))


@lru_cache(maxsize=8192)
def _frame_key(path: str, name: str) -> str:
    """``basename-without-extension \\x1f function-name`` with volatile parts removed."""
    base = re.split(r"[\\/]", path)[-1]
    if not base.startswith("<") and "." in base:
        base = base.rsplit(".", 1)[0]
    if name.startswith("<"):
        name = _PSEUDO_NUM_RE.sub("", name)
    # Stored traces are scrubbed before hashing, so scrub here too (a no-op for normal names).
    return f"{scrub_text(base.lower())}\x1f{name}"


def _collapse(frames: list[str]) -> list[str]:
    """Collapse recursion: repeats of one frame, or of a cycle of two frames, count once."""
    out: list[str] = []
    for f in frames:
        out.append(f)
        while True:
            if len(out) >= 2 and out[-1] == out[-2]:
                out.pop()
            elif len(out) >= 4 and out[-2:] == out[-4:-2]:
                del out[-2:]
            else:
                break
    return out


def normalize_message(message: str | None) -> str:
    """Message scrubbed of PII, ``0x..`` -> ``<addr>``, digit runs -> ``<n>``, spaces collapsed."""
    text = scrub_text(message) or ""
    text = _DIGITS_RE.sub("<n>", _ADDR_RE.sub("<addr>", text))
    return " ".join(text.split())


def _digest(chain: list[tuple[str, list[str]]], message: str | None) -> str:
    """The hash of a chain, or of the last type + message when no chain entry has frames."""
    tokens = [HASH_VERSION]
    if any(frames for _, frames in chain):
        for i, (etype, frames) in enumerate(chain):
            tokens.extend([_CHAIN, etype, *frames] if i else [etype, *frames])
    else:
        tokens.extend([_FALLBACK, chain[-1][0], normalize_message(message)])
    return hashlib.sha256("\x00".join(tokens).encode("utf-8", "surrogatepass")).hexdigest()


def qualified_type(exc_or_type: BaseException | type[BaseException]) -> str:
    """``module.QualName`` exactly as tracebacks print it (no module for builtins/__main__)."""
    cls = exc_or_type if isinstance(exc_or_type, type) else type(exc_or_type)
    module = getattr(cls, "__module__", None)
    qualname: str = getattr(cls, "__qualname__", cls.__name__)
    if module in ("builtins", "__main__"):
        return qualname
    return f"{module if isinstance(module, str) else '<unknown>'}.{qualname}"


def format_stack(exc: BaseException) -> str:
    """The full formatted traceback (with chained exceptions), as stored in ``stack_trace``."""
    return "".join(traceback.format_exception(exc))


def _live_frames(tb: TracebackType | None) -> list[str]:
    frames = []
    while tb is not None:
        code = tb.tb_frame.f_code
        if _in_app(code.co_filename):
            frames.append(_frame_key(code.co_filename, code.co_name))
        tb = tb.tb_next
    return _collapse(frames)


def stack_hash_from_exception(exc: BaseException) -> str:
    """Grouping hash of a live exception: its ``__traceback__`` and its cause/context chain."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:  # same rules as traceback.format_exception
        seen.add(id(cur))
        chain.append(cur)
        if cur.__cause__ is not None:
            cur = cur.__cause__
        else:
            cur = None if cur.__suppress_context__ else cur.__context__
    chain.reverse()  # tracebacks print the first cause first
    try:
        message = str(exc)
    except Exception:  # what traceback prints in that case
        message = "<exception str() failed>"
    return _digest([(qualified_type(e), _live_frames(e.__traceback__)) for e in chain], message)


@dataclass
class _Block:
    """One exception of a chain parsed from traceback text."""

    type: str | None = None
    typed: bool = False  # the "Type: message" line was seen; later lines are message
    frames: list[str] = field(default_factory=list)
    message: list[str] = field(default_factory=list)


def _parse(text: str) -> list[_Block]:
    """Split traceback text into its chained exceptions (exception-group members are skipped)."""
    blocks = [_Block()]
    group = False
    for raw in text.split("\n"):
        line = raw.rstrip()
        if line in _SEPARATORS:
            blocks.append(_Block())
            group = False
            continue
        block = blocks[-1]
        if not block.typed and line.startswith("  + Exception Group Traceback"):
            group = True
            continue
        if group:  # the group's own lines have a "  | " margin; its members are nested deeper
            if not line.startswith("  |"):
                continue
            line = line[4:]
        if block.typed:
            block.message.append(line)
        elif m := _FRAME_RE.match(line):
            if _in_app(m["path"]):
                block.frames.append(_frame_key(m["path"], m["name"]))
        elif line and not line[0].isspace() and not line.startswith("Traceback (most recent"):
            block.typed = True
            if t := _TYPE_RE.match(line):
                block.type = t["type"]
                block.message.append(t["msg"] or "")
            else:
                block.message.append(line)
    return [b for b in blocks if b.typed or b.frames]


def stack_hash_from_text(
    error_type: str | None, stack_trace: str | None, message: str | None = None
) -> str | None:
    """Grouping hash from a formatted Python traceback; equal to the live exception's hash.

    ``error_type`` overrides the type on the traceback's last line; ``message`` (for the no-frame
    fallback) defaults to the one on that line. None when there is neither a type nor a trace.
    """
    if not error_type and not stack_trace:
        return None
    blocks = _parse(stack_trace) if stack_trace else []
    if not blocks:
        blocks = [_Block(typed=True)]
    if error_type:
        blocks[-1].type = error_type
    if message is None:
        message = "\n".join(blocks[-1].message)
    return _digest([(b.type or "", _collapse(b.frames)) for b in blocks], message)
