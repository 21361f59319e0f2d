"""A host's state gauges are reported at every collection while the
connector lives, also when its pool is momentarily empty (``available`` must not vanish
exactly when the pool is entirely free); a closed connector reports nothing.
"""

from __future__ import annotations

import aiohttp

from aiohttp_pool_otel import semconv as sc

from .conftest import Server, Telemetry
from .rig.metric_points import STATE_GAUGES, Collection, collect
from .rig.reads import get_bodies, get_body
from .rig.waiting import quiet_point


def _host_state(m: Collection, port: int) -> dict[str, float]:
    """The state gauges of one host, as exported (missing ones are absent)."""
    out: dict[str, float] = {}
    for name in STATE_GAUGES:
        for attrs, dp in m.hosts_of(name, port):
            key = name
            if name == sc.METRIC_OPEN_CONNECTIONS:
                key = f"{name}{{{attrs.get(sc.HTTP_CONNECTION_STATE)}}}"
            out[key] = out.get(key, 0) + dp.value
    return out


def _expected_empty(limit_per_host: int) -> dict[str, float]:
    return {
        f"{sc.METRIC_OPEN_CONNECTIONS}{{active}}": 0,
        f"{sc.METRIC_OPEN_CONNECTIONS}{{idle}}": 0,
        sc.METRIC_AVAILABLE: limit_per_host,
        sc.METRIC_PENDING: 0,
        sc.METRIC_MAX_PER_HOST: limit_per_host,
    }


async def test_gauges_of_an_emptied_pool_are_still_reported(
    telemetry: Telemetry, server: Server
) -> None:
    # force_close: after the burst, the host has no active and no idle connection.
    connector = telemetry.connector(limit_per_host=5, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        assert await get_bodies(session, server.url("/small"), 12) == [b"hello"] * 12
        await quiet_point()
        host = connector.statistics().hosts[("127.0.0.1", server.port, "http")]
        assert (host.active, host.idle, host.available) == (0, 0, 5), host
        first = _host_state(collect(telemetry.reader), server.port)
        assert first == _expected_empty(5), first
        # ... and at the next collection too, with nothing happening in between.
        second = _host_state(collect(telemetry.reader), server.port)
        assert second == _expected_empty(5), second


async def test_a_short_run_reports_state_gauges(telemetry: Telemetry, server: Server) -> None:
    """One request whose server closes the connection (the demo-sized run): the next
    collection still shows the host's state."""
    connector = telemetry.connector(limit_per_host=3)
    async with aiohttp.ClientSession(connector=connector) as session:
        assert await get_body(session, server.url("/close")) == b"bye"
        await quiet_point()
        state = _host_state(collect(telemetry.reader), server.port)
        assert state == _expected_empty(3), state
    # A closed connector reports nothing.
    await quiet_point()
    assert _host_state(collect(telemetry.reader), server.port) == {}
