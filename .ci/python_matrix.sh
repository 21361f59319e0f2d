#!/usr/bin/env bash
# The core tests on every supported CPython other than the project venv's own (3.11, run
# by ./run-tests.sh), each with the newest aiohttp and OpenTelemetry SDK that support it
# (uv resolves them for that interpreter). One uv-made environment per Python, cached in
# .venv-matrix/. Prints a table and a closing 'N passed, N failed' line; exits non-zero
# if any row fails or an interpreter is missing.
#
#   bash .ci/python_matrix.sh                 # 3.9 3.10 3.12 3.13
#   PYTHONS="3.9 3.13" bash .ci/python_matrix.sh
# No -e: one failing row must not stop the others; failures are collected in $status.
set -uo pipefail
cd "$(dirname "$0")/.."
UV="${UV:-.venv/bin/uv}"
PYTHONS="${PYTHONS:-3.9 3.10 3.12 3.13}"
# The core tests only: the ones that touch aiohttp's pool (the full suite runs on 3.11).
TESTS=(tests/test_release_reasons.py tests/test_spans.py tests/test_metrics.py
       tests/test_pool_puzzle.py tests/test_connector_lifecycle.py
       tests/test_leaks_and_saturation.py
       tests/test_adapter_compat.py tests/test_chaos.py tests/test_hostile_input.py
       tests/test_hot_path_structural.py tests/test_counters_outlive_connectors.py
       tests/test_session_churn.py tests/test_websocket_upgrade.py
       tests/test_pool_wait_timeouts.py tests/test_adapter_boundary.py)
BASE=(opentelemetry-sdk opentelemetry-instrumentation pytest pytest-asyncio pytest-timeout trustme)

if [ ! -x "$UV" ]; then
  echo "python_matrix: $UV not found: run ./run-tests.sh first (it installs uv)" >&2
  exit 2
fi

# An interpreter for "3.X": pyenv's, else one on PATH.
find_python() {
  local v="$1" p
  for p in "$HOME"/.pyenv/versions/"$v".*/bin/python "$(command -v "python$v" || true)"; do
    if [ -n "$p" ] && [ -x "$p" ]; then echo "$p"; return 0; fi
  done
  return 1
}

# Two interpreters at a time: the machine has two cores, and a row waits a good part
# of its time (timeouts, servers).
JOBS="${MATRIX_JOBS:-2}"
mkdir -p .venv-matrix
started=$SECONDS

run_python() {  # run_python VERSION: writes "$dir.result" (name|versions|summary), "$dir.rc"
  local v="$1" name="Python $1" dir=".venv-matrix/python_$1" log py versions summary rc t0
  log="$dir.log"
  rm -f "$dir.result" "$dir.rc"
  if ! py=$(find_python "$v"); then
    echo "$name|-|interpreter not found (pyenv or python$v on PATH)" >"$dir.result"
    echo 1 >"$dir.rc"; return
  fi
  t0=$SECONDS
  if ! {
    [ -x "$dir/bin/python" ] || timeout 300 "$UV" venv -q --python "$py" "$dir"
    timeout 600 "$UV" pip install -q --python "$dir/bin/python" -e . "${BASE[@]}"
  } >"$log" 2>&1; then
    echo "$name|-|install failed (see $log)" >"$dir.result"; echo 1 >"$dir.rc"; return
  fi
  versions=$("$dir/bin/python" -c 'import sys, aiohttp, importlib.metadata as m; print("CPython %d.%d.%d, aiohttp %s, opentelemetry-sdk %s" % (*sys.version_info[:3], aiohttp.__version__, m.version("opentelemetry-sdk")))')
  summary=$(timeout 900 "$dir/bin/python" -m pytest -q -p no:cacheprovider "${TESTS[@]}" 2>&1 | tee -a "$log" | tail -1)
  rc=${PIPESTATUS[0]}
  echo "$name|$versions|$summary ($((SECONDS - t0)) s)" >"$dir.result"; echo "$rc" >"$dir.rc"
  echo "  $name: $summary" >&2
}

for v in $PYTHONS; do
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
  run_python "$v" &
done
wait
declare -a REPORT
status=0
for v in $PYTHONS; do
  dir=".venv-matrix/python_$v"
  REPORT+=("$(cat "$dir.result" 2>/dev/null || echo "Python $v|-|no result")")
  if [ "$(cat "$dir.rc" 2>/dev/null || echo 1)" -ne 0 ]; then status=1; fi
done
echo "python matrix took $((SECONDS - started)) s ($JOBS at a time)"
# shellcheck source=.ci/matrix_summary.sh
source "$(dirname "$0")/matrix_summary.sh"
print_matrix_summary "python" "pythons"
exit $status
