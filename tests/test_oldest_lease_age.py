"""``aiohttp.pool.oldest_lease_age`` on a timed-out wait span is the
age of the oldest *lease* (acquisition to now), never the connection's age, in every
mode (with or without per-lease options); left out where the lease's start is unknown.

A connection is dialled, sits idle ~1 s, is then reused and held ~0.3 s when a queued
acquisition times out: the attribute must be near the lease age, well below the
connection's age. Bounds are generous (the machines are noisy).
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from aiohttp_pool_otel import semconv as sc

from .conftest import Server, Telemetry
from .rig.spans import SpanLedger
from .rig.waiting import wait_until

IDLE_SECONDS = 1.0  # the scenario: the connection idles this long before its reuse


@pytest.mark.parametrize("per_lease", [False, True], ids=["default", "trace_all_leases"])
async def test_oldest_lease_age_is_the_lease_not_the_connection(
    telemetry: Telemetry, hold_server: tuple[Server, asyncio.Event], per_lease: bool
) -> None:
    server, release = hold_server
    ledger = SpanLedger()
    telemetry.tracer_provider.add_span_processor(ledger)
    tracer = telemetry.tracer_provider.get_tracer("test")
    connector = telemetry.connector(limit_per_host=1, trace_all_leases=per_lease)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(server.url("/small")) as resp:
            await resp.read()
        dialled_by = time.monotonic()  # the connection is at least this old from here
        await asyncio.sleep(IDLE_SECONDS)  # idle in the pool: part of the scenario

        async def holder() -> None:
            async with session.get(server.url("/hold")) as resp:
                await resp.read()

        lease_from = time.monotonic()  # the lease is at most this old from here
        hold = asyncio.ensure_future(holder())
        await wait_until(lambda: connector.statistics().active == 1, what="reused and held")
        assert connector.statistics().created == 1  # the same connection, reused
        timeout = aiohttp.ClientTimeout(total=5, connect=0.3)
        with tracer.start_as_current_span("request"), pytest.raises(asyncio.TimeoutError):
            await session.get(server.url("/small"), timeout=timeout)
        timed_out_at = time.monotonic()
        release.set()
        await hold
    waits = [
        s for s in ledger.spans(sc.SPAN_WAIT)
        if s.attributes.get(sc.ERROR_TYPE) == "pool_wait_timeout"
    ]  # fmt: skip
    assert len(waits) == 1, [dict(s.attributes) for s in ledger.spans(sc.SPAN_WAIT)]
    lease_age_max = timed_out_at - lease_from
    connection_age_min = timed_out_at - dialled_by
    age = waits[0].attributes.get(sc.POOL_OLDEST_LEASE_AGE)
    keys = [e for e in waits[0].events if e.name == sc.EVENT_POOL_KEY]
    per_key = [e.attributes.get(sc.POOL_OLDEST_LEASE_AGE) for e in keys]
    if not per_lease:
        # The held connection is on its second lease, unseen by default: its start is
        # unknown, so the age is left out (never the connection's age instead).
        assert (age, per_key) == (None, [None]), dict(waits[0].attributes)
        return
    # Every acquisition is seen: the lease's age, never the connection's.
    assert len(per_key) == 1, per_key
    for a in [age, *per_key]:
        assert isinstance(a, float), (a, dict(waits[0].attributes))
        assert a < connection_age_min - 0.5, (a, connection_age_min)
        assert 0.2 <= a <= lease_age_max + 0.05, (a, lease_age_max)
