"""Every close of a dialled connection is counted, once, with its
lifetime recorded, including a keep-alive connection the server closed while it was idle
(aiohttp discards it when it next looks at the pool).

Invariant at every quiet point: ``created - closed == active + idle + connecting``;
after the connector closes: ``created == closed`` and one
``http.client.connection.duration`` record per closed connection.
"""

from __future__ import annotations

import contextlib
from typing import Any

import aiohttp

from aiohttp_pool_otel import OpenTelemetryTCPConnector
from aiohttp_pool_otel import semconv as sc

from .conftest import Server, Telemetry, serving
from .rig.metric_points import collect
from .rig.pool_books import assert_books_balance
from .rig.reads import get_bodies, get_body
from .rig.waiting import quiet_point, wait_until


def _idle_all_dead(connector: OpenTelemetryTCPConnector) -> bool:
    """aiohttp's own pool (tests may read it): every idle connection was closed by the
    server, and none was looked at since (so aiohttp still lists it)."""
    idle = [proto for conns in connector._conns.values() for proto, _ in conns]
    return bool(idle) and not any(proto.is_connected() for proto in idle)


async def test_server_closing_idle_keepalive_connections_is_counted(
    telemetry: Telemetry,
) -> None:
    # The server drops a keep-alive connection 50 ms after it went idle.
    connector = telemetry.connector(limit_per_host=3)
    rounds = 6
    async with serving(keepalive_timeout=0.05) as server:
        async with aiohttp.ClientSession(connector=connector) as session:
            for n in range(rounds):
                # Three at once: up to three connections go stale together.
                await get_bodies(session, server.url("/small"), 3)
                await quiet_point()
                assert_books_balance(connector.statistics(), n)
                # Wait (bounded) until the server closed every idle connection; the next
                # round's acquisitions then find them stale and aiohttp discards them.
                await wait_until(lambda: _idle_all_dead(connector), what="server-side close")
            await quiet_point()
            stats = connector.statistics()
            assert stats.created >= rounds, stats  # a fresh dial every round
            assert_books_balance(stats)
        await quiet_point()
        stats = connector.statistics()
        assert stats.created == stats.closed, stats
        assert (stats.active, stats.idle, stats.connecting) == (0, 0, 0), stats
        durations = collect(telemetry.reader).histogram_count(sc.METRIC_CONNECTION_DURATION)
        assert durations == stats.closed, (durations, stats)


async def test_closed_counts_one_lifetime_per_connection_across_close_shapes(
    telemetry: Telemetry, server: Server
) -> None:
    """Pooled, closed by the server with ``Connection: close``, cut mid-body, released
    unread, and idle at connector close: each connection closes exactly once."""
    connector = telemetry.connector(limit_per_host=4)
    async with aiohttp.ClientSession(connector=connector) as session:
        for path in ("/small", "/close", "/late", "/empty", "/small"):
            await get_body(session, server.url(path))
            await quiet_point()
            assert_books_balance(connector.statistics(), path)
        resp = await session.get(server.url("/endless"))
        resp.release()  # unread: aiohttp must close it
        with contextlib.suppress(aiohttp.ClientPayloadError):
            await get_body(session, server.url("/cut"))
        await quiet_point()
        assert_books_balance(connector.statistics())
    await quiet_point()
    stats = connector.statistics()
    # Three dials: /small (its connection closed by /close), /late (reused by /empty,
    # /small and /endless, closed unread) and /cut (closed by the server mid-body).
    assert (stats.created, stats.closed) == (3, 3), stats
    m = collect(telemetry.reader)
    assert m.histogram_count(sc.METRIC_CONNECTION_DURATION) == stats.closed
    exported_closed: Any = m.value(sc.METRIC_CLOSED)
    assert exported_closed == stats.closed, (exported_closed, stats)
