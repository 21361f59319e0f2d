"""One collection reads one consistent snapshot of the pool.

The metric reader collects on its own thread while the loop thread churns the pool and
calls ``statistics()`` again and again. Within any one collection, a host's exported
values must be mutually consistent: with ``limit_per_host=L`` (and no binding total
limit), ``active + available <= L`` and ``0 <= available`` -- a collection that mixes
two snapshots shows ``active`` of one moment and ``available`` of another.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator

import aiohttp
import pytest

from aiohttp_pool_otel import semconv as sc

from .conftest import Server, Telemetry
from .rig.metric_points import collect
from .rig.waiting import quiet_point

LIMIT_PER_HOST = 2
COLLECTIONS = 1500  # bounded: the reader thread stops after this many
REQUESTS = 20000  # bounded: the loop stops after this many (or when the reader is done)


@pytest.fixture
def frequent_thread_switches() -> Iterator[None]:
    """Switch threads every few microseconds, so the loop thread runs in the middle of
    collections (restored afterwards)."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(before)


@pytest.mark.usefixtures("frequent_thread_switches")
async def test_one_collection_reads_one_snapshot(telemetry: Telemetry, server: Server) -> None:
    connector = telemetry.connector(limit=0, limit_per_host=LIMIT_PER_HOST)
    port = server.port
    pairs: list[tuple[float, float]] = []
    reported = 0
    done = threading.Event()

    def reader_thread() -> None:
        nonlocal reported
        try:
            for _ in range(COLLECTIONS):
                m = collect(telemetry.reader)
                active = m.value(sc.METRIC_OPEN_CONNECTIONS, server__port=port,
                                 http__connection__state="active")  # fmt: skip
                available = m.value(sc.METRIC_AVAILABLE, server__port=port)
                if active is None or available is None:
                    continue
                reported += 1
                pairs.append((active, available))
        finally:
            done.set()

    async with aiohttp.ClientSession(connector=connector) as session:
        left = REQUESTS

        async def worker() -> None:
            nonlocal left
            while left > 0 and not done.is_set():
                left -= 1
                await one()

        async def statistics_caller() -> None:
            while not done.is_set():
                connector.statistics()  # on the loop thread, as often as it can
                await asyncio.sleep(0)

        async def one() -> None:
            async with session.get(server.url("/small")) as resp:
                await resp.read()

        # Warm up: the host has its LIMIT_PER_HOST connections before the reader starts.
        await asyncio.gather(*(one() for _ in range(LIMIT_PER_HOST)))
        assert connector.statistics().created == LIMIT_PER_HOST
        thread = threading.Thread(target=reader_thread, daemon=True)
        thread.start()
        workers = [asyncio.ensure_future(worker()) for _ in range(8)]
        caller = asyncio.ensure_future(statistics_caller())
        await asyncio.gather(*workers)  # until the reader is done, or after REQUESTS
        await asyncio.get_running_loop().run_in_executor(None, thread.join, 60)
        await caller
        await quiet_point()
        dialled = connector.statistics().created
    # No dial after the warm-up (keep-alive): nothing was ever connecting, so every
    # consistent collection shows exactly active + available == limit_per_host.
    exact = dialled == LIMIT_PER_HOST
    mixed = [
        (active, available) for active, available in pairs
        if available < 0 or active + available > LIMIT_PER_HOST
        or (exact and active + available != LIMIT_PER_HOST)
    ]  # fmt: skip
    print(f"{reported} collections reported the host, {len(mixed)} mixed, {left} requests "
          f"left, {dialled} dialled")
    assert reported > COLLECTIONS // 2, reported  # the host was reported throughout
    assert mixed == [], f"{len(mixed)} of {reported} collections mixed two snapshots: {mixed[:5]}"
