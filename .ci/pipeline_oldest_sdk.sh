#!/usr/bin/env bash
# Worker processes' identity on the oldest OpenTelemetry SDK we declare (1.30.0, which
# sets no service.instance.id and keeps a parent's in a forked child): the unit tests and
# the real-pipeline test of 4 workers, spawned and forked after configuring, in a uv venv
# with the 1.30.0 API, SDK and the OTLP exporters of that release (cached in
# .venv-matrix/). Needs the Go builds (.ci/install_pipeline.sh) and Debian's prometheus;
# ./run-tests.sh -m pipeline covers the newest SDK.
set -euo pipefail
cd "$(dirname "$0")/.."
UV="${UV:-.venv/bin/uv}"
PY="${PYTHON:-python3}"
OTEL=1.30.0
dir=".venv-matrix/pipeline_sdk_$OTEL"
# The exporters are released with the SDK under one version; proto 1.30.0 needs protobuf < 6.
REQS=(
  "opentelemetry-api==$OTEL" "opentelemetry-sdk==$OTEL" "opentelemetry-proto==$OTEL"
  "opentelemetry-exporter-otlp-proto-common==$OTEL"
  "opentelemetry-exporter-otlp-proto-grpc==$OTEL"
  "opentelemetry-exporter-otlp-proto-http==$OTEL"
  grpcio pytest pytest-asyncio pytest-timeout trustme
)
echo "== worker processes on opentelemetry-sdk $OTEL (unit tests and the real pipeline)"
[ -x "$dir/bin/python" ] || timeout 300 "$UV" venv -q --python "$PY" "$dir"
timeout 600 "$UV" pip install -q --python "$dir/bin/python" -e . "${REQS[@]}"
"$dir/bin/python" -c 'import importlib.metadata as m, sys
v = m.version("opentelemetry-sdk"); print("opentelemetry-sdk", v)
sys.exit(v != sys.argv[1])' "$OTEL"
timeout 900 "$dir/bin/python" -m pytest -q -p no:cacheprovider \
  tests/test_worker_identity.py tests/test_pipeline_workers.py
