"""The alerting rules evaluated by a real Prometheus (Debian's package) scraping the
plugin's real metrics through opentelemetry-exporter-prometheus: the demo's scenarios
raise the alerts they teach about (the `leak` scenario's garbage-collected response the
leak alert), and steady healthy traffic raises none.

The scenarios last a second or two, so Prometheus scrapes every 250 ms to see them (in
production a saturated or leaking pool stays so for minutes); the rules' `for:` keeps
most alerts `pending` during a test, which is what is asserted.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from aiohttp_pool_otel import OpenTelemetryTCPConnector

from .conftest import Server
from .rig.prometheus import PrometheusServer, prometheus_binary

pytestmark = pytest.mark.prometheus

ROOT = pathlib.Path(__file__).parent.parent
RULES = ROOT / "deploy/alerts.yml"
# How long the healthy run is evaluated; CI keeps the default.
QUIET_SECONDS = float(os.environ.get("ALERTS_QUIET_SECONDS", "120"))
ALL_ALERTS = {
    "AiohttpPoolSaturated",
    "AiohttpPoolSlowWaits",
    "AiohttpPoolWaitTimeouts",
    "AiohttpPoolConnectionLeak",
    "AiohttpPoolConnectionsHeldTooLong",
    "AiohttpPoolConnectionChurn",
}


class Stack:
    """A meter provider exported for Prometheus, and a Prometheus evaluating the rules."""

    def __init__(
        self, meter_provider: Any, exporter_port: int, prometheus: PrometheusServer
    ) -> None:
        self.meter_provider = meter_provider
        self.instance = f"127.0.0.1:{exporter_port}"
        self.prometheus = prometheus

    def active(self) -> list[dict[str, Any]]:
        return self.prometheus.alerts()

    def wait_for_alerts(self, names: set[str], timeout: float = 60.0) -> list[dict[str, Any]]:
        """Poll /api/v1/alerts (bounded) until every alert in ``names`` is active."""
        deadline = time.monotonic() + timeout
        alerts = self.active()
        while not names <= {a["labels"]["alertname"] for a in alerts}:
            if time.monotonic() > deadline:
                raise AssertionError(f"not active after {timeout}s: {names}; active: {alerts}")
            time.sleep(0.25)
            alerts = self.active()
        return alerts


@pytest.fixture
def stack() -> Iterator[Stack]:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import CollectorRegistry, start_http_server

    binary = prometheus_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus missing in CI: .ci/install_prometheus.sh must install it")
        pytest.skip("Debian's prometheus is not installed (apt-get install prometheus)")
    registry = CollectorRegistry()  # not the global one
    reader = PrometheusMetricReader(registry=registry)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    meter_provider = MeterProvider(metric_readers=[reader])
    prometheus = PrometheusServer(
        binary,
        [f"127.0.0.1:{server.server_port}"],
        rule_files=[str(RULES)],
        scrape_interval="250ms",
        evaluation_interval="1s",
    ).start()
    try:
        rules = prometheus.alerting_rules()
        assert {r["name"] for r in rules} == ALL_ALERTS
        # Prometheus starts scraping a few seconds after it is ready: a scenario run
        # before the first scrape would be invisible.
        up = prometheus.wait_for("up == 1", timeout=60)
        assert up, f"the exporter was never scraped: {prometheus.log()}"
        yield Stack(meter_provider, server.server_port, prometheus)
    finally:
        prometheus.stop()
        meter_provider.shutdown()
        server.shutdown()
        thread.join(5)


def by_name(alerts: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [a for a in alerts if a["labels"]["alertname"] == name]


def assert_names_the_pool(alert: dict[str, Any], stack: Stack, port: int, pool: str) -> None:
    """The alert's labels and description name the process, the host and the pool."""
    labels = alert["labels"]
    assert labels["job"] == "plugin" and labels["instance"] == stack.instance
    assert labels["server_address"] == "127.0.0.1" and labels["server_port"] == str(port)
    assert labels.get("aiohttp_pool_name", "") == pool
    assert alert["state"] in ("pending", "firing")
    description = alert["annotations"]["description"]
    assert description.startswith(
        f"Host 127.0.0.1:{port}, pool {pool or '(unnamed)'}, in plugin ({stack.instance}): "
    ), description
    name = alert["labels"]["alertname"]
    assert alert["annotations"]["runbook"] == f"docs/alerts.md#{name.lower()}"


async def run_demo_scenario(
    name: str, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, Any, list[OpenTelemetryTCPConnector]]:
    """The demo's own scenario function, reporting to ``stack``'s meter provider.

    Also returns the scenario's connectors: a connector reports its series until it is
    garbage-collected, and a counter that vanishes goes stale in Prometheus, which
    resolves an alert on it. Holding them keeps the series exported, as a service's
    long-lived connector does, while the test waits for the evaluation.
    """
    from aiohttp_pool_otel.demo import scenarios
    from aiohttp_pool_otel.demo.servers import start_servers

    kept: list[OpenTelemetryTCPConnector] = []

    def keep(**kwargs: Any) -> OpenTelemetryTCPConnector:
        connector = OpenTelemetryTCPConnector(**kwargs)
        kept.append(connector)
        return connector

    monkeypatch.setattr(scenarios, "OpenTelemetryTCPConnector", keep)
    spans = InMemorySpanExporter()  # the scenarios read their wait spans back
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    telemetry = scenarios.Telemetry(tracer_provider, stack.meter_provider, spans, None)
    servers = await start_servers()
    try:
        result = await scenarios.SCENARIOS[name](telemetry, servers, lambda _: None)
    finally:
        await servers.close()
        tracer_provider.shutdown()
    assert len(kept) == 1
    return result, servers, kept


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def test_demo_leak_raises_leak_held_too_long_timeouts_and_saturation(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, servers, kept = await run_demo_scenario("leak", stack, monkeypatch)
    # The scenario did what it teaches: a pool run dry by unread streamed bodies, and a
    # cut-short response dropped unclosed that only the garbage collector released.
    assert result.facts["timed_out_request"] == 4
    assert result.facts["gc_releases"] == 1
    slow = {
        "AiohttpPoolConnectionsHeldTooLong",  # 3 unread streamed bodies past 0.3 s
        "AiohttpPoolWaitTimeouts",  # the 4th request found no slot within 1 s
        "AiohttpPoolSaturated",  # no slot free, a request waiting
    }
    expected = slow | {"AiohttpPoolConnectionLeak"}
    alerts = await asyncio.to_thread(stack.wait_for_alerts, expected)
    for name in slow:
        (alert,) = by_name(alerts, name)
        assert_names_the_pool(alert, stack, port_of(servers.slow), "demo")
    (timeouts,) = by_name(alerts, "AiohttpPoolWaitTimeouts")
    assert timeouts["state"] == "firing"  # `for: 0m`: a failed request fires at once
    assert timeouts["labels"]["severity"] == "critical"
    # The garbage-collected response was the small host's: the leak alert names it, and
    # only it (dropping the streamed responses freed nothing, so no gc release there).
    (leak,) = by_name(alerts, "AiohttpPoolConnectionLeak")
    assert_names_the_pool(leak, stack, port_of(servers.small), "demo")
    assert leak["state"] == "firing"  # `for: 0m`
    assert leak["labels"]["severity"] == "warning"
    assert "release reason gc, about 1 " in leak["annotations"]["description"]
    still_active = {a["labels"]["alertname"] for a in await asyncio.to_thread(stack.active)}
    assert still_active <= expected
    assert kept[0].closed  # closed by the scenario, its final counters still exported


async def test_demo_exhaustion_raises_saturation(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, servers, kept = await run_demo_scenario("exhaustion", stack, monkeypatch)
    assert result.facts["wait_spans"] == 6
    alerts = await asyncio.to_thread(stack.wait_for_alerts, {"AiohttpPoolSaturated"})
    (alert,) = by_name(alerts, "AiohttpPoolSaturated")
    assert_names_the_pool(alert, stack, port_of(servers.small), "demo")
    assert alert["state"] == "pending"  # `for: 5m`: a 1-second queue never fires it
    assert alert["labels"]["severity"] == "warning"
    assert {a["labels"]["alertname"] for a in alerts} == {"AiohttpPoolSaturated"}
    assert kept[0].closed


@pytest.mark.timeout(QUIET_SECONDS + 180)
async def test_healthy_traffic_raises_nothing(
    stack: Stack, server: Server, server2: Server
) -> None:
    """Steady traffic, every body read, well under the limits, watchdog on: for the whole
    run no alert is even pending, though every rule evaluates the pool's series."""
    connector = OpenTelemetryTCPConnector(
        limit=20,
        limit_per_host=10,
        meter_provider=stack.meter_provider,
        watchdog_threshold=10.0,
        pool_name="healthy",
    )
    seen: list[dict[str, Any]] = []
    started = time.monotonic()
    deadline = started + QUIET_SECONDS
    requests = 0

    async def worker(url: str) -> None:
        nonlocal requests
        for _ in range(100_000):  # bounded in count as well as in time
            if time.monotonic() > deadline:
                return
            async with session.get(url) as resp:
                await resp.read()
            requests += 1
            await asyncio.sleep(0.05)

    async def watch() -> None:
        while time.monotonic() < deadline:
            seen.extend(await asyncio.to_thread(stack.active))
            await asyncio.sleep(1.0)

    async with aiohttp.ClientSession(connector=connector) as session:
        urls = [server.url("/small"), server.url("/late"), server2.url("/small"),
                server2.url("/late")]  # fmt: skip
        await asyncio.gather(*(worker(u) for u in urls), watch())
        # Checked before the connector closes: every series the rules read is there.
        for metric in ("available", "pending_requests", "held_too_long", "timeouts_total",
                       "releases_total"):  # fmt: skip
            found = stack.prometheus.query(
                f'aiohttp_client_connection_{metric}{{aiohttp_pool_name="healthy"}}'
            )
            ports = {r["metric"]["server_port"] for r in found}
            assert ports == {str(server.port), str(server2.port)}, metric
    elapsed = time.monotonic() - started
    assert elapsed >= QUIET_SECONDS and requests > 100
    assert seen == []
    # Prometheus records every pending or firing moment in its ALERTS series.
    window = int(elapsed) + 30
    assert stack.prometheus.query(f"count_over_time(ALERTS[{window}s])") == []
    for rule in stack.prometheus.alerting_rules():
        assert rule["health"] == "ok" and not rule.get("lastError"), rule
