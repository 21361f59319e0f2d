"""An OTLP endpoint that is down changes nothing for the requests: same latency order,
no blocked event loop, bounded shutdown."""

from __future__ import annotations

import asyncio
import socket
import statistics
import time

import aiohttp
import pytest

from aiohttp_pool_otel import OpenTelemetryTCPConnector, create_pool_trace_config
from aiohttp_pool_otel.otlp import configure_otlp

from .conftest import Server


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def burst(session: aiohttp.ClientSession, url: str, n: int) -> list[float]:
    async def one() -> float:
        t0 = time.perf_counter()
        async with session.get(url) as resp:
            await resp.read()
        return time.perf_counter() - t0

    return list(await asyncio.gather(*(one() for _ in range(n))))


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
async def test_requests_do_not_notice_a_dead_collector(server: Server, protocol: str) -> None:
    url = server.url("/small")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=5)) as bare:
        await burst(bare, url, 20)  # warm-up
        baseline = await burst(bare, url, 100)

    providers = configure_otlp(
        service_name="outage",
        endpoint=f"http://127.0.0.1:{closed_port()}",
        protocol=protocol,
        timeout=1,
        export_interval_millis=50,  # export (and fail) constantly during the burst
        set_global=False,
    )
    tp, mp = providers.tracer_provider, providers.meter_provider
    connector = OpenTelemetryTCPConnector(
        limit=5, tracer_provider=tp, meter_provider=mp, trace_all_leases=True
    )
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        # Measures how late the loop wakes up: a blocked loop shows as a big lag.
        for _ in range(2000):
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
            instrumented = await burst(session, url, 100)
            await asyncio.sleep(0.3)  # let several metric exports fail
    finally:
        stop.set()
        await tick
        t0 = time.perf_counter()
        await asyncio.to_thread(providers.shutdown)
        shutdown = time.perf_counter() - t0

    # Same order of magnitude (a generous bound: this machine is shared and noisy).
    assert statistics.median(instrumented) < 10 * statistics.median(baseline) + 0.05
    assert max(lags) < 0.5, f"event loop blocked for {max(lags):.3f}s"
    assert shutdown < 15, f"shutdown took {shutdown:.1f}s"
