#!/usr/bin/env bash
# The compose stack without Docker: the OpenTelemetry Collector and Jaeger v2 built from
# the Go module proxy (deploy/native/build.sh) and Debian's Prometheus, on 127.0.0.1.
#
#   deploy/native/stack.sh up       build what is missing, start all three, wait for health
#   deploy/native/stack.sh status   what runs, and whether it answers its health check
#   deploy/native/stack.sh down     stop what `up` started (by the pids it recorded);
#                                   `down collector` stops one service, `up` restarts it
#
# The configs are the ones docker-compose.yml mounts (deploy/otel-collector-config.yaml,
# deploy/jaeger.yaml, deploy/prometheus.yml); only the addresses differ. The Collector and
# Jaeger read theirs from ${env:...} variables set here; Prometheus has no such expansion,
# so its config is derived at start into the state directory, with the Collector's scrape
# target rewritten and every other file of deploy/ linked beside it (rule_files resolve
# relative to the config file).
#
# Ports (defaults: the compose stack's host ports), each overridable, e.g. for tests:
#   STACK_OTLP_GRPC_PORT=4317  STACK_OTLP_HTTP_PORT=4318   OTLP into the Collector
#   STACK_COLLECTOR_METRICS_PORT=8889  STACK_COLLECTOR_HEALTH_PORT=13133
#   STACK_JAEGER_PORT=16686 (query API and UI)  STACK_JAEGER_GRPC_PORT=16685
#   STACK_JAEGER_OTLP_PORT=14317  STACK_JAEGER_HEALTH_PORT=14133   (Jaeger's own OTLP
#       receiver and health check: in compose 4317/13133 inside its container; here the
#       Collector holds those)
#   STACK_PROMETHEUS_PORT=9090
# STACK_STATE_DIR (default ~/.local/state/aiohttp-pool-otel/stack): pids, logs, data.
# STACK_WAIT_SECONDS=90: how long `up` waits for each health endpoint.
# PROMETHEUS_BIN: the prometheus binary (default: `prometheus` on PATH).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
deploy="$(dirname "$here")"
state="${STACK_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/aiohttp-pool-otel/stack}"
host=127.0.0.1
services=(jaeger collector prometheus)   # start order; stopped in reverse

die() { echo "stack.sh: error: $*" >&2; exit 1; }
say() { echo "stack.sh: $*" >&2; }

load_ports() {
  otlp_grpc="${STACK_OTLP_GRPC_PORT:-4317}"
  otlp_http="${STACK_OTLP_HTTP_PORT:-4318}"
  collector_metrics="${STACK_COLLECTOR_METRICS_PORT:-8889}"
  collector_health="${STACK_COLLECTOR_HEALTH_PORT:-13133}"
  jaeger_http="${STACK_JAEGER_PORT:-16686}"
  jaeger_grpc="${STACK_JAEGER_GRPC_PORT:-16685}"
  jaeger_otlp="${STACK_JAEGER_OTLP_PORT:-14317}"
  jaeger_health="${STACK_JAEGER_HEALTH_PORT:-14133}"
  prometheus_port="${STACK_PROMETHEUS_PORT:-9090}"
}

# The ports a running stack was started with win over the environment.
load_recorded_ports() {
  if [ -f "$state/ports.env" ]; then
    # shellcheck source=/dev/null
    . "$state/ports.env"
  else
    load_ports
  fi
}

record_ports() {
  cat >"$state/ports.env" <<EOF
otlp_grpc=$otlp_grpc
otlp_http=$otlp_http
collector_metrics=$collector_metrics
collector_health=$collector_health
jaeger_http=$jaeger_http
jaeger_grpc=$jaeger_grpc
jaeger_otlp=$jaeger_otlp
jaeger_health=$jaeger_health
prometheus_port=$prometheus_port
EOF
}

health_url() {
  case "$1" in
    jaeger) echo "http://$host:$jaeger_health/status" ;;
    collector) echo "http://$host:$collector_health/" ;;
    prometheus) echo "http://$host:$prometheus_port/-/ready" ;;
  esac
}

# Is the process recorded for service $1 alive and still the program we started?
# (A pid alone could have been reused by the time `down` runs.)
running_pid() {
  local pidfile="$state/$1.pid" pid exe
  [ -f "$pidfile" ] || return 1
  pid="$(cat "$pidfile")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
  [ -z "$exe" ] || [ "$exe" = "$(cat "$state/$1.exe" 2>/dev/null)" ] || return 1
  echo "$pid"
}

healthy() { curl -fsS -o /dev/null --max-time 2 "$(health_url "$1")" 2>/dev/null; }

port_busy() { (exec 3<>"/dev/tcp/$host/$1") 2>/dev/null; }

require_tools() {
  command -v curl >/dev/null 2>&1 || die "curl is missing (apt-get install curl): it polls the health endpoints"
  prometheus_bin="${PROMETHEUS_BIN:-$(command -v prometheus || true)}"
  if [ -z "$prometheus_bin" ] || [ ! -x "$prometheus_bin" ]; then
    die "prometheus is missing: install Debian's package without starting its service, as CI does: sudo bash .ci/install_prometheus.sh (or apt-get install prometheus, then systemctl disable --now prometheus), or set PROMETHEUS_BIN"
  fi
}

start() {   # start NAME BINARY ARGS... (environment already exported by the caller)
  local name="$1"; shift
  nohup "$@" >"$state/$name.log" 2>&1 </dev/null &
  echo $! >"$state/$name.pid"
  readlink -f "$1" >"$state/$name.exe"
}

wait_healthy() {
  local name="$1" deadline=$((SECONDS + ${STACK_WAIT_SECONDS:-90}))
  until healthy "$name"; do
    # kill -0, not running_pid: right after start the child may still be nohup, not yet
    # the service's binary (a loaded machine shows it), and only death is failure here.
    if ! kill -0 "$(cat "$state/$name.pid" 2>/dev/null || echo 0)" 2>/dev/null; then
      tail -20 "$state/$name.log" >&2 || true
      stop_all
      die "$name exited during start-up (log: $state/$name.log)"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -20 "$state/$name.log" >&2 || true
      stop_all
      die "$name did not answer $(health_url "$name") within ${STACK_WAIT_SECONDS:-90}s"
    fi
    sleep 0.2
  done
  say "$name is up ($(health_url "$name"))"
}

# Prometheus has no ${env:...} expansion: derive its config from the one source.
prometheus_config() {
  local dir="$state/prometheus-config" entry
  rm -rf "$dir"; mkdir -p "$dir"
  for entry in "$deploy"/*; do
    [ "$(basename "$entry")" = prometheus.yml ] || ln -s "$entry" "$dir/"
  done
  sed -E "s/otel-collector:[0-9]+/$host:$collector_metrics/g" "$deploy/prometheus.yml" >"$dir/prometheus.yml"
  grep -q "$host:$collector_metrics" "$dir/prometheus.yml" \
    || die "deploy/prometheus.yml has no otel-collector:PORT target to point at the native Collector"
  echo "$dir/prometheus.yml"
}

# The ports a service of this stack listens on (checked free before it starts).
ports_of() {
  case "$1" in
    jaeger) echo "$jaeger_http $jaeger_grpc $jaeger_otlp $jaeger_health" ;;
    collector) echo "$otlp_grpc $otlp_http $collector_metrics $collector_health" ;;
    prometheus) echo "$prometheus_port" ;;
  esac
}

start_service() {
  case "$1" in
    jaeger)
      JAEGER_OTLP_GRPC_ENDPOINT="$host:$jaeger_otlp" \
      JAEGER_QUERY_HTTP_ENDPOINT="$host:$jaeger_http" \
      JAEGER_QUERY_GRPC_ENDPOINT="$host:$jaeger_grpc" \
      JAEGER_HEALTH_ENDPOINT="$host:$jaeger_health" \
        start jaeger "$jaeger_bin" --config="$deploy/jaeger.yaml" ;;
    collector)
      OTELCOL_OTLP_GRPC_ENDPOINT="$host:$otlp_grpc" \
      OTELCOL_OTLP_HTTP_ENDPOINT="$host:$otlp_http" \
      OTELCOL_PROMETHEUS_ENDPOINT="$host:$collector_metrics" \
      OTELCOL_HEALTH_ENDPOINT="$host:$collector_health" \
      JAEGER_OTLP_GRPC_ENDPOINT="$host:$jaeger_otlp" \
        start collector "$collector_bin" --config="$deploy/otel-collector-config.yaml" ;;
    prometheus)
      local config; config="$(prometheus_config)"
      start prometheus "$prometheus_bin" \
        --config.file="$config" \
        --storage.tsdb.path="$state/prometheus-data" \
        --web.listen-address="$host:$prometheus_port" \
        --log.level=warn ;;
  esac
  wait_healthy "$1"
}

# Starts every service that is not running (all of them on a fresh `up`; after
# `down collector`, the Collector alone, on the ports the others were started with).
up() {
  mkdir -p "$state"
  local name missing=()
  for name in "${services[@]}"; do
    running_pid "$name" >/dev/null || missing+=("$name")
  done
  if [ "${#missing[@]}" -lt "${#services[@]}" ]; then
    load_recorded_ports          # a partly running stack keeps its ports
  else
    load_ports
  fi
  if [ "${#missing[@]}" -eq 0 ]; then
    say "already running (state: $state)"; urls; return 0
  fi
  require_tools
  local port
  for name in "${missing[@]}"; do
    for port in $(ports_of "$name"); do
      port_busy "$port" && die "127.0.0.1:$port ($name) is already in use (another stack? \`docker compose down\`, or set the STACK_*_PORT variables)"
    done
  done

  local binaries
  binaries="$(bash "$here/build.sh" all)"
  collector_bin="$(sed -n 's/^collector=//p' <<<"$binaries")"
  jaeger_bin="$(sed -n 's/^jaeger=//p' <<<"$binaries")"
  record_ports
  for name in "${missing[@]}"; do start_service "$name"; done
  urls
}

urls() {
  cat <<EOF
OTLP (app -> Collector): gRPC http://$host:$otlp_grpc   HTTP http://$host:$otlp_http
Jaeger query API:        http://$host:$jaeger_http/api/services (the UI's API; the UI itself is in the Docker image)
Prometheus:              http://$host:$prometheus_port
Collector /metrics:      http://$host:$collector_metrics/metrics   health: http://$host:$collector_health/
State (pids, logs):      $state
EOF
}

stop_one() {
  local name="$1" pid i
  if pid="$(running_pid "$name")"; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      say "$name (pid $pid) ignored SIGTERM for 10 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    say "stopped $name (pid $pid)"
  fi
  rm -f "$state/$name.pid" "$state/$name.exe"
}

stop_all() {
  local i
  for ((i = ${#services[@]} - 1; i >= 0; i--)); do stop_one "${services[$i]}"; done
  rm -f "$state/ports.env"
}

# down: everything; down NAME...: those services only (e.g. the Collector, to see what
# an application does while it is away; `up` brings it back on the same ports).
down() {
  [ -d "$state" ] || { say "nothing to stop (no $state)"; return 0; }
  if [ "$#" -eq 0 ]; then stop_all; return 0; fi
  local name
  for name in "$@"; do
    case " ${services[*]} " in *" $name "*) stop_one "$name" ;; *) die "no service $name (${services[*]})" ;; esac
  done
}

status() {
  load_recorded_ports
  local name pid up=0
  for name in "${services[@]}"; do
    if pid="$(running_pid "$name")"; then
      if healthy "$name"; then
        echo "$name: running (pid $pid), healthy at $(health_url "$name")"; up=$((up + 1))
      else
        echo "$name: running (pid $pid), NOT answering $(health_url "$name")"
      fi
    else
      echo "$name: stopped"
    fi
  done
  [ "$up" -eq "${#services[@]}" ]
}

case "${1:-}" in
  up) up ;;
  down) shift; down "$@" ;;
  status) status ;;
  *) echo "usage: $0 up | down [jaeger|collector|prometheus ...] | status" >&2; exit 2 ;;
esac
