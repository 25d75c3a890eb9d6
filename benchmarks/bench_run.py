"""``taskexec run`` overhead: wall time of ``taskexec run -- true`` against a bare ``true``.

Prints figures, asserts nothing. Usage::

    .venv/bin/python benchmarks/bench_run.py [--rounds 20] [--dir DIR] [--against DIR]
        [--importtime]

Each round runs every command once, in turn (so a change of load on a shared machine hits all
of them alike), on a database created by a first run, with byte code cached as in an installed
package (``PYTHONDONTWRITEBYTECODE`` is unset for the children). The commands:

- ``true``: the floor;
- ``python -c pass``: the interpreter's own start;
- ``python -c "import taskexec"``: the package (its names are imported lazily);
- ``taskexec --version``: the command line without any command's imports;
- ``taskexec run -- true`` and ``taskexec run --durable -- true``: the target.

The table gives medians and p90 in ms and each median minus the bare ``true``'s (the issue's
target: ``taskexec run -- true`` adds at most 50 ms), and the median CPU time (user + system)
of the process, which a loaded machine inflates less than the wall time. ``--against DIR``
also times the package found in DIR (another checkout, e.g. ``git worktree add ../before
HEAD``, put first on ``PYTHONPATH``), each of its commands right after the same command of
this one, so a before/after comparison sees the same load. ``--importtime`` also prints the
modules that ``taskexec run`` imports, slowest first (``python -X importtime``, medians of 7
processes; cumulative µs, which that tracing inflates).
"""

from __future__ import annotations

import argparse
import collections
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_MS = 50.0


def commands(te: str) -> dict[str, list[str]]:
    return {
        "true": ["true"],
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import taskexec'": [sys.executable, "-c", "import taskexec"],
        "taskexec --version": [te, "--version"],
        "taskexec run -- true": [te, "run", "--", "true"],
        "taskexec run --durable -- true": [te, "run", "--durable", "--", "true"],
    }


def importtime(te_env: dict[str, str], limit: int = 25, runs: int = 7) -> None:
    code = (
        "import sys; from taskexec.cli import cli; "
        "sys.argv = ['taskexec', 'run', '--', 'true']; cli()"
    )
    seen: dict[str, list[tuple[int, int]]] = collections.defaultdict(list)
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code],
            env=te_env,
            capture_output=True,
            text=True,
        )
        for line in out.stderr.splitlines():
            parts = line.split("|")
            if not line.startswith("import time:") or len(parts) != 3 or "self" in parts[0]:
                continue
            own, cumulative = int(parts[0].split(":")[1]), int(parts[1])
            seen[parts[2].strip()].append((cumulative, own))
    rows = [
        (
            int(statistics.median(c for c, _ in found)),
            name,
            int(statistics.median(o for _, o in found)),
        )
        for name, found in seen.items()
    ]
    rows.sort(reverse=True)
    print(
        f"\n`taskexec run -- true`, -X importtime, {len(rows)} modules; slowest "
        f"(median of {runs} processes, cumulative µs):"
    )
    print("| module | cumulative µs | self µs |\n| --- | ---: | ---: |")
    for cumulative, name, own in rows[:limit]:
        print(f"| {name} | {cumulative:,} | {own:,} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--dir", default=None, help="work folder (default: a temp dir)")
    parser.add_argument("--importtime", action="store_true", help="also list the slowest imports")
    parser.add_argument(
        "--against", default=None, help="another checkout to time alternately (PYTHONPATH)"
    )
    args = parser.parse_args()
    folder = Path(args.dir or tempfile.mkdtemp(prefix="taskexec-bench-run-"))
    folder.mkdir(parents=True, exist_ok=True)
    te = str(Path(sys.executable).with_name("taskexec"))
    env = dict(os.environ, TASKEXEC_DB=str(folder / "bench.db"))
    env["TASKEXEC_SPOOL_DIR"] = str(folder / "spool")
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: byte code cached
    envs = {"": env}
    if args.against:
        other = dict(env, TASKEXEC_DB=str(folder / "bench-against.db"))
        other["PYTHONPATH"] = os.pathsep.join(filter(None, [args.against, env.get("PYTHONPATH")]))
        envs = {"": env, f" [{args.against}]": other}
    cases = commands(te)
    for run_env in envs.values():
        subprocess.run(cases["taskexec run -- true"], env=run_env, check=True)  # the file
        for argv in cases.values():  # warm the byte code and the page cache
            subprocess.run(argv, env=run_env, check=True, stdout=subprocess.DEVNULL)
    times: dict[str, list[float]] = {
        name + tag: [] for name in cases for tag in envs if name != "true" or not tag
    }
    cpu: dict[str, list[float]] = {name: [] for name in times}
    for _ in range(args.rounds):
        for name, argv in cases.items():
            for tag, run_env in envs.items():
                if name == "true" and tag:
                    continue
                used = _children_cpu()
                t0 = time.perf_counter()
                subprocess.run(argv, env=run_env, check=True, stdout=subprocess.DEVNULL)
                times[name + tag].append((time.perf_counter() - t0) * 1000)
                cpu[name + tag].append((_children_cpu() - used) * 1000)
    base = statistics.median(times["true"])
    print(
        f"# taskexec run overhead ({args.rounds} rounds, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.1f})"
    )
    print(
        "| command | median ms | p90 ms | median - bare `true` | CPU ms (median) |\n"
        "| --- | ---: | ---: | ---: | ---: |"
    )
    for name, xs in times.items():
        p90 = statistics.quantiles(xs, n=10)[-1] if len(xs) > 1 else xs[0]
        median = statistics.median(xs)
        print(
            f"| `{name}` | {median:.1f} | {p90:.1f} | {median - base:+.1f} "
            f"| {statistics.median(cpu[name]):.1f} |"
        )
    added = statistics.median(times["taskexec run -- true"]) - base
    print(
        f"\n`taskexec run -- true` adds {added:.1f} ms (target <= {TARGET_MS:.0f} ms): "
        f"{'met' if added <= TARGET_MS else 'MISSED'}"
    )
    if args.importtime:
        importtime(env)


def _children_cpu() -> float:
    """Seconds of CPU (user + system) used so far by the children waited for."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


if __name__ == "__main__":
    main()
