"""A real Prometheus (Debian's package) scrapes the plugin's metrics; PromQL, including
every query of the Grafana dashboard, returns the expected data."""

from __future__ import annotations

import asyncio
import math
import os
import pathlib
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from aiohttp_pool_otel import OpenTelemetryTCPConnector

from .conftest import Server
from .rig.dashboard import fill, panel_queries
from .rig.docs import code_blocks, user_docs
from .rig.leaks import leak_a_response
from .rig.prometheus import PrometheusServer, prometheus_binary
from .rig.traffic import steady_traffic

pytestmark = pytest.mark.prometheus

ROOT = pathlib.Path(__file__).parent.parent


def readme_queries() -> list[str]:
    """The PromQL lines of the ```promql blocks of the README and docs/, each once."""
    blocks = [block for text in user_docs().values() for block in code_blocks(text, "promql")]
    lines = (line.strip() for block in blocks for line in block.splitlines())
    return list(dict.fromkeys(line for line in lines if line and not line.startswith("#")))


@pytest.fixture(scope="module")
def exporter() -> Iterator[tuple[Any, int]]:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()  # not the global one
    reader = PrometheusMetricReader(registry=registry)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    yield MeterProvider(metric_readers=[reader]), server.server_port
    server.shutdown()
    thread.join(5)


@pytest.fixture(scope="module")
def prometheus(exporter: tuple[Any, int]) -> Iterator[PrometheusServer]:
    binary = prometheus_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus missing in CI: .ci/install_prometheus.sh must install it")
        pytest.skip("Debian's prometheus is not installed (apt-get install prometheus)")
    prom = PrometheusServer(binary, [f"127.0.0.1:{exporter[1]}"]).start()
    yield prom
    prom.stop()


def scalar(result: list[dict[str, Any]]) -> float:
    assert len(result) == 1, result
    return float(result[0]["value"][1])


async def test_prometheus_sees_the_pool(
    exporter: tuple[Any, int], prometheus: PrometheusServer, server: Server, server2: Server
) -> None:
    meter_provider, _ = exporter
    connector = OpenTelemetryTCPConnector(
        limit=10,
        limit_per_host=2,
        meter_provider=meter_provider,
        record_hold_time=True,
        watchdog_threshold=0.5,
        pool_name="prom",
    )
    port = server2.port
    async with aiohttp.ClientSession(connector=connector) as session, steady_traffic(
        session, server.url("/late"), workers=4, rounds=400
    ):  # steady queued traffic to one host (histograms, rates), bounded in time
        # The other host: both slots held by endless bodies, two requests queued.
        held = [await session.get(server2.url("/endless")) for _ in range(2)]
        queued = [asyncio.create_task(session.get(server2.url("/small"))) for _ in range(2)]
        sel = f'server_port="{port}",aiohttp_pool_name="prom"'

        def wait(expr: str, want: float) -> float:
            result = prometheus.wait_for(
                expr, lambda r: len(r) == 1 and float(r[0]["value"][1]) == want, timeout=30
            )
            return scalar(result)

        active = f'http_client_open_connections{{{sel},http_connection_state="active"}}'
        assert await asyncio.to_thread(wait, active, 2) == 2
        available = f"aiohttp_client_connection_available{{{sel}}}"
        assert await asyncio.to_thread(wait, available, 0) == 0
        pending = f"aiohttp_client_connection_pending_requests{{{sel}}}"
        assert await asyncio.to_thread(wait, pending, 2) == 2
        too_long = f"aiohttp_client_connection_held_too_long{{{sel}}}"
        assert await asyncio.to_thread(wait, too_long, 2) == 2
        assert scalar(prometheus.query(f"aiohttp_client_connection_max_per_host{{{sel}}}")) == 2
        limit = 'aiohttp_client_connection_max{aiohttp_pool_name="prom"}'
        assert scalar(prometheus.query(limit)) == 10

        for resp in held:
            resp.close()
        for resp in await asyncio.gather(*queued):
            resp.release()
        closes = (
            f'aiohttp_client_connection_releases_total{{{sel},'
            f'aiohttp_connection_release_reason="close",aiohttp_connection_release_outcome="closed"}}'
        )
        assert await asyncio.to_thread(wait, closes, 2) == 2
        eof = prometheus.wait_for(
            'sum(aiohttp_client_connection_releases_total{aiohttp_connection_release_reason="eof"})',
            lambda r: bool(r) and float(r[0]["value"][1]) >= 20,
        )
        assert scalar(eof) >= 20
        p50 = prometheus.wait_for(
            "histogram_quantile(0.5, sum by (le) "
            "(rate(aiohttp_client_connection_use_time_seconds_bucket[1m])))",
            lambda r: bool(r) and not math.isnan(float(r[0]["value"][1])),
        )
        # /late holds its connection ~200 ms (the upper bound leaves room for a busy
        # machine: it only says the histogram measures holds, not something else).
        assert 0.1 <= scalar(p50) <= 5.0

        # A leaked response, garbage-collected: the docs' leak query needs one.
        assert await leak_a_response(session, server2.url("/cut"), connector) == 1

        # Every query of the Grafana dashboard and of the docs returns data here.
        queries = [fill(q.expr) for q in panel_queries()]  # every variable at All
        # The docs' examples name their service "my-service"; this exporter's job is "plugin".
        queries += [q.replace('job="my-service"', 'job="plugin"') for q in readme_queries()]
        assert len(queries) > 20
        empty = []
        for query in queries:
            expr = query.replace("$__rate_interval", "1m")
            # Bounded, generous (a rate needs two scrapes of a series that may be new),
            # and off the loop, which keeps serving the workers and the plugin's callbacks.
            if not await asyncio.to_thread(prometheus.wait_for, expr, bool, 60):
                empty.append(expr)
    assert empty == []
