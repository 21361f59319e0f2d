#!/usr/bin/env bash
# The version-sensitive tests against every supported aiohttp minor (latest patch of
# each) and against the oldest and newest OpenTelemetry SDK we declare. One uv-made
# environment per row, cached in .venv-matrix/. Prints a compatibility table; exits
# non-zero if any row fails.
set -uo pipefail
cd "$(dirname "$0")/.."
UV="${UV:-.venv/bin/uv}"
PY="${PYTHON:-python3}"
TESTS=(tests/test_release_reasons.py tests/test_spans.py tests/test_metrics.py
       tests/test_pool_puzzle.py tests/test_connector_lifecycle.py
       tests/test_leaks_and_saturation.py
       tests/test_adapter_compat.py tests/test_chaos.py tests/test_hostile_input.py
       tests/test_hot_path_structural.py
       tests/test_gc_never_freezes_the_loop.py tests/test_pool_books.py
       tests/test_host_cardinality.py tests/test_every_span_ends.py
       tests/test_gauges_of_an_empty_pool.py tests/test_oldest_lease_age.py
       tests/test_consistent_snapshot.py tests/test_pool_wait_timeouts.py
       tests/test_pool_wait_timeout_race.py tests/test_websocket_upgrade.py
       tests/test_counters_outlive_connectors.py tests/test_session_churn.py
       tests/test_missing_internals.py tests/test_adapter_boundary.py)
# opentelemetry-instrumentation: the instrumentor cases run on every aiohttp too.
BASE=(pytest pytest-asyncio pytest-timeout trustme opentelemetry-instrumentation)
# row name | pip requirements for that row
ROWS=(
  "aiohttp 3.9|aiohttp~=3.9.0 opentelemetry-sdk"
  "aiohttp 3.10|aiohttp~=3.10.0 opentelemetry-sdk"
  "aiohttp 3.11|aiohttp~=3.11.0 opentelemetry-sdk"
  "aiohttp 3.12|aiohttp~=3.12.0 opentelemetry-sdk"
  "aiohttp 3.13|aiohttp~=3.13.0 opentelemetry-sdk"
  "aiohttp 3.14|aiohttp~=3.14.0 opentelemetry-sdk"
  "otel sdk oldest (1.30.0)|aiohttp opentelemetry-api==1.30.0 opentelemetry-sdk==1.30.0"
)
# Rows at a time: most of a row's time is waiting (timeouts, fresh interpreters), not CPU.
JOBS="${MATRIX_JOBS:-2}"
mkdir -p .venv-matrix

run_row() {  # run_row NAME REQS: writes "$dir.result" (name|versions|summary) and "$dir.rc"
  local name="$1" reqs="$2" dir log versions summary rc
  dir=".venv-matrix/$(echo "$name" | tr -c 'a-zA-Z0-9.\n' '_')"
  log="$dir.log"
  rm -f "$dir.result" "$dir.rc"
  if ! {
    [ -x "$dir/bin/python" ] || timeout 300 "$UV" venv -q --python "$PY" "$dir"
    # shellcheck disable=SC2086
    timeout 600 "$UV" pip install -q --python "$dir/bin/python" -e . $reqs "${BASE[@]}"
  } >"$log" 2>&1; then
    echo "$name|install failed (see $log)" >"$dir.result"; echo 1 >"$dir.rc"; return
  fi
  versions=$("$dir/bin/python" -c 'import aiohttp, importlib.metadata as m; print("aiohttp", aiohttp.__version__ + ", opentelemetry-sdk", m.version("opentelemetry-sdk"))')
  summary=$(timeout 900 "$dir/bin/python" -m pytest -q -p no:cacheprovider "${TESTS[@]}" 2>&1 | tee -a "$log" | tail -1)
  rc=${PIPESTATUS[0]}
  echo "$name|$versions|$summary" >"$dir.result"; echo "$rc" >"$dir.rc"
  echo "  $name: $summary" >&2
}

started=$SECONDS
for row in "${ROWS[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
  run_row "${row%%|*}" "${row#*|}" &
done
wait
declare -a REPORT
status=0
for row in "${ROWS[@]}"; do
  name="${row%%|*}"
  dir=".venv-matrix/$(echo "$name" | tr -c 'a-zA-Z0-9.\n' '_')"
  REPORT+=("$(cat "$dir.result" 2>/dev/null || echo "$name|-|no result")")
  if [ "$(cat "$dir.rc" 2>/dev/null || echo 1)" -ne 0 ]; then status=1; fi
done
echo "aiohttp matrix took $((SECONDS - started)) s ($JOBS rows at a time)"
# shellcheck source=.ci/matrix_summary.sh
source "$(dirname "$0")/matrix_summary.sh"
print_matrix_summary "row" "matrix"
exit $status
