#!/usr/bin/env bash
# The demo: install, build a demo database (20,000 runs over 30 days), serve it on 127.0.0.1:8001.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh all
.venv/bin/taskexec demo "${DEMO_DB:-demo.db}" --runs "${RUNS:-20000}"
exec .venv/bin/taskexec serve "${DEMO_DB:-demo.db}" --port "${PORT:-8001}" "$@"
