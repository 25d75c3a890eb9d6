#!/usr/bin/env bash
# The tests: install taskexec with every extra, the Debian packages the tests drive (Chromium for
# the browser tests, sqlite3 for the shell test, redis-server for the real scheduler workers),
# then run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
if ! command -v chromium >/dev/null 2>&1 || ! command -v sqlite3 >/dev/null 2>&1 \
  || ! command -v redis-server >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends chromium sqlite3 redis-server \
    fonts-dejavu-core
fi
exec .venv/bin/python -m pytest "$@"
