#!/usr/bin/env bash
# The demo: install, build a fresh demo database (20,000 runs over the last 30 days, so the
# dashboard's "last 24 h" has data), and serve it with Datasette on http://127.0.0.1:8001.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh all
db="${DEMO_DB:-demo.db}"
rm -f "$db" "$db-wal" "$db-shm"
.venv/bin/taskexec demo "$db" --runs "${RUNS:-20000}"
exec .venv/bin/taskexec serve "$db" --port "${PORT:-8001}" "$@"
