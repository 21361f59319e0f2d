"""Counters are counters across connector lifetimes.

What a connector counted outlives it: closed and garbage-collected connectors keep
their counts in every counter, which never decreases and sums every connector that
ever reported to the MeterProvider. Gauges of a closed connector drop out. Checked
in the shapes services run: sessions one after another, sessions that overlap and
close in any order, a session per request; through the connector subclass, the
trace config and the instrumentor.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import aiohttp
import pytest

from aiohttp_pool_otel import semconv as sc

from .conftest import Server, Telemetry
from .rig.metric_points import collect


class Route:
    """One way of adding the plugin: how sessions are made and what it counts."""

    def __init__(self, name: str, telemetry: Telemetry) -> None:
        self.name = name
        self.telemetry = telemetry
        # The trace config sees no release: it counts acquisitions (created + reused).
        self.counted = ("created", "reused") if name == "trace_config" else ("releases",)

    def session(self) -> aiohttp.ClientSession:
        t = self.telemetry
        if self.name == "connector":
            return aiohttp.ClientSession(connector=t.connector())
        if self.name == "trace_config":  # a trace config per session, the harder case
            return aiohttp.ClientSession(trace_configs=[t.trace_config()])
        return aiohttp.ClientSession()  # the instrumentor's class-level hooks

    def total(self) -> int:
        """The counted total of this route's counter(s), from one collection."""
        c = collect(self.telemetry.reader)
        names = {"created": sc.METRIC_CREATED, "reused": sc.METRIC_REUSED,
                 "releases": sc.METRIC_RELEASES}  # fmt: skip
        return int(sum(c.value(names[n]) or 0 for n in self.counted))


@pytest.fixture(params=["connector", "trace_config", "instrumentor"])
def route(request: pytest.FixtureRequest, telemetry: Telemetry) -> Iterator[Route]:
    if request.param != "instrumentor":
        yield Route(request.param, telemetry)
        return
    with telemetry.instrumentor():
        yield Route(request.param, telemetry)


async def requests(session: aiohttp.ClientSession, server: Server, n: int) -> None:
    for _ in range(n):
        async with session.get(server.url("/small")) as resp:
            await resp.read()


async def test_sessions_one_after_another_add_up(route: Route, server: Server) -> None:
    seen = []
    for _ in range(5):
        async with route.session() as session:
            await requests(session, server, 10)
        gc.collect()  # the connector is gone, not just closed
        seen.append(route.total())
    assert seen == [10, 20, 30, 40, 50]


async def test_overlapping_sessions_closed_in_any_order_keep_their_counts(
    route: Route, server: Server
) -> None:
    a, b = route.session(), route.session()
    seen = []
    await requests(a, server, 10)
    seen.append(route.total())
    await requests(b, server, 5)
    seen.append(route.total())
    await b.close()
    del b
    gc.collect()
    seen.append(route.total())
    await a.close()
    del a
    gc.collect()
    seen.append(route.total())
    assert seen == [10, 15, 15, 15]


async def test_a_session_per_request_counts_every_request(route: Route, server: Server) -> None:
    n = 200
    for i in range(n):
        async with route.session() as session:
            await requests(session, server, 1)
        if i % 50 == 0:
            gc.collect()
    gc.collect()
    assert route.total() == n
    if route.name != "trace_config":
        c = collect(route.telemetry.reader)
        assert c.value(sc.METRIC_CREATED) == n
        assert c.value(sc.METRIC_CLOSED) == n


async def test_a_closed_connectors_gauges_drop_out_and_its_counters_stay(
    telemetry: Telemetry, server: Server
) -> None:
    async with aiohttp.ClientSession(connector=telemetry.connector()) as session:
        await requests(session, server, 3)
        live = collect(telemetry.reader)
        assert live.value(sc.METRIC_OPEN_CONNECTIONS, http__connection__state="idle") == 1
    for collected in (False, True):
        if collected:
            del session
            gc.collect()
        c = collect(telemetry.reader)
        assert c.of(sc.METRIC_OPEN_CONNECTIONS) == []
        assert c.of(sc.METRIC_AVAILABLE) == []
        assert c.value(sc.METRIC_RELEASES) == 3
        assert c.value(sc.METRIC_CREATED) == 1
        assert c.value(sc.METRIC_CLOSED) == 1


async def test_retired_host_series_are_bounded_like_max_hosts(
    telemetry: Telemetry, server: Server, server2: Server
) -> None:
    # Three one-host connectors in turn, on three host keys: with max_hosts=2 the
    # third host's counts go to the pool's overflow series.
    urls = [server.url("/small"), server.url("/small", host="localhost"), server2.url("/small")]
    for url in urls:
        connector = telemetry.connector(max_hosts=2, pool_name="bounded")
        async with aiohttp.ClientSession(connector=connector) as session, session.get(url) as r:
            await r.read()
        del session, connector
        gc.collect()
    c = collect(telemetry.reader)
    by_host = {
        (a[sc.SERVER_ADDRESS], a.get(sc.SERVER_PORT)): dp.value for a, dp in c.of(sc.METRIC_CREATED)
    }
    assert by_host == {
        ("127.0.0.1", server.port): 1, ("localhost", server.port): 1, (sc.OTHER_HOST, None): 1
    }
    assert {a.get(sc.POOL_NAME) for a, _ in c.of(sc.METRIC_CREATED)} == {"bounded"}


async def test_uninstrument_keeps_what_the_instrumentor_counted(
    telemetry: Telemetry, server: Server
) -> None:
    with telemetry.instrumentor():
        async with aiohttp.ClientSession() as session:
            await requests(session, server, 4)
            assert collect(telemetry.reader).value(sc.METRIC_RELEASES) == 4
    assert collect(telemetry.reader).value(sc.METRIC_RELEASES) == 4
