"""Issue 11, defect 2: every close of a dialled connection is counted, once, with its
lifetime recorded, including a keep-alive connection the server closed while it was idle
(aiohttp discards it when it next looks at the pool).

Invariant at every quiet point: ``created - closed == active + idle + connecting``;
after the connector closes: ``created == closed`` and one
``http.client.connection.duration`` record per closed connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp

from aiohttp_pool_otel import OpenTelemetryTCPConnector
from aiohttp_pool_otel import semconv as sc

from .conftest import Telemetry, start_server
from .exactness_helpers import books, collect, quiet_point, wait_until


def _idle_all_dead(connector: OpenTelemetryTCPConnector) -> bool:
    """aiohttp's own pool (tests may read it): every idle connection was closed by the
    server, and none was looked at since (so aiohttp still lists it)."""
    idle = [proto for conns in connector._conns.values() for proto, _ in conns]
    return bool(idle) and not any(proto.is_connected() for proto in idle)


async def _get(session: aiohttp.ClientSession, url: str) -> None:
    async with session.get(url) as resp:
        await resp.read()


async def test_server_closing_idle_keepalive_connections_is_counted(
    telemetry: Telemetry,
) -> None:
    # The server drops a keep-alive connection 50 ms after it went idle.
    server = await start_server(keepalive_timeout=0.05)
    connector = telemetry.connector(limit_per_host=3)
    rounds = 6
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            for n in range(rounds):
                # Three at once: up to three connections go stale together.
                await asyncio.gather(*(_get(session, server.url("/small")) for _ in range(3)))
                await quiet_point()
                stats = connector.statistics()
                assert books(stats)[0] == books(stats)[1], (n, stats)
                # Wait (bounded) until the server closed every idle connection; the next
                # round's acquisitions then find them stale and aiohttp discards them.
                await wait_until(lambda: _idle_all_dead(connector), what="server-side close")
            await quiet_point()
            stats = connector.statistics()
            assert stats.created >= rounds, stats  # a fresh dial every round
            assert books(stats)[0] == books(stats)[1], stats
        await quiet_point()
        stats = connector.statistics()
        assert stats.created == stats.closed, stats
        assert (stats.active, stats.idle, stats.connecting) == (0, 0, 0), stats
        durations = collect(telemetry.reader).histogram_count(sc.METRIC_CONNECTION_DURATION)
        assert durations == stats.closed, (durations, stats)
    finally:
        await server.runner.cleanup()


async def test_closed_counts_one_lifetime_per_connection_across_close_shapes(
    telemetry: Telemetry,
) -> None:
    """Pooled, closed by the server with ``Connection: close``, cut mid-body, released
    unread, and idle at connector close: each connection closes exactly once."""
    server = await start_server()
    connector = telemetry.connector(limit_per_host=4)
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            for path in ("/small", "/close", "/late", "/empty", "/small"):
                await _get(session, server.url(path))
                await quiet_point()
                stats = connector.statistics()
                assert books(stats)[0] == books(stats)[1], (path, stats)
            resp = await session.get(server.url("/endless"))
            resp.release()  # unread: aiohttp must close it
            with contextlib.suppress(aiohttp.ClientPayloadError):
                await _get(session, server.url("/cut"))
            await quiet_point()
            stats = connector.statistics()
            assert books(stats)[0] == books(stats)[1], stats
        await quiet_point()
        stats = connector.statistics()
        assert stats.created == stats.closed > 0, stats
        m = collect(telemetry.reader)
        assert m.histogram_count(sc.METRIC_CONNECTION_DURATION) == stats.closed
        exported_closed: Any = m.value(sc.METRIC_CLOSED)
        assert exported_closed == stats.closed, (exported_closed, stats)
    finally:
        await server.runner.cleanup()
