#!/usr/bin/env bash
# The tests: install taskexec with every extra, Debian's Chromium for the browser test, run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
if ! command -v chromium >/dev/null 2>&1 || ! command -v sqlite3 >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends chromium sqlite3 fonts-dejavu-core
fi
exec .venv/bin/python -m pytest "$@"
