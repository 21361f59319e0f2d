#!/usr/bin/env bash
# Other people's test suites under the pool plugin (issue 12, "invisible"): aiohttp's own
# client tests and opentelemetry-instrumentation-aiohttp-client's tests, each run twice,
# plain and with tests/third_party/pool_otel_plugin.py (AioHttpConnectionPoolInstrumentor
# active with in-memory providers), then compared test by test: a test that passes plain
# must pass with the plugin (allowed exceptions, with reasons: tests/third_party/
# allowed_differences.txt). Their tests come from their sdists on PyPI, downloaded at run
# time into $CACHE (never committed), at the versions installed in .venv (made by
# ./run-tests.sh; without it, the newest). Their test dependencies go into a venv of their
# own, .venv-thirdparty (aiohttp's suite uses its own pytest plugin, which clashes with
# pytest-asyncio). Idempotent: a second run reuses the venv, the sdists and the unpacked tests.
# Prints per-suite counts and a closing "N passed, N failed" line; exits non-zero on any
# regression.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PIP_DISABLE_PIP_VERSION_CHECK=1
CACHE="${THIRD_PARTY_CACHE:-$ROOT/.third_party}"
VENV="$ROOT/.venv-thirdparty"
PY="${PYTHON:-python3}"
HERE="$ROOT/tests/third_party"
# aiohttp's client tests that run here without network and finish in a few minutes.
AIOHTTP_TESTS=(
  tests/test_client_session.py tests/test_client_request.py tests/test_client_response.py
  tests/test_client_connection.py tests/test_client_proto.py tests/test_connector.py
  tests/test_client_functional.py
)
# aiohttp's pytest.ini deselects these by default; its CI opts in separately.
AIOHTTP_MARKERS="not dev_mode and not autobahn and not internal"
start=$(date +%s)

die() { echo "third_party_suites: $*" >&2; exit 2; }

installed_version() {  # installed_version PYTHON DIST -> version or nothing
  "$1" -c "import importlib.metadata as m, sys
try: print(m.version(sys.argv[1]))
except m.PackageNotFoundError: pass" "$2"
}

# --- the venv: pinned to the project venv's versions so both test the same stack --------
pins=()
for dist in aiohttp opentelemetry-api opentelemetry-sdk opentelemetry-instrumentation \
  opentelemetry-instrumentation-aiohttp-client pytest; do
  version=""
  if [ -x .venv/bin/python ]; then version=$(installed_version .venv/bin/python "$dist"); fi
  pins+=("$dist${version:+==$version}")
done
contrib_pin=$(printf '%s\n' "${pins[@]}" | sed -n 's/^opentelemetry-instrumentation-aiohttp-client==//p')
# aiohttp's tests need pytest-mock, trustme and (for pytest.ini's warning filter) coverage;
# the contrib tests need opentelemetry-test-utils (same release as the contrib package) and
# http-server-mock. pytest-timeout bounds every test.
requirements=("${pins[@]}" "opentelemetry-test-utils${contrib_pin:+==$contrib_pin}"
  http-server-mock pytest-mock trustme coverage pytest-timeout)
stamp="$VENV/.third_party_requirements"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV" || die "cannot create $VENV with $PY"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "${requirements[*]}" ]; then
  echo "== installing into $VENV: ${requirements[*]}"
  "$VENV/bin/python" -m pip install -q "${requirements[@]}" || die "pip install failed"
  "$VENV/bin/python" -m pip install -q --no-deps -e . || die "cannot install this project"
  echo "${requirements[*]}" >"$stamp"
fi
"$VENV/bin/python" -c "import aiohttp_pool_otel, opentelemetry.test, http_server_mock" \
  || die "$VENV lacks a test dependency"

# --- their tests, from their sdists ---------------------------------------------------
aiohttp_version=$(installed_version "$VENV/bin/python" aiohttp)
contrib_version=$(installed_version "$VENV/bin/python" opentelemetry-instrumentation-aiohttp-client)
mkdir -p "$CACHE/sdists"
sdist_in_cache() {  # sdist_in_cache DIST VERSION -> its path, if cached
  local f
  for f in "$CACHE/sdists/$1-$2.tar.gz" "$CACHE/sdists/${1//-/_}-$2.tar.gz"; do
    if [ -f "$f" ]; then echo "$f"; return; fi
  done
}
fetch() {  # fetch DIST VERSION -> path of its sdist in the cache
  local found
  found=$(sdist_in_cache "$1" "$2")
  if [ -z "$found" ]; then
    # --no-binary for this package only: its build dependencies may come as wheels.
    "$VENV/bin/python" -m pip download -q --no-deps --no-binary "$1" "$1==$2" \
      -d "$CACHE/sdists" >&2 || die "cannot download the sdist of $1==$2"
    found=$(sdist_in_cache "$1" "$2")
  fi
  [ -n "$found" ] || die "no sdist of $1==$2 in $CACHE/sdists"
  echo "$found"
}
unpack() {  # unpack SDIST DEST MEMBER... : only the tests (never the package's own code)
  local sdist=$1 dest=$2 top
  shift 2
  if [ ! -d "$dest/tests" ]; then
    top=$(basename "$sdist" .tar.gz)  # an sdist's top folder is its file name's stem
    mkdir -p "$dest.tmp"
    tar xzf "$sdist" -C "$dest.tmp" --strip-components=1 "${@/#/$top/}"
    rm -rf "$dest" && mv "$dest.tmp" "$dest"
  fi
}
AIOHTTP_DIR="$CACHE/aiohttp-$aiohttp_version"
CONTRIB_DIR="$CACHE/contrib-aiohttp-client-$contrib_version"
unpack "$(fetch aiohttp "$aiohttp_version")" "$AIOHTTP_DIR" tests pytest.ini
unpack "$(fetch opentelemetry-instrumentation-aiohttp-client "$contrib_version")" \
  "$CONTRIB_DIR" tests
# The contrib sdist has no pytest config: an empty one makes its folder pytest's rootdir
# (else pytest would climb to this repo's pyproject.toml and use our settings).
[ -f "$CONTRIB_DIR/pytest.ini" ] || printf '[pytest]\n' >"$CONTRIB_DIR/pytest.ini"
echo "== suites: aiohttp $aiohttp_version (${#AIOHTTP_TESTS[@]} files), opentelemetry-instrumentation-aiohttp-client $contrib_version (tests/)"

# --- run and compare --------------------------------------------------------------------
OUT="$CACHE/results"
rm -rf "$OUT" && mkdir -p "$OUT"
run_pytest() {  # run_pytest DIR XML SUMMARY PLUGIN(yes|no) ARGS... ; their failures are data
  local dir=$1 xml=$2 summary=$3 plugin=$4
  shift 4
  local extra=()
  if [ "$plugin" = yes ]; then extra=(-p pool_otel_plugin); fi
  (cd "$dir" && POOL_OTEL_SUMMARY="$summary" PYTHONPATH="$HERE" timeout 900 \
    "$VENV/bin/pytest" -q -p no:cacheprovider -o junit_family=xunit1 \
    --junitxml="$xml" --timeout 120 "${extra[@]}" "$@" >"$xml.log" 2>&1) || true
}
total_passed=0
total_failed=0
compare_suite() {  # compare_suite NAME DIR together|one-by-one PYTEST-ARGS...
  local name=$1 dir=$2 mode=$3 t0 verdict rc=0
  shift 3
  t0=$(date +%s)
  if [ "$mode" = together ]; then
    # Both runs at once (a CI machine has 2 cores); each writes its own files, and the
    # suite's servers take free ports.
    run_pytest "$dir" "$OUT/$name-plain.xml" "$OUT/$name-plain.json" no "$@" &
    local plain_pid=$!
    run_pytest "$dir" "$OUT/$name-plugin.xml" "$OUT/$name-plugin.json" yes "$@"
    wait "$plain_pid"
  else
    run_pytest "$dir" "$OUT/$name-plain.xml" "$OUT/$name-plain.json" no "$@"
    run_pytest "$dir" "$OUT/$name-plugin.xml" "$OUT/$name-plugin.json" yes "$@"
  fi
  local compare=("$VENV/bin/python" "$HERE/compare_outcomes.py" "$name" "$OUT/$name-plain.xml"
    "$OUT/$name-plugin.xml" "$OUT/$name-plugin.json" "$HERE/allowed_differences.txt")
  mapfile -t regressed < <("${compare[@]}" | sed -n 's/^REGRESSED //p')
  if [ "${#regressed[@]}" -gt 0 ] && [ "${#regressed[@]}" -le 20 ]; then
    # Once more, only those: a test that passes now was flaky, not broken by the plugin
    # (more than 20 is no flakiness: not worth another run).
    run_pytest "$dir" "$OUT/$name-rerun.xml" "$OUT/$name-rerun.json" yes "${regressed[@]}"
    compare+=("$OUT/$name-rerun.xml")
  fi
  verdict=$("${compare[@]}") || rc=$?
  echo "$verdict" | grep -v '^REGRESSED '
  echo "[$name] took $(($(date +%s) - t0)) s (logs: $OUT/$name-*.xml.log)"
  total_passed=$((total_passed + $(echo "$verdict" | sed -n "s/^\[$name\] comparison: \([0-9]*\) passed.*/\1/p")))
  total_failed=$((total_failed + $(echo "$verdict" | sed -n "s/^\[$name\] comparison: .*, \([0-9]*\) failed/\1/p")))
  [ "$rc" -le 1 ] || die "cannot compare $name (exit $rc)"
}
compare_suite aiohttp "$AIOHTTP_DIR" together -o addopts= -m "$AIOHTTP_MARKERS" \
  "${AIOHTTP_TESTS[@]}"
# One by one: its HttpServerMock tests listen on a fixed port.
compare_suite contrib-aiohttp-client "$CONTRIB_DIR" one-by-one tests
echo "third-party suites took $(($(date +%s) - start)) s"
echo "$total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
