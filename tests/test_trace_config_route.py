"""The public-signals-only route: ``create_pool_trace_config()`` with a plain aiohttp
connector, and its silence next to the connector or the instrumentor.

Real aiohttp servers on 127.0.0.1; in-memory exporters."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from typing import Any

import aiohttp
import pytest

from aiohttp_pool_otel import pool_statistics
from aiohttp_pool_otel import semconv as sc

from .conftest import Server, Telemetry
from .rig.reads import get_bodies


async def three_at_once(
    telemetry: Telemetry, connector: aiohttp.BaseConnector, server: Server
) -> list[bytes]:
    """Three GETs at once of a name (DNS is resolved) through ``connector`` and the trace
    config: with ``limit_per_host=1`` one dials, two queue and then reuse."""
    url = f"http://localhost:{server.port}/small"
    async with aiohttp.ClientSession(
        connector=connector, trace_configs=[telemetry.trace_config()]
    ) as session:
        return await get_bodies(session, url, 3)


def _value(points: list[tuple[dict[str, Any], Any]]) -> int:
    return sum(v for _, v in points)


async def test_plain_connector_gets_wait_create_dns_spans_and_counters(
    telemetry: Telemetry, server: Server
) -> None:
    connector = aiohttp.TCPConnector(limit_per_host=1, family=socket.AF_INET)
    tracer = telemetry.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("work"):
        bodies = await three_at_once(telemetry, connector, server)
    assert bodies == [b"hello"] * 3
    # No private-API code ran: the connector has no plugin state at all.
    assert pool_statistics(connector) is None
    names = Counter(s.name for s in telemetry.spans())
    assert names[sc.SPAN_CREATE] == 1
    assert names[sc.SPAN_DNS] == 1
    assert names[sc.SPAN_WAIT] == 2  # two requests queued behind limit_per_host=1
    assert names[sc.SPAN_LEASE] == 0  # no public signal marks a release
    m = telemetry.metrics()
    assert _value(m[sc.METRIC_CREATED]) == 1
    assert _value(m[sc.METRIC_REUSED]) == 2
    assert _value(m[sc.METRIC_QUEUED]) == 2
    assert _value(m[sc.METRIC_TIMEOUTS]) == 0
    assert m[sc.METRIC_WAIT_TIME][0][1].count == 2
    assert m[sc.METRIC_CREATE_TIME][0][1].count == 1
    assert m[sc.METRIC_DNS_DURATION][0][1].count == 1
    # Nothing it cannot know: no releases, no pool state.
    assert sc.METRIC_RELEASES not in m or _value(m[sc.METRIC_RELEASES]) == 0
    assert sc.METRIC_OPEN_CONNECTIONS not in m


async def test_a_wait_timeout_through_public_signals(
    telemetry: Telemetry, server: Server
) -> None:
    connector = aiohttp.TCPConnector(limit_per_host=1)
    async with aiohttp.ClientSession(
        connector=connector, trace_configs=[telemetry.trace_config()]
    ) as session:
        held = await session.get(server.url("/endless"))
        with pytest.raises(asyncio.TimeoutError):
            await session.get(server.url("/small"), timeout=aiohttp.ClientTimeout(total=0.2))
        held.close()
    (wait,) = telemetry.spans(sc.SPAN_WAIT)
    assert wait.status.status_code.name == "ERROR"
    assert wait.attributes[sc.ERROR_TYPE] == "pool_wait_timeout"
    assert _value(telemetry.metrics()[sc.METRIC_TIMEOUTS]) == 1


async def test_next_to_the_connector_nothing_is_emitted_twice(
    telemetry: Telemetry, server: Server
) -> None:
    connector = telemetry.connector(limit_per_host=1, family=socket.AF_INET)
    assert await three_at_once(telemetry, connector, server) == [b"hello"] * 3
    names = Counter(s.name for s in telemetry.spans())
    assert (names[sc.SPAN_CREATE], names[sc.SPAN_DNS], names[sc.SPAN_WAIT]) == (1, 1, 2)
    m = telemetry.metrics()
    assert _value(m[sc.METRIC_CREATED]) == 1
    assert _value(m[sc.METRIC_QUEUED]) == 2
    assert m[sc.METRIC_WAIT_TIME][0][1].count == 2
    assert _value(m[sc.METRIC_RELEASES]) == 3


async def test_next_to_the_instrumentor_nothing_is_emitted_twice(
    telemetry: Telemetry, server: Server
) -> None:
    with telemetry.instrumentor():
        connector = aiohttp.TCPConnector(limit_per_host=1, family=socket.AF_INET)
        assert await three_at_once(telemetry, connector, server) == [b"hello"] * 3
    names = Counter(s.name for s in telemetry.spans())
    assert (names[sc.SPAN_CREATE], names[sc.SPAN_DNS], names[sc.SPAN_WAIT]) == (1, 1, 2)


def test_bad_options_are_named() -> None:
    from aiohttp_pool_otel import create_pool_trace_config

    with pytest.raises(ValueError, match="max_hosts"):
        create_pool_trace_config(max_hosts=0)
    with pytest.raises(TypeError, match="tracer_provider"):
        create_pool_trace_config(tracer_provider=object())  # type: ignore[arg-type]
