"""The real pipeline, end to end: the demo and an instrumented app send OTLP (gRPC and
HTTP) to the real OpenTelemetry Collector; traces go on to the real Jaeger v2 and are read
back through its HTTP API (the one its UI uses); metrics go through the Collector's
Prometheus exporter to Debian's Prometheus, scraping it per deploy/prometheus.yml. The
stack is deploy/native/stack.sh on free loopback ports (tests/rig/pipeline.py)."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import socket
import subprocess
import sys
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Optional

import aiohttp
import pytest
from opentelemetry.instrumentation.aiohttp_client import create_trace_config

from aiohttp_pool_otel import (
    OpenTelemetryTCPConnector,
    ReleaseReason,
    configure_otlp,
    create_pool_trace_config,
)

from .conftest import Server
from .rig.dashboard import fill, has_finite_value, panel_queries
from .rig.docs import code_blocks, read, section
from .rig.pipeline import (
    UP_TIMEOUT,
    NativeStack,
    parent_id,
    spans_of,
    start_native_stack,
    tags,
    timeline,
)
from .rig.reads import get_text
from .test_prometheus import readme_queries

pytestmark = [pytest.mark.pipeline, pytest.mark.timeout(UP_TIMEOUT + 600)]

DEMO_SERVICE = "aiohttp-pool-otel-demo"
LEASE = "aiohttp.connection.lease"
WAIT = "aiohttp.connection.wait"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    yield from start_native_stack(tmp_path_factory.mktemp("stack"))


def new_instance(monkeypatch: pytest.MonkeyPatch) -> str:
    """A service.instance.id of this run's own (Prometheus: the `instance` label)."""
    instance = uuid.uuid4().hex
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", f"service.instance.id={instance}")
    return instance


@dataclass
class DemoRun:
    """One `aiohttp-pool-otel demo --otlp` run and what it printed (--json)."""

    protocol: str
    instance: str
    start_us: int
    report: dict[str, Any]

    def printed_leases(self) -> Counter[tuple[Any, ...]]:
        """(port, reason, phase, outcome) of every lease span the demo printed."""
        return Counter(
            lease_key(s["attributes"]) for s in self.report["spans"] if s["name"] == LEASE
        )

    def printed_releases(self) -> Counter[tuple[str, str]]:
        """(reason, outcome) of every release in the demo's table."""
        return Counter(
            (r["reason"], r["outcome"]) for row in self.report["rows"] for r in row["releases"]
        )


def lease_key(attributes: dict[str, Any]) -> tuple[Any, ...]:
    return (
        int(attributes["server.port"]),
        attributes["aiohttp.connection.release.reason"],
        attributes.get("aiohttp.connection.release.phase"),
        attributes["aiohttp.connection.release.outcome"],
    )


def run_demo(
    stack: NativeStack,
    scenario: str,
    protocol: str,
    service: Optional[str] = None,
    duration: Optional[float] = None,
) -> DemoRun:
    """The demo as a user runs it, with an explicit endpoint and protocol (and
    OTEL_SERVICE_NAME=service, --duration duration when given)."""
    instance = uuid.uuid4().hex
    endpoint = stack.otlp_grpc if protocol == "grpc" else stack.otlp_http
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["OTEL_RESOURCE_ATTRIBUTES"] = f"service.instance.id={instance}"
    if service is not None:
        env["OTEL_SERVICE_NAME"] = service
    start_us = int((time.time() - 5) * 1e6)
    done = subprocess.run(
        [sys.executable, "-m", "aiohttp_pool_otel", "demo", "--scenario", scenario,
         "--otlp", endpoint, "--protocol", protocol, "--json", "--quiet",
         *([] if duration is None else ["--duration", f"{duration:g}"])],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return DemoRun(protocol, instance, start_us, json.loads(done.stdout))


@pytest.fixture(scope="module")
def puzzles(stack: NativeStack) -> dict[str, DemoRun]:
    return {p: run_demo(stack, "puzzle", p) for p in ("grpc", "http/protobuf")}


# --- traces: Collector -> Jaeger ------------------------------------------------------


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_the_demos_spans_arrive_in_jaeger_as_printed(
    stack: NativeStack, puzzles: dict[str, DemoRun], protocol: str
) -> None:
    run = puzzles[protocol]
    printed = run.printed_leases()
    names = Counter(s["name"] for s in run.report["spans"])
    traces = stack.wait_for_traces(
        DEMO_SERVICE, run.instance, run.start_us,
        lambda ts: Counter(s["operationName"] for s in spans_of(ts)) == names,
    )  # fmt: skip
    spans = spans_of(traces)
    # Every span the demo made, none more (the demo's own request spans included).
    assert Counter(s["operationName"] for s in spans) == names
    for trace in traces:
        assert {p["serviceName"] for p in trace["processes"].values()} == {DEMO_SERVICE}

    leases = [s for s in spans if s["operationName"] == LEASE]
    assert Counter(lease_key(tags(s)) for s in leases) == printed
    # The puzzle's answer, as the docs tell it: 2 x eof at the headers, pooled
    # (small), 3 x close, closed (slow).
    ports = {name: int(url.rsplit(":", 1)[1]) for name, url in run.report["hosts"].items()}
    assert printed == Counter(
        {
            (ports["small"], "eof", "headers", "pooled"): 2,
            (ports["slow"], "close", None, "closed"): 3,
        }
    )
    # Each lease under the demo's request span that acquired it, in the same trace.
    by_id = {s["spanID"]: s for s in spans}
    for lease in leases:
        parent = by_id[parent_id(lease) or ""]
        assert parent["operationName"].startswith("GET "), parent["operationName"]
        assert parent["traceID"] == lease["traceID"]
        host = parent["operationName"].split()[1]
        assert tags(lease)["server.port"] == ports[host]


def test_the_leak_scenarios_timed_out_wait_in_jaeger(stack: NativeStack) -> None:
    run = run_demo(stack, "leak", "http/protobuf")
    (printed,) = [
        s["attributes"] for s in run.report["spans"]
        if s["name"] == WAIT and "error.type" in s["attributes"]
    ]  # fmt: skip
    assert printed["error.type"] == "pool_wait_timeout"

    def timed_out(traces: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            s for s in spans_of(traces)
            if s["operationName"] == WAIT and "error.type" in tags(s)
        ]  # fmt: skip

    traces = stack.wait_for_traces(DEMO_SERVICE, run.instance, run.start_us, timed_out)
    (wait,) = timed_out(traces)
    t = tags(wait)
    # Every attribute as the demo printed it, with the ERROR status on top.
    assert {k: t[k] for k in printed} == printed
    assert t["otel.status_code"] == "ERROR"
    assert t["error"] is True
    assert t["aiohttp.pool.active"] == 3
    assert t["aiohttp.pool.blocking_limit"] == "limit_per_host"
    # The picture of the pool at the timeout: a pool_key event per busy key.
    events = [{f["key"]: f["value"] for f in log["fields"]} for log in wait["logs"]]
    pool_keys = [e for e in events if e.get("event") == "pool_key"]
    assert pool_keys and pool_keys[0]["aiohttp.pool.active"] == 3


async def test_contrib_request_spans_parent_the_pool_spans_in_jaeger(
    stack: NativeStack, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The docs' trace (two requests through one slot, the contrib instrumentation's
    GET spans, the default connector) sent over gRPC and fetched back from Jaeger."""
    service = "aiohttp-pool-otel-pipeline"
    instance = new_instance(monkeypatch)
    start_us = int((time.time() - 5) * 1e6)
    otel = configure_otlp(
        service_name=service, endpoint=stack.otlp_grpc, protocol="grpc", set_global=False
    )
    tp, mp = otel.tracer_provider, otel.meter_provider
    connector = OpenTelemetryTCPConnector(
        limit_per_host=1, family=socket.AF_INET, tracer_provider=tp, meter_provider=mp
    )
    url = f"http://localhost:{server.port}/late"  # a name, so that DNS is resolved
    async with aiohttp.ClientSession(
        connector=connector,
        trace_configs=[create_trace_config(tracer_provider=tp)],  # the contrib GET spans
    ) as session:
        await asyncio.gather(get_text(session, url), get_text(session, url))
    await asyncio.to_thread(otel.shutdown)

    want = Counter({"GET": 2, "aiohttp.connection.create": 1, "aiohttp.dns.resolve": 1,
                    LEASE: 1, WAIT: 1})  # fmt: skip
    traces = await asyncio.to_thread(
        stack.wait_for_traces, service, instance, start_us,
        lambda ts: Counter(s["operationName"] for s in spans_of(ts)) == want,
    )  # fmt: skip
    spans = spans_of(traces)
    assert Counter(s["operationName"] for s in spans) == want
    by_id = {s["spanID"]: s for s in spans}
    children: dict[str, list[str]] = {}
    for s in spans:
        children.setdefault(parent_id(s) or "", []).append(s["operationName"])
    first, second = sorted(
        (s for s in spans if s["operationName"] == "GET"), key=lambda s: s["startTime"]
    )
    assert tags(first)["span.kind"] == "client"
    assert sorted(children[first["spanID"]]) == ["aiohttp.connection.create", LEASE]
    assert children[second["spanID"]] == [WAIT]
    (create,) = [s for s in spans if s["operationName"] == "aiohttp.connection.create"]
    assert children[create["spanID"]] == ["aiohttp.dns.resolve"]
    (lease,) = [s for s in spans if s["operationName"] == LEASE]
    assert by_id[parent_id(lease) or ""] is first
    assert (tags(lease)["aiohttp.connection.release.reason"],
            tags(lease)["aiohttp.connection.release.phase"]) == ("eof", "body")  # fmt: skip
    # The request span ends at the headers; the lease runs on to the body's EOF.
    assert lease["startTime"] + lease["duration"] > first["startTime"] + first["duration"]

    # The docs' timeline is this trace's shape (names, nesting, notes; not times).
    drawn = timeline({"spans": spans})
    print(f"\n{drawn}")
    assert shape(readme_timeline()) == shape(drawn)


def readme_timeline() -> str:
    """The timeline of "A real trace, fetched from Jaeger" in docs/deployment.md."""
    real = section(read("docs/deployment.md"), "A real trace, fetched from Jaeger")
    (drawn,) = [block for block in code_blocks(real, "text") if block.startswith("GET ")]
    return drawn


def shape(text: str) -> list[tuple[str, str]]:
    """(indented span name, note) per timeline line: what must not change."""
    lines = []
    for line in text.strip().splitlines():
        name, rest = line.split("|", 1)
        note = rest.rsplit(" ms", 1)[1].strip()
        lines.append((name.rstrip(), note))
    return lines


# --- metrics: Collector -> Prometheus exporter -> Prometheus ------------------------


def by_labels(result: list[dict[str, Any]], *labels: str) -> dict[tuple[str, ...], float]:
    return {tuple(r["metric"].get(k, "") for k in labels): float(r["value"][1]) for r in result}


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_the_demos_metrics_in_prometheus_match_what_it_printed(
    stack: NativeStack, puzzles: dict[str, DemoRun], protocol: str
) -> None:
    run = puzzles[protocol]
    prometheus = stack.prometheus
    printed = run.printed_releases()
    assert printed == Counter({("eof", "pooled"): 2, ("close", "closed"): 3})
    want = {k: float(v) for k, v in printed.items()}
    labels = ("aiohttp_connection_release_reason", "aiohttp_connection_release_outcome")
    expr = (
        f"sum by ({', '.join(labels)}) "
        f'(aiohttp_client_connection_releases_total{{instance="{run.instance}"}})'
    )
    result = prometheus.wait_for(expr, lambda r: by_labels(r, *labels) == want, timeout=60)
    assert by_labels(result, *labels) == want

    # The table's `conn` column: which requests dialled, which reused, per host.
    ports = {url.rsplit(":", 1)[1]: name for name, url in run.report["hosts"].items()}
    for metric, kind in (("created", "new"), ("reused", "reused")):
        rows = Counter(r["host"] for r in run.report["rows"] if r["connection"] == kind)
        expr = (
            f"sum by (server_port) "
            f'(aiohttp_client_connection_{metric}_total{{instance="{run.instance}"}})'
        )
        result = prometheus.wait_for(
            expr, lambda r, rows=rows: {ports[k[0]]: v for k, v in by_labels(r, "server_port")
                                        .items() if v} == rows,
        )  # fmt: skip
        got = {ports[k[0]]: v for k, v in by_labels(result, "server_port").items() if v}
        assert got == rows, metric
    # job and instance come from the resource (honor_labels: true in deploy/prometheus.yml).
    (up,) = prometheus.query(f'target_info{{instance="{run.instance}"}}')
    assert up["metric"]["job"] == DEMO_SERVICE


async def test_every_readme_and_dashboard_query_returns_series(
    stack: NativeStack, server: Server, server2: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An app with every pool signal the queries read (queueing, held connections, a
    pool-wait timeout, a leak, hold times) exports over OTLP/HTTP; every PromQL query of
    the README answers from the real Prometheus, and every query of the Grafana dashboard,
    filtered to this app's service and instance, draws a line (a finite value: a
    quantile of a window where nothing ended would be NaN, which Grafana leaves blank)."""
    service = "aiohttp-pool-otel-pipeline"
    instance = new_instance(monkeypatch)
    otel = configure_otlp(
        service_name=service, endpoint=stack.otlp_http,
        protocol="http/protobuf", export_interval_millis=1000, set_global=False,
    )  # fmt: skip
    tp, mp = otel.tracer_provider, otel.meter_provider
    connector = OpenTelemetryTCPConnector(
        limit=10, limit_per_host=2, tracer_provider=tp, meter_provider=mp,
        record_hold_time=True, watchdog_threshold=0.5, pool_name="pipeline",
    )  # fmt: skip
    prometheus = stack.prometheus
    dashboard = [fill(q.expr, service=service, instance=instance) for q in panel_queries()]
    # The docs' examples name their service "my-service": here it is this app's.
    docs = [q.replace('job="my-service"', f'job="{service}"') for q in readme_queries()]
    queries = [*dashboard, *docs]
    assert len(queries) > 20
    stop = asyncio.Event()
    try:
        async with aiohttp.ClientSession(
            connector=connector,
            trace_configs=[create_pool_trace_config(tracer_provider=tp, meter_provider=mp)],
        ) as session:

            async def worker() -> None:  # steady queued traffic: waits, holds, rates
                for _ in range(2000):
                    if stop.is_set():
                        return
                    async with session.get(server.url("/late")) as resp:
                        await resp.read()
                    # Let the waiter aiohttp just woke take the slot: without a yield
                    # this worker takes the pooled connection back at once, the others
                    # starve in the queue, and no wait ends for minutes (a wait-time
                    # quantile over a window with none is NaN).
                    await asyncio.sleep(0)

            workers = [asyncio.create_task(worker()) for _ in range(4)]
            # The other host: both slots held by endless bodies, two requests queued,
            # one more that gives up waiting (a pool-wait timeout).
            held = [await session.get(server2.url("/endless")) for _ in range(2)]
            queued = [asyncio.create_task(session.get(server2.url("/small"))) for _ in range(2)]
            with pytest.raises(asyncio.TimeoutError):
                await session.get(server2.url("/small"), timeout=aiohttp.ClientTimeout(connect=0.3))
            leaked = await session.get(server.url("/cut"))  # garbage-collected unclosed
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                del leaked
                gc.collect()
            # Bounded wait until the plugin counted the gc release (the leak queries).
            for _ in range(300):
                if connector.statistics().releases.get(ReleaseReason.GC, 0) >= 1:
                    break
                await asyncio.sleep(0.1)
                gc.collect()
            assert connector.statistics().releases.get(ReleaseReason.GC, 0) >= 1

            empty = []
            for query in queries:
                expr = query.replace("$__rate_interval", "1m")
                # Non-empty, as in test_prometheus; the dashboard's panels draw a number.
                wanted = has_finite_value if query in dashboard else bool
                result = await asyncio.to_thread(prometheus.wait_for, expr, wanted, 60)
                if not wanted(result):
                    empty.append(expr)
            # This app's own series are among them, with its instance label.
            mine = prometheus.query(
                "sum by (http_connection_state) "
                f'(http_client_open_connections{{instance="{instance}"}})'
            )
            assert by_labels(mine, "http_connection_state").get(("active",), 0) >= 2
            stop.set()
            await asyncio.gather(*workers)
            for resp in held:
                resp.close()
            for resp in await asyncio.gather(*queued):
                resp.release()
    finally:
        stop.set()
        await asyncio.to_thread(otel.shutdown)
    assert empty == []
