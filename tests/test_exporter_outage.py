"""An OTLP endpoint that is down or hangs changes nothing for the requests: they never
wait on an export, the event loop is never blocked by one, and shutdown is bounded.

No timing goals: each export here is allowed EXPORT_TIMEOUT seconds and the endpoint
never answers, so anything that waited on an export would take that long. The bounds
below are half of it, far above what a busy machine adds to a loopback request."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import aiohttp
import pytest

from aiohttp_pool_otel import OpenTelemetryTCPConnector, create_pool_trace_config
from aiohttp_pool_otel.otlp import configure_otlp

from .conftest import Server
from .rig.silent_listener import SilentListener

EXPORT_TIMEOUT = 10.0
SHUTDOWN_TIMEOUT = 1.0


@pytest.fixture
def hung_collector() -> Iterator[SilentListener]:
    listener = SilentListener().start()
    yield listener
    listener.stop()


async def burst(session: aiohttp.ClientSession, url: str, n: int) -> list[float]:
    async def one() -> float:
        t0 = time.perf_counter()
        async with session.get(url) as resp:
            assert resp.status == 200
            await resp.read()
        return time.perf_counter() - t0

    return list(await asyncio.gather(*(one() for _ in range(n))))


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
async def test_requests_do_not_wait_on_a_hung_collector(
    server: Server, protocol: str, hung_collector: SilentListener
) -> None:
    url = server.url("/small")
    providers = configure_otlp(
        service_name="outage",
        endpoint=hung_collector.endpoint,
        protocol=protocol,
        timeout=EXPORT_TIMEOUT,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        export_interval_millis=50,  # the metric reader starts exporting at once
        set_global=False,
    )
    tp, mp = providers.tracer_provider, providers.meter_provider
    connector = OpenTelemetryTCPConnector(
        limit=5, tracer_provider=tp, meter_provider=mp, trace_all_leases=True
    )
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        # How late the loop wakes up: an export run on the loop would show as a lag of
        # EXPORT_TIMEOUT seconds.
        for _ in range(20_000):
            if stop.is_set():
                return
            t0 = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - t0 - 0.005)

    tick = asyncio.create_task(ticker())
    try:
        async with aiohttp.ClientSession(
            connector=connector,
            trace_configs=[create_pool_trace_config(tracer_provider=tp, meter_provider=mp)],
        ) as session:
            await burst(session, url, 20)
            # An exporter is now connected to the hung endpoint, mid-export.
            assert await asyncio.to_thread(hung_collector.wait_accepted, 1, 30.0)
            latencies = await burst(session, url, 100)
    finally:
        stop.set()
        await tick
        t0 = time.monotonic()
        finished = await asyncio.to_thread(providers.shutdown)
        shutdown = time.monotonic() - t0

    assert len(latencies) == 100
    assert max(latencies) < EXPORT_TIMEOUT / 2, f"a request took {max(latencies):.1f} s"
    assert max(lags) < EXPORT_TIMEOUT / 2, f"event loop blocked for {max(lags):.1f} s"
    assert shutdown < 3 * SHUTDOWN_TIMEOUT + 5, f"shutdown took {shutdown:.1f} s"
    assert finished is False  # the hung endpoint took nothing, and shutdown says so
    assert providers.delivery.delivered == 0
