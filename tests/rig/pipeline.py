"""The native stack (deploy/native/stack.sh: the real Collector, Jaeger v2 and Debian's
Prometheus) on free loopback ports, and readers of what arrived in Jaeger and Prometheus."""

from __future__ import annotations

import json
import os
import pathlib
import random
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import pytest

from .prometheus import PrometheusServer, prometheus_binary

ROOT = pathlib.Path(__file__).parent.parent.parent
STACK = ROOT / "deploy/native/stack.sh"

# stack.sh's port variables (see its header); each gets a free port.
PORT_VARIABLES = (
    "STACK_OTLP_GRPC_PORT",
    "STACK_OTLP_HTTP_PORT",
    "STACK_COLLECTOR_METRICS_PORT",
    "STACK_COLLECTOR_HEALTH_PORT",
    "STACK_JAEGER_PORT",
    "STACK_JAEGER_GRPC_PORT",
    "STACK_JAEGER_OTLP_PORT",
    "STACK_JAEGER_HEALTH_PORT",
    "STACK_PROMETHEUS_PORT",
)

# A build from scratch (module downloads + compiling two large Go programs) takes many
# minutes on a 2-core machine; CI builds first (.ci/install_pipeline.sh), so `up` then
# only starts the cached binaries.
UP_TIMEOUT = 3600.0


class StackPrometheus(PrometheusServer):
    """The stack's Prometheus: :class:`PrometheusServer`'s PromQL helpers on a server
    that stack.sh started (so nothing to start or stop here)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, expr: str) -> list[dict[str, Any]]:
        """As :meth:`PrometheusServer.query`, riding out a slow answer (a busy machine)."""
        for _ in range(2):
            try:
                return super().query(expr)
            except OSError:  # a timeout or a reset: ask again
                time.sleep(1)
        return super().query(expr)


@dataclass
class NativeStack:
    """A running stack: its addresses, and the command that controls it."""

    env: dict[str, str]
    ports: dict[str, int]
    up_seconds: float = 0.0
    log: list[str] = field(default_factory=list)

    def url(self, variable: str) -> str:
        return f"http://127.0.0.1:{self.ports[variable]}"

    @property
    def otlp_grpc(self) -> str:
        return self.url("STACK_OTLP_GRPC_PORT")

    @property
    def otlp_http(self) -> str:
        return self.url("STACK_OTLP_HTTP_PORT")

    @property
    def jaeger(self) -> str:
        return self.url("STACK_JAEGER_PORT")

    @property
    def prometheus(self) -> StackPrometheus:
        return StackPrometheus(self.url("STACK_PROMETHEUS_PORT"))

    def run(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """``stack.sh ARGS`` with this stack's ports and state directory."""
        done = subprocess.run(
            ["bash", str(STACK), *args],
            env=self.env, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        self.log.append(f"$ stack.sh {' '.join(args)} -> {done.returncode}\n{done.stderr}")
        return done

    def check(self, *args: str, timeout: float = 120.0) -> str:
        done = self.run(*args, timeout=timeout)
        assert done.returncode == 0, f"stack.sh {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout

    # --- Jaeger's HTTP API (the one its UI uses) ----------------------------------

    def jaeger_get(self, path: str, **params: Any) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.jaeger}{path}?{query}", timeout=30) as r:
            return json.load(r)

    def traces(self, service: str, instance: str, start_us: int) -> list[dict[str, Any]]:
        """The service's traces since ``start_us`` whose process carries
        ``service.instance.id=instance`` (each test run sets its own)."""
        body = self.jaeger_get(
            "/api/traces", service=service, start=start_us, limit=1000, lookback="custom"
        )
        return [t for t in body.get("data") or [] if instance_of(t) == instance]

    def wait_for_traces(
        self,
        service: str,
        instance: str,
        start_us: int,
        predicate: Callable[[list[dict[str, Any]]], bool],
        timeout: float = 60.0,
    ) -> list[dict[str, Any]]:
        """Poll Jaeger (bounded) until ``predicate(traces)``; returns the last answer."""
        deadline = time.monotonic() + timeout
        traces: list[dict[str, Any]] = []
        while True:
            try:
                traces = self.traces(service, instance, start_us)
            except OSError:
                if time.monotonic() >= deadline:  # a busy machine: slow, not wrong
                    raise
            if predicate(traces) or time.monotonic() >= deadline:
                return traces
            time.sleep(0.5)


def instance_of(trace: dict[str, Any]) -> Optional[str]:
    """The ``service.instance.id`` of a Jaeger trace's (first) process."""
    for process in trace.get("processes", {}).values():
        for tag in process.get("tags", []):
            if tag["key"] == "service.instance.id":
                return str(tag["value"])
    return None


def tags(span: dict[str, Any]) -> dict[str, Any]:
    """A Jaeger span's tags as a dict."""
    return {t["key"]: t["value"] for t in span.get("tags", [])}


def spans_of(traces: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for t in traces for s in t["spans"]]


def parent_id(span: dict[str, Any]) -> Optional[str]:
    for ref in span.get("references", []):
        if ref.get("refType") == "CHILD_OF":
            return str(ref["spanID"])
    return None


def timeline(trace: dict[str, Any], width: int = 48) -> str:
    """A Jaeger trace as the text timeline its UI draws: one bar per span, children
    indented under their parent, in start order."""
    spans = sorted(trace["spans"], key=lambda s: s["startTime"])
    ids = {s["spanID"] for s in spans}
    children: dict[Optional[str], list[dict[str, Any]]] = {}
    for s in spans:
        parent = parent_id(s)
        children.setdefault(parent if parent in ids else None, []).append(s)
    t0 = min(s["startTime"] for s in spans)
    total = max(s["startTime"] + s["duration"] for s in spans) - t0 or 1
    lines: list[str] = []

    def note(span: dict[str, Any]) -> str:
        t = tags(span)
        if "aiohttp.connection.release.reason" in t:
            reason = t["aiohttp.connection.release.reason"]
            phase = t.get("aiohttp.connection.release.phase")
            reused = t.get("aiohttp.connection.reused")
            return f" {reason}{'/' + phase if phase else ''} reused={reused}"
        if "aiohttp.pool.blocking_limit" in t:
            return f" blocked by {t['aiohttp.pool.blocking_limit']}"
        return ""

    def walk(span: dict[str, Any], depth: int) -> None:
        start = round((span["startTime"] - t0) / total * width)
        length = max(1, round(span["duration"] / total * width))
        bar = (" " * start + "#" * length).ljust(width)[:width]
        name = ("  " * depth + span["operationName"]).ljust(34)
        lines.append(f"{name} |{bar}| {span['duration'] / 1000:7.1f} ms{note(span)}")
        for child in children.get(span["spanID"], []):
            walk(child, depth + 1)

    for root in children.get(None, []):
        walk(root, 0)
    return "\n".join(lines)


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = pathlib.Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def pick_ports(count: int) -> list[int]:
    """Free ports below the ephemeral range: a port from bind(0) is one that outgoing
    connections (many, on a shared machine) may take before the stack binds it."""
    low, _ = _ephemeral_range()
    chosen: list[int] = []
    candidates = random.sample(range(10000, max(low, 10001 + count)), k=4 * count + 50)
    for port in candidates:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        chosen.append(port)
        if len(chosen) == count:
            return chosen
    raise RuntimeError("no free loopback ports")


def _require(binary: Optional[str], what: str, install: str) -> None:
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail(f"{what} missing in CI: {install}")
        pytest.skip(f"{what} is not installed: {install}")


def start_native_stack(state_dir: pathlib.Path) -> Iterator[NativeStack]:
    """Body of the session fixture: ``stack.sh up`` on free ports, then ``down``."""
    _require(shutil.which("go"), "Go (>= 1.26)", "the pipeline tests build the Collector "
             "and Jaeger from the Go module proxy; install Go 1.26")  # fmt: skip
    _require(prometheus_binary(), "Debian's prometheus", "bash .ci/install_prometheus.sh")
    t0 = time.monotonic()
    for attempt in range(3):
        ports = dict(zip(PORT_VARIABLES, pick_ports(len(PORT_VARIABLES))))
        env = dict(os.environ, STACK_STATE_DIR=str(state_dir), STACK_WAIT_SECONDS="120")
        env.update({name: str(port) for name, port in ports.items()})
        stack = NativeStack(env, ports)
        done = stack.run("up", timeout=UP_TIMEOUT)
        # Another program may take a port between the pick and the bind: pick again.
        if done.returncode == 0 or "already in use" not in done.stderr or attempt == 2:
            break
    stack.up_seconds = time.monotonic() - t0
    try:
        if done.returncode != 0:
            pytest.fail(f"stack.sh up failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        yield stack
    finally:
        stack.run("down")
