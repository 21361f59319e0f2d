#!/usr/bin/env bash
# The README's test command: builds .venv (if needed), installs the package with its test
# and lint extras, then runs ruff, mypy --strict and the test suite. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[dev]'
echo "== ruff"
.venv/bin/ruff check .
echo "== mypy --strict"
.venv/bin/mypy --strict src
echo "== pytest"
.venv/bin/python -m pytest "$@"
