"""The package's layers (docs/architecture.md): imports go one way, faces stay apart, and
there is no import cycle anywhere. Read from the source with ``ast``, so lazy imports count."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "taskexec"

#: Bottom to top. A module may import its own layer or any layer below it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "record",
        (
            "taskexec.version",
            "taskexec.errors",
            "taskexec.config",
            "taskexec.model",
            "taskexec.scrub",
            "taskexec.stackhash",
            "taskexec.spans",
            "taskexec.histogram",
            "taskexec.probes",
        ),
    ),
    ("db", ("taskexec.db",)),
    ("recording", ("taskexec.recorder", "taskexec.tracing")),
    ("ingest", ("taskexec.ingest",)),
    ("awareness", ("taskexec.alerts",)),
    ("integrations", ("taskexec.integrations",)),
    ("faces", ("taskexec.faces",)),
    ("cli", ("taskexec.cli",)),
    ("package", ("taskexec", "taskexec.__main__")),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def layer_of(module: str) -> int:
    best, best_len = -1, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if (
                matches
                and len(prefix) > best_len
                and not (prefix == "taskexec" and module != prefix)
            ):
                best, best_len = index, len(prefix)
    if best < 0:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS and docs/architecture.md")
    return best


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every taskexec module this file imports (resolved, relative or absolute, at any depth)."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            # "from pkg import name" imports pkg.name when that is a module, else pkg.
            targets = [
                f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in known else prefix
                for a in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target.startswith("taskexec") and target != name:
                found.add(target)
    return found


GRAPH = {name: imports_of(name, path, set(modules())) for name, path in modules().items()}


def test_every_module_has_a_layer():
    for name in GRAPH:
        layer_of(name)


@pytest.mark.parametrize("name", sorted(GRAPH))
def test_imports_go_down_only(name):
    mine = layer_of(name)
    upward = sorted(t for t in GRAPH[name] if layer_of(t) > mine)
    assert not upward, f"{name} ({LAYERS[mine][0]}) imports upward: {upward}"


@pytest.mark.parametrize("name", sorted(n for n in GRAPH if n.startswith("taskexec.faces.")))
def test_faces_do_not_import_each_other(name):
    face = name.split(".")[2]
    others = sorted(
        t for t in GRAPH[name] if t.startswith("taskexec.faces.") and t.split(".")[2] != face
    )
    assert not others, f"{name} imports another face: {others}"


def test_no_import_cycles():
    # Packages import their own modules (re-exports); an edge from a module up to its own
    # package __init__ would be the cycle, so both directions are checked like any edge.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(GRAPH.get(node, ())):
            if state.get(target) == 1:
                cycle = stack[stack.index(target) :] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(GRAPH):
        if node not in state:
            visit(node)


def test_sql_lives_in_db_and_probes_only():
    """No SQL statement, store.conn or raw query outside taskexec/db and taskexec/probes."""
    offenders = []
    for name, path in modules().items():
        if name.startswith(("taskexec.db", "taskexec.probes")):
            continue
        text = path.read_text(encoding="utf-8")
        for needle in ("store.conn", ".conn.execute", "store.query(", "SELECT ", "INSERT INTO"):
            if needle in text:
                offenders.append(f"{path.relative_to(ROOT.parent)}: {needle!r}")
    assert not offenders, offenders
