"""A WebSocket upgrade ends its lease with one counted release of its own (``upgrade``,
outcome ``detached``), and the WebSocket's later close is counted as a close, however it
ends: on a new or a reused (previously pooled) connection, through the connector
subclass and through the instrumentor. A real aiohttp WebSocket server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any, Callable

import aiohttp
import pytest
from aiohttp import web

from aiohttp_pool_otel import (
    AioHttpConnectionPoolInstrumentor,
    PoolStatistics,
    ReleaseReason,
    pool_statistics,
)
from aiohttp_pool_otel import semconv as sc

from .conftest import Server, Telemetry, start_server
from .exactness_helpers import SpanLedger, books, collect, quiet_point, wait_until

ENDS = ["client-close", "server-close", "dropped", "session-close"]


async def _ws(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    if request.query.get("close") == "now":
        await ws.close()
        return ws
    async for msg in ws:  # echo until the client goes (bounded by the test's timeout)
        await ws.send_str(msg.data)
    return ws


async def _small(request: web.Request) -> web.Response:
    return web.Response(text="hello")


@pytest.fixture
async def ws_server() -> AsyncIterator[Server]:
    app = web.Application()
    app.router.add_get("/ws", _ws)
    app.router.add_get("/small", _small)
    srv = await start_server(app)
    yield srv
    await srv.runner.cleanup()


@pytest.fixture(params=["connector", "instrumentor"])
def route(request: Any, telemetry: Telemetry) -> Iterator[Callable[[], aiohttp.ClientSession]]:
    """A session factory whose pool the plugin reports, by either route."""
    if request.param == "connector":
        yield lambda: aiohttp.ClientSession(connector=telemetry.connector(trace_all_leases=True))
        return
    pytest.importorskip("opentelemetry.instrumentation.instrumentor")  # the extra
    instrumentor = AioHttpConnectionPoolInstrumentor()
    instrumentor.instrument(
        trace_all_leases=True,
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
    )
    try:
        yield aiohttp.ClientSession
    finally:
        instrumentor.uninstrument()


def stats_of(connector: Any) -> PoolStatistics:
    stats = pool_statistics(connector)
    assert stats is not None
    return stats


def assert_books(stats: PoolStatistics) -> None:
    opened_minus_closed, open_now = books(stats)
    assert opened_minus_closed == open_now, stats


async def end_websocket(end: str, held: list[aiohttp.ClientWebSocketResponse]) -> None:
    """End the WebSocket in ``held`` (the only reference to it) the way ``end`` says."""
    ws = held.pop()
    if end == "client-close":
        await ws.close()
    elif end == "server-close":
        msg = await ws.receive()  # the server's close frame; aiohttp answers and closes
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
        await wait_until(lambda: ws.closed, what="the WebSocket closed")
    elif end == "dropped":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            del ws
            gc.collect()


@pytest.mark.parametrize("end", ENDS)
@pytest.mark.parametrize("reused", [False, True], ids=["new", "reused"])
async def test_an_upgrade_ends_its_lease_once_and_its_close_is_counted(
    telemetry: Telemetry,
    ws_server: Server,
    route: Callable[[], aiohttp.ClientSession],
    reused: bool,
    end: str,
) -> None:
    ledger = SpanLedger()
    telemetry.tracer_provider.add_span_processor(ledger)
    tracer = telemetry.tracer_provider.get_tracer("test")
    session = route()
    connector = session.connector  # the session forgets it when it closes
    try:
        with tracer.start_as_current_span("request"):
            if reused:
                async with session.get(ws_server.url("/small")) as resp:
                    await resp.read()
            query = "?close=now" if end == "server-close" else ""
            held = [await session.ws_connect(ws_server.url("/ws" + query))]
        # The handshake ended the lease; aiohttp holds the slot until the WebSocket closes.
        stats = stats_of(connector)
        before = {ReleaseReason.EOF: 1} if reused else {}
        assert stats.releases == {**before, ReleaseReason.UPGRADE: 1}, stats
        assert (stats.created, stats.closed, stats.active) == (1, 0, 1), stats
        assert stats.reused == int(reused), stats
        assert_books(stats)
        leases = ledger.spans(sc.SPAN_LEASE)
        (lease,) = [s for s in leases if s.attributes[sc.CONNECTION_REUSED] is reused]
        assert lease.attributes[sc.RELEASE_REASON] == "upgrade"
        assert lease.attributes[sc.RELEASE_OUTCOME] == "detached"
        assert [e.name for e in lease.events] == [sc.EVENT_DETACHED]
        points = collect(telemetry.reader)
        assert points.value(sc.METRIC_RELEASES, aiohttp__connection__release__reason="upgrade") == 1
        assert (
            points.value(sc.METRIC_RELEASES, aiohttp__connection__release__outcome="detached") == 1
        )
        if end == "session-close":
            await session.close()
        else:
            await end_websocket(end, held)
        await quiet_point()
        await wait_until(lambda: stats_of(connector).closed == 1, what="the close counted")
        stats = stats_of(connector)
        # The close is counted once; no second release for the same connection.
        assert stats.releases == {**before, ReleaseReason.UPGRADE: 1}, stats
        assert (stats.created, stats.closed, stats.active, stats.idle) == (1, 1, 0, 0), stats
        assert_books(stats)
    finally:
        await session.close()
    await quiet_point()
    points = collect(telemetry.reader)
    assert points.value(sc.METRIC_CLOSED) == 1
    assert points.histogram_count(sc.METRIC_CONNECTION_DURATION) == 1
    assert ledger.unended() == [] and ledger.ended_twice() == []


async def test_an_upgrade_is_counted_without_per_lease_options(
    telemetry: Telemetry, ws_server: Server
) -> None:
    """The default connector (no lease spans, reuse unseen until release) counts alike."""
    connector = telemetry.connector()
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(3):  # the same connection: pooled, then upgraded, per round
            async with session.get(ws_server.url("/small")) as resp:
                await resp.read()
            ws = await session.ws_connect(ws_server.url("/ws"))
            await ws.send_str("ping")
            assert (await ws.receive()).data == "ping"
            await ws.close()
        await quiet_point()
        stats = connector.statistics()
    assert stats.releases == {ReleaseReason.EOF: 3, ReleaseReason.UPGRADE: 3}, stats
    assert (stats.created, stats.closed) == (3, 3), stats
    assert stats.reused == 3, stats  # each upgrade took the connection its GET pooled


async def test_an_upgrade_of_a_connection_dialled_before_instrumenting_is_counted_at_close(
    telemetry: Telemetry, ws_server: Server
) -> None:
    """The plugin did not dial it, so it cannot see the upgrade itself: the WebSocket's
    close is its one release, still under ``upgrade`` (outcome ``closed``)."""
    pytest.importorskip("opentelemetry.instrumentation.instrumentor")
    instrumentor = AioHttpConnectionPoolInstrumentor()
    async with aiohttp.ClientSession() as session:
        async with session.get(ws_server.url("/small")) as resp:  # dialled uninstrumented
            await resp.read()
        instrumentor.instrument(
            trace_all_leases=True,  # every acquisition seen: the connection is adopted
            tracer_provider=telemetry.tracer_provider,
            meter_provider=telemetry.meter_provider,
        )
        try:
            ws = await session.ws_connect(ws_server.url("/ws"))
            await ws.close()
            await quiet_point()
            stats = stats_of(session.connector)
        finally:
            instrumentor.uninstrument()
    assert stats.releases == {ReleaseReason.UPGRADE: 1}, stats
    assert (stats.created, stats.closed, stats.active) == (1, 1, 0), stats


async def test_an_open_websocket_is_not_a_connection_held_too_long(
    telemetry: Telemetry, ws_server: Server
) -> None:
    """Its lease ended at the handshake: a WebSocket open for 4x the watchdog threshold
    is no leak, while aiohttp still counts it in use."""
    threshold = 0.05
    connector = telemetry.connector(watchdog_threshold=threshold, trace_all_leases=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        ws = await session.ws_connect(ws_server.url("/ws"))
        await asyncio.sleep(4 * threshold)
        points = collect(telemetry.reader)
        stats = connector.statistics()
        await ws.close()
    assert stats.active == 1, stats  # aiohttp holds its slot of limit until it closes
    assert points.value(sc.METRIC_HELD_TOO_LONG) in (None, 0), points.of(sc.METRIC_HELD_TOO_LONG)
