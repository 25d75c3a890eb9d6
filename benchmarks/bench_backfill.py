"""Backfill throughput: read + validate + insert of small result files, in files per second.

Writes N small JSON result files (one run each, 10% failures with a traceback, the way a
scheduler leaves them) to a temporary directory, then times ``taskexec.ingest.backfill.backfill``:

1. into an empty database,
2. the same files again (everything is a duplicate),
3. N different files into the database that now holds N rows.

Usage: ``.venv/bin/python benchmarks/bench_backfill.py [--files 20000] [--repeat 3]``.
The target is >= 10,000 files/s on a 2-core machine; the best of ``--repeat`` runs is shown
(other processes on a shared machine only ever slow a run down).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta

from taskexec.ingest.backfill import backfill

TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/srv/jobs/reflect.py", line 41, in run\n'
    "    summary = summarise(notes)\n"
    '  File "/srv/jobs/llm.py", line 88, in summarise\n'
    "    raise TimeoutError(f'model did not answer in {limit}s')\n"
    "TimeoutError: model did not answer in 30s\n"
)


def write_files(directory: str, count: int, offset: int = 0) -> None:
    """``count`` result files named like a scheduler's (``<task>_<time>.json``)."""
    os.makedirs(directory, exist_ok=True)
    start = datetime(2024, 1, 1, 6, tzinfo=UTC)
    for i in range(offset, offset + count):
        task = f"task_{i % 25:02}"
        begun = start + timedelta(minutes=i)
        doc: dict[str, object] = {
            "task_id": task,
            "task_name": task.replace("_", " "),
            "started_at": begun.isoformat().replace("+00:00", "Z"),
            "completed_at": (begun + timedelta(seconds=3, milliseconds=i % 997)).isoformat(),
            "success": i % 10 != 0,
            "memories_retrieved": i % 17,
            "files_written": [f"out/{task}/{i}.md"],
        }
        if i % 10 == 0:
            doc["error"] = {
                "type": "TimeoutError",
                "message": "model did not answer in 30s",
                "traceback": TRACEBACK,
            }
        name = f"{task}_{begun:%Y-%m-%dT%H-%M-%S}.json"
        with open(os.path.join(directory, name), "w", encoding="utf-8") as handle:
            json.dump(doc, handle)


def timed(results: str, db: str) -> tuple[float, int, int]:
    t0 = time.perf_counter()
    report = backfill(results, db)
    seconds = time.perf_counter() - t0
    assert report.ok, report.problems[:3]
    return seconds, report.inserted, report.duplicates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20_000, help="files per set (default 20000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; best is shown")
    args = parser.parse_args()
    n = args.files
    root = tempfile.mkdtemp(prefix="taskexec-bench-")
    try:
        first, second = os.path.join(root, "first"), os.path.join(root, "second")
        write_files(first, n)
        write_files(second, n, offset=n)
        cases = {"empty database": [], "re-run (all duplicates)": [], "new files, N rows in DB": []}
        for attempt in range(args.repeat):
            db = os.path.join(root, f"bench{attempt}.db")
            for case, folder in zip(cases, (first, first, second), strict=True):
                cases[case].append(timed(folder, db))
        print(f"{n:,} files per case, best of {args.repeat} (read + validate + insert):")
        for case, runs in cases.items():
            seconds, inserted, duplicates = min(runs)
            print(
                f"  {case:<26} {n / seconds:>9,.0f} files/s  ({seconds:.2f} s; "
                f"{inserted:,} inserted, {duplicates:,} duplicates)"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
