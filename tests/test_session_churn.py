"""A session per request leaves nothing behind.

Services (and libraries) that make a session, and so a connector, per operation must
not pay for it in memory: once a session is closed and dropped, its connector and the
plugin's state for it are freed by reference counting (no reference cycle waits for
the cyclic GC), nothing stays registered per session, and no meter or instrument is
created per session (the per-session instrument leak of other instrumentations).
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from aiohttp_pool_otel import semconv as sc
from aiohttp_pool_otel._aiohttp.hooks import state_of
from aiohttp_pool_otel._meters import meters_for

from .conftest import Server, Telemetry
from .rig.metric_points import collect


@pytest.fixture
def gc_off() -> Iterator[None]:
    """Only reference counting frees objects while the test runs."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.fixture(params=["connector", "instrumentor"])
def make_connector(request: pytest.FixtureRequest, telemetry: Telemetry) -> Iterator[Any]:
    if request.param == "connector":
        yield telemetry.connector
        return
    with telemetry.instrumentor():
        yield aiohttp.TCPConnector


async def one_session(make_connector: Any, server: Server) -> tuple[Any, Any]:
    """One session, one request; weak references to its connector and its state."""
    connector = make_connector()
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(server.url("/small")) as resp:
            await resp.read()
        state = state_of(connector)
        assert state is not None
    return weakref.ref(connector), weakref.ref(state)


async def test_a_closed_sessions_connector_and_state_are_freed_without_the_gc(
    make_connector: Any, server: Server, gc_off: None
) -> None:
    connector, state = await one_session(make_connector, server)
    assert connector() is None, gc.get_referrers(connector())
    assert state() is None


async def test_nothing_stays_registered_or_created_per_session(
    make_connector: Any, server: Server, telemetry: Telemetry
) -> None:
    await one_session(make_connector, server)
    collect(telemetry.reader)
    meters = meters_for(telemetry.meter_provider)
    sdk_meters = len(telemetry.meter_provider._meters)
    for _ in range(50):
        await one_session(make_connector, server)
    gc.collect()
    counts = collect(telemetry.reader)
    assert counts.value(sc.METRIC_RELEASES) == 51
    assert len(meters._sources) == 0
    assert len(telemetry.meter_provider._meters) == sdk_meters
    assert meters_for(telemetry.meter_provider) is meters
