#!/usr/bin/env bash
# Create ./.venv with Python 3.11 and install taskexec with the extras named in $1 (default: all).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-all}"
py="${PYTHON:-$(command -v python3.11 || command -v python3)}"
stamp=".venv/.installed-$extras"
# [dev] includes [all]: a test setup serves the demo too.
if [ "$extras" = all ] && [ -f .venv/.installed-dev ] && [ ! pyproject.toml -nt .venv/.installed-dev ]; then
  exit 0
fi
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[$extras]"
  touch "$stamp"
fi
