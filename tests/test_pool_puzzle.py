"""The pool puzzle: limit=25, limit_per_host=5; 2 unread requests to a host with a small
complete body, 3 to a host that streams slowly. Why does `available` not drop for the
first host? Because aiohttp released those connections itself, at EOF."""

from __future__ import annotations

import aiohttp

from aiohttp_pool_otel import ReleaseReason
from aiohttp_pool_otel import semconv as sc

from .conftest import Server, Telemetry


def available(telemetry: Telemetry, port: int) -> int:
    points = telemetry.metrics()[sc.METRIC_AVAILABLE]
    (found,) = [v for attrs, v in points if attrs[sc.SERVER_PORT] == port]
    return int(found)


async def test_pool_puzzle(telemetry: Telemetry, server: Server, server2: Server) -> None:
    small, slow = server.url("/small"), server2.url("/endless")
    connector = telemetry.connector(limit=25, limit_per_host=5, trace_all_leases=True)
    async with aiohttp.ClientSession(
        connector=connector, trace_configs=[telemetry.trace_config()]
    ) as session:
        held = []
        for url in (small, small):
            held.append(await session.get(url))
            assert available(telemetry, server.port) == 5
        slow_available = []
        for _ in range(3):
            held.append(await session.get(slow))
            slow_available.append(available(telemetry, server2.port))
            assert available(telemetry, server.port) == 5
        assert slow_available == [4, 3, 2]

        leases = telemetry.spans(sc.SPAN_LEASE)
        assert len(leases) == 2
        for lease in leases:
            assert lease.attributes[sc.SERVER_PORT] == server.port
            assert lease.attributes[sc.RELEASE_REASON] == "eof"
            assert lease.attributes[sc.RELEASE_PHASE] == "headers"
        stats = connector.statistics()
        slow_key = ("127.0.0.1", server2.port, "http")
        small_key = ("127.0.0.1", server.port, "http")
        assert stats.hosts[slow_key].active == 3  # three open leases
        assert stats.hosts[small_key].active == 0
        assert stats.hosts[small_key].releases == {ReleaseReason.EOF: 2}
        # The second small request reused the connection the first gave back.
        assert (stats.hosts[small_key].created, stats.hosts[small_key].reused) == (1, 1)

        for resp in held[2:]:
            resp.close()
        leases = telemetry.spans(sc.SPAN_LEASE)[2:]
        assert [
            (s.attributes[sc.RELEASE_REASON], s.attributes[sc.RELEASE_OUTCOME]) for s in leases
        ] == [("close", "closed")] * 3
        slow_host = connector.statistics().hosts[slow_key]
        assert (slow_host.active, slow_host.closed, slow_host.available) == (0, 3, 5)
