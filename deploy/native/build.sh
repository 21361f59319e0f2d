#!/usr/bin/env bash
# Build (or reuse) the native Collector and Jaeger v2 binaries from the Go module proxy.
#
#   deploy/native/build.sh [all|collector|jaeger]    prints NAME=PATH for each binary
#
# Pinned recipes, all in this repository:
#   deploy/native/jaeger/go.mod          `tool github.com/jaegertracing/jaeger/cmd/jaeger` at v1.75.0
#   deploy/native/otelcol-builder/go.mod `tool go.opentelemetry.io/collector/cmd/builder` (ocb) v0.165.0
#   deploy/otelcol-builder.yaml          ocb's manifest: the Collector's components and versions
# Outputs live in $AIOHTTP_POOL_OTEL_CACHE (default ~/.cache/aiohttp-pool-otel), one directory
# per recipe named after its version and the hash of its files, so a binary is reused until a
# pinned version or the manifest changes. Modules come through the go command's own cache
# (GOMODCACHE) and proxy (GOPROXY). Builds are serialised by a lock in the cache directory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
deploy="$(dirname "$here")"
cache="${AIOHTTP_POOL_OTEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aiohttp-pool-otel}"

die() { echo "build.sh: error: $*" >&2; exit 1; }
log() { echo "build.sh: $*" >&2; }

require_go() {
  command -v go >/dev/null 2>&1 \
    || die "Go is not installed (or not on PATH). The native stack builds the Collector and Jaeger from the Go module proxy and needs Go >= 1.26: install it from go.dev/dl (e.g. /usr/local/go/bin) and put its bin directory on PATH."
  local version major minor
  version="$(go env GOVERSION)"            # go1.26.8
  major="${version#go}"; major="${major%%.*}"
  minor="${version#go*.}"; minor="${minor%%.*}"
  if [ "$major" -lt 1 ] || { [ "$major" -eq 1 ] && [ "$minor" -lt 26 ]; }; then
    die "Go >= 1.26 is needed (the Collector's modules require it); found $version"
  fi
}

# sha256 of the given files, first 12 hex digits: the cache key of a recipe.
key_of() { cat "$@" | sha256sum | cut -c1-12; }

# The version a go.mod requires for a module path.
required_version() { awk -v m="$2" '$1 == m { print $2; exit }' "$1"; }

# Go is needed only to build: cached binaries run without it.
# Sane, lean build flags: no local paths in binaries, stripped symbols, and as many
# parallel compiles as cores (2 on the project's machines, which are shared).
go_ready=0
go_env() {
  [ "$go_ready" = 1 ] && return 0
  require_go
  go_ready=1
  export GOFLAGS="${GOFLAGS:+$GOFLAGS }-trimpath -buildvcs=false -p=${STACK_BUILD_JOBS:-$(nproc)}"
  export CGO_ENABLED=0
}

# build_tool MODULE_DIR PACKAGE OUT: `go build` a tool pinned by a go.mod of ours.
build_tool() {
  local dir="$1" package="$2" out="$3"
  (cd "$dir" && go build -ldflags='-s -w' -o "$out" "$package")
}

# publish TMP FINAL: move a finished build into place (atomically, so a half-built
# directory is never taken for a cached one).
publish() { rm -rf "$2"; mv "$1" "$2"; }

ocb_path() {
  local mod="$here/otelcol-builder"
  local version; version="$(required_version "$mod/go.mod" go.opentelemetry.io/collector/cmd/builder)"
  echo "$cache/ocb-$version-$(key_of "$mod/go.mod" "$mod/go.sum")/ocb"
}

collector_path() {
  local manifest="$deploy/otelcol-builder.yaml"
  local version; version="$(awk '$1 == "version:" { print $2; exit }' "$manifest")"
  echo "$cache/otelcol-$version-$(key_of "$manifest" "$here/otelcol-builder/go.mod")/otelcol-aiohttp-pool"
}

jaeger_path() {
  local mod="$here/jaeger"
  local version; version="$(required_version "$mod/go.mod" github.com/jaegertracing/jaeger)"
  echo "$cache/jaeger-$version-$(key_of "$mod/go.mod" "$mod/go.sum")/jaeger"
}

build_ocb() {
  local out; out="$(ocb_path)"
  [ -x "$out" ] && return 0
  go_env
  log "building the OpenTelemetry Collector Builder -> $out"
  local tmp="${out%/*}.tmp.$$"
  mkdir -p "$tmp"
  build_tool "$here/otelcol-builder" go.opentelemetry.io/collector/cmd/builder "$tmp/ocb"
  publish "$tmp" "$(dirname "$out")"
}

build_collector() {
  local out; out="$(collector_path)"
  [ -x "$out" ] && { echo "collector=$out"; return 0; }
  go_env
  build_ocb
  log "building the Collector from deploy/otelcol-builder.yaml -> $out (minutes the first time)"
  local tmp="${out%/*}.tmp.$$"
  mkdir -p "$tmp/work"
  # ocb writes its generated module to the manifest's relative output_path: run it in a
  # scratch directory so nothing lands in the repository.
  (cd "$tmp/work" && "$(ocb_path)" --config "$deploy/otelcol-builder.yaml" --ldflags '-s -w' >build.log 2>&1) \
    || { tail -40 "$tmp/work/build.log" >&2; die "the Collector build failed (log above)"; }
  mv "$tmp/work/otelcol/otelcol-aiohttp-pool" "$tmp/"
  rm -rf "$tmp/work"
  publish "$tmp" "$(dirname "$out")"
  echo "collector=$out"
}

build_jaeger() {
  local out; out="$(jaeger_path)"
  [ -x "$out" ] && { echo "jaeger=$out"; return 0; }
  go_env
  log "building Jaeger v2 -> $out (its largest part: about 10 minutes on 2 busy cores)"
  local tmp="${out%/*}.tmp.$$"
  mkdir -p "$tmp"
  build_tool "$here/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger "$tmp/jaeger"
  publish "$tmp" "$(dirname "$out")"
  echo "jaeger=$out"
}

main() {
  local what="${1:-all}"
  case "$what" in all|collector|jaeger) ;; *) die "usage: build.sh [all|collector|jaeger]";; esac
  mkdir -p "$cache"
  exec 9>"$cache/.build.lock"
  flock 9    # another build (a test session, a second shell) finishes first; then reuse
  case "$what" in
    all) build_collector; build_jaeger ;;
    collector) build_collector ;;
    jaeger) build_jaeger ;;
  esac
}

main "$@"
