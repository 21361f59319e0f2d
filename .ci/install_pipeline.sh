#!/usr/bin/env bash
# Snippet for .ci/run: build (or reuse) the native OpenTelemetry Collector and Jaeger v2
# that the `pipeline` tests run, through the same code path as deploy/native/stack.sh
# (deploy/native/build.sh: Go module proxy, pinned go.mod/go.sum + the ocb manifest,
# cached in ~/.cache/aiohttp-pool-otel). Idempotent: a second run finds the cache.
# Needs Go >= 1.26 on PATH (the project's machines have /usr/local/go/bin).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH="/usr/local/go/bin:$PATH"
fi
start=$SECONDS
bash deploy/native/build.sh all
echo "native Collector + Jaeger ready in $((SECONDS - start)) s ($(go version 2>/dev/null || echo 'cached, no Go'))"
