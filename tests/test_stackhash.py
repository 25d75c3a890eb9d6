"""Stack hash: stable across deploys that move lines, equal live vs from text, distinct per bug."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskexec.scrub import scrub_text
from taskexec.stackhash import (
    HASH_VERSION,
    format_stack,
    qualified_type,
    stack_hash_from_exception,
    stack_hash_from_text,
)

BUG_SOURCE = """\
import json


def parse(value):
    if value == "bad":
        raise ValueError(f"bad value {value!r} for user 42 at 0x{id(value):x}")
    return json.loads(value)


def handle(value):
    return parse(value)


def handle_other(value):
    raise ValueError("bad value")


def handle_type(value):
    raise TypeError("bad value")


def wrapped(value):
    try:
        handle(value)
    except ValueError as exc:
        raise RuntimeError("could not handle") from exc


def context(value):
    try:
        handle(value)
    except ValueError:
        raise KeyError("k")


def suppressed(value):
    try:
        handle(value)
    except ValueError:
        raise KeyError("k") from None


def recurse(n):
    if n == 0:
        raise RecursionError("too deep")
    return recurse(n - 1)


def ping(n):
    if n == 0:
        raise LookupError("done")
    return pong(n - 1)


def pong(n):
    return ping(n)


def group(value):
    try:
        handle(value)
    except ValueError as exc:
        raise ExceptionGroup("several", [exc, TypeError("t")])
"""

# The same bug after a deploy that moved every line down (and lives in another directory).
MOVED_SOURCE = BUG_SOURCE.replace(
    "\n\ndef parse", "\n# a comment\n\n\n# another one\n\n\ndef parse", 1
)
# Like ``suppressed`` but never had a context at all.
_SUPPRESSED_BODY = """\
    try:
        handle(value)
    except ValueError:
        raise KeyError("k") from None"""
PLAIN_SOURCE = BUG_SOURCE.replace(_SUPPRESSED_BODY, '    raise KeyError("k")')
assert PLAIN_SOURCE != BUG_SOURCE
HEX64 = re.compile(r"[0-9a-f]{64}")


@pytest.fixture
def load(tmp_path: Path) -> Iterator[Callable[[str, str], ModuleType]]:
    """Import ``source`` as module ``bugmod`` from its own directory ``subdir`` under tmp_path."""

    def _load(subdir: str, source: str) -> ModuleType:
        folder = tmp_path / subdir
        folder.mkdir()
        (folder / "bugmod.py").write_text(source)
        sys.modules.pop("bugmod", None)
        sys.path.insert(0, str(folder))
        try:
            importlib.invalidate_caches()
            return importlib.import_module("bugmod")
        finally:
            sys.path.remove(str(folder))
            sys.modules.pop("bugmod", None)

    yield _load
    sys.modules.pop("bugmod", None)


def catch(fn: Callable[..., Any], *args: Any) -> BaseException:
    try:
        fn(*args)
    except BaseException as exc:  # the tests need every kind
        return exc
    raise AssertionError("expected an exception")


def from_text(exc: BaseException) -> str | None:
    """What the store computes for an imported record: hash of the scrubbed stored text."""
    return stack_hash_from_text(qualified_type(exc), scrub_text(format_stack(exc)))


def test_moved_lines_hash_equal(load: Callable[[str, str], ModuleType]) -> None:
    old = catch(load("v1", BUG_SOURCE).handle, "bad")
    new = catch(load("v2", MOVED_SOURCE).handle, "bad")
    assert format_stack(old) != format_stack(new)  # other paths, line numbers and addresses
    assert stack_hash_from_exception(old) == stack_hash_from_exception(new)
    assert from_text(old) == from_text(new) == stack_hash_from_exception(old)


def test_different_bugs_hash_differently(load: Callable[[str, str], ModuleType]) -> None:
    mod = load("v1", BUG_SOURCE)
    hashes = {
        stack_hash_from_exception(catch(mod.handle, "bad")),
        stack_hash_from_exception(catch(mod.handle_other, "bad")),  # other function
        stack_hash_from_exception(catch(mod.handle_type, "bad")),  # other type
        stack_hash_from_exception(catch(mod.handle, "{")),  # other path, through json
    }
    assert len(hashes) == 4


@pytest.mark.parametrize(
    ("name", "arg"),
    [
        ("handle", "bad"),
        ("handle", "{"),
        ("wrapped", "bad"),
        ("context", "bad"),
        ("suppressed", "bad"),
        ("recurse", 5),
        ("recurse", 50),
        ("ping", 7),
        ("group", "bad"),
    ],
)
def test_live_equals_text(load: Callable[[str, str], ModuleType], name: str, arg: Any) -> None:
    exc = catch(getattr(load("v1", BUG_SOURCE), name), arg)
    live = stack_hash_from_exception(exc)
    assert HEX64.fullmatch(live)
    assert stack_hash_from_text(qualified_type(exc), format_stack(exc)) == live
    assert from_text(exc) == live
    assert stack_hash_from_text(None, format_stack(exc)) == live  # type from the last line


def test_chains_count(load: Callable[[str, str], ModuleType]) -> None:
    mod = load("v1", BUG_SOURCE)
    wrapped = catch(mod.wrapped, "bad")
    assert isinstance(wrapped.__cause__, ValueError)
    alone = RuntimeError("could not handle")
    assert stack_hash_from_exception(wrapped) != stack_hash_from_exception(alone)
    # "from None" drops the context: same as never having had one; a kept context counts.
    plain = catch(load("v2", PLAIN_SOURCE).suppressed, "bad")
    assert plain.__context__ is None
    suppressed = catch(mod.suppressed, "bad")
    assert stack_hash_from_exception(suppressed) == stack_hash_from_exception(plain)
    assert stack_hash_from_exception(catch(mod.context, "bad")) != stack_hash_from_exception(plain)


def test_recursion_depth_does_not_matter(load: Callable[[str, str], ModuleType]) -> None:
    mod = load("v1", BUG_SOURCE)
    assert stack_hash_from_exception(catch(mod.recurse, 5)) == stack_hash_from_exception(
        catch(mod.recurse, 50)
    )
    # mutual recursion (a cycle of two frames), whichever function the chain ends in
    assert len({stack_hash_from_exception(catch(mod.ping, n)) for n in (4, 6, 40)}) == 1
    assert len({from_text(catch(mod.ping, n)) for n in (5, 7, 41)}) == 1


def test_fallback_uses_type_and_normalised_message() -> None:
    a = stack_hash_from_exception(ValueError("user 42 at a@b.com"))
    assert a == stack_hash_from_exception(ValueError("user 97 at c@d.org"))
    assert a == stack_hash_from_text("ValueError", None, "user 7 at e@f.net")
    assert a == stack_hash_from_text(None, format_stack(ValueError("user 1 at g@h.io")))
    assert a != stack_hash_from_exception(TypeError("user 42 at a@b.com"))
    assert a != stack_hash_from_exception(ValueError("group 42 at a@b.com"))
    obj1 = ValueError("no handler for <Job object at 0x7f3a2b1c0d90>")
    obj2 = ValueError("no handler for <Job object at 0x55d0e1f2a3b4>")
    assert stack_hash_from_exception(obj1) == stack_hash_from_exception(obj2)
    assert HEX64.fullmatch(a)


def test_only_library_frames_fall_back() -> None:
    def stdlib_only(text: str) -> BaseException:
        exc = catch(json.loads, text)
        assert exc.__traceback__ is not None
        return exc.with_traceback(exc.__traceback__.tb_next)  # drop this (in-app) test frame

    first, second = stdlib_only("{"), stdlib_only("{   ")
    assert str(first) != str(second)  # the column differs; digits are normalised away
    assert stack_hash_from_exception(first) == stack_hash_from_exception(second)
    assert stack_hash_from_exception(first) == stack_hash_from_text(
        "json.decoder.JSONDecodeError", None, str(second)
    )
    assert from_text(first) == stack_hash_from_exception(first)


def _trace(*frames: tuple[str, str], last: str = "app.errors.JobFailed: boom") -> str:
    lines = ["Traceback (most recent call last):"]
    for path, name in frames:
        lines += [f'  File "{path}", line 12, in {name}', "    do_it()", "    ^^^^^^^"]
    return "\n".join([*lines, last, ""])


def test_text_paths_and_library_frames() -> None:
    base = stack_hash_from_text(None, _trace(("/srv/releases/1/app/jobs.py", "run")))
    same = [
        _trace(("/srv/releases/2/app/jobs.py", "run")),
        _trace(("C:\\deploy\\app\\Jobs.py", "run")),
        _trace(
            ("<frozen runpy>", "_run_module_as_main"),
            ("/app/jobs.py", "run"),
            ("/venv/lib/python3.12/site-packages/click/core.py", "invoke"),
            ("/usr/lib/python3/dist-packages/x/y.py", "z"),
            ("/usr/lib/python3.11/concurrent/futures/thread.py", "run"),
        ),
    ]
    assert all(stack_hash_from_text(None, text) == base for text in same)
    assert stack_hash_from_text(None, _trace(("/app/jobs.py", "start"))) != base
    assert stack_hash_from_text(None, _trace(("/app/tasks.py", "run"))) != base
    assert stack_hash_from_text("app.errors.Other", _trace(("/app/jobs.py", "run"))) != base


def test_none_without_type_or_trace() -> None:
    assert stack_hash_from_text(None, None) is None
    assert stack_hash_from_text("", "") is None
    assert HEX64.fullmatch(stack_hash_from_text("ValueError", None) or "")


def test_qualified_type() -> None:
    assert qualified_type(ValueError("x")) == "ValueError"
    assert qualified_type(json.JSONDecodeError) == "json.decoder.JSONDecodeError"

    class LocalError(Exception):
        pass

    assert qualified_type(LocalError()).endswith("test_qualified_type.<locals>.LocalError")
    assert HASH_VERSION == "v1"


def test_deterministic_across_processes() -> None:
    text = _trace(("/app/jobs.py", "run"))
    code = (
        "import sys; from taskexec.stackhash import stack_hash_from_text as h; "
        "print(h(None, sys.stdin.read()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=text,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.stdout.strip() == stack_hash_from_text(None, text)


@given(st.text(), st.none() | st.text(max_size=20), st.none() | st.text(max_size=30))
def test_text_never_raises(trace: str, error_type: str | None, message: str | None) -> None:
    result = stack_hash_from_text(error_type, trace, message)
    assert result is None or HEX64.fullmatch(result)
