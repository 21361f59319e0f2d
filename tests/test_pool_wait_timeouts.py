"""Issue 11, defect 4: a request that raised aiohttp's timeout while queued for a slot is a
pool-wait timeout, every time, whatever the timeout's shape, and only then.

The truth is what the caller got: the count of timeout exceptions the callers saw equals
``statistics().timeouts`` and the number of wait spans with ``error.type=pool_wait_timeout``.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from opentelemetry.trace import StatusCode

from aiohttp_pool_otel import OpenTelemetryTCPConnector
from aiohttp_pool_otel import semconv as sc

from .conftest import Server, Telemetry
from .rig.hostile_meter import HostileMeterProvider
from .rig.spans import SpanLedger
from .rig.waiting import quiet_point, wait_until

QUEUED = 6




SHAPES = {
    "total-only": aiohttp.ClientTimeout(total=0.2),
    "connect": aiohttp.ClientTimeout(total=5, connect=0.2),
    "sock-connect-and-total": aiohttp.ClientTimeout(total=0.2, sock_connect=5),
    # connect is set, but the total timer fires first (found by the chaos test, seed 25)
    "total-before-connect": aiohttp.ClientTimeout(total=0.2, connect=1.0),
}


@pytest.mark.parametrize("hostile", [False, True], ids=["", "hostile-meter"])
@pytest.mark.parametrize("slow_processor", [False, True], ids=["", "slow-on-start"])
@pytest.mark.parametrize("shape", list(SHAPES))
async def test_every_caller_observed_wait_timeout_is_counted(
    telemetry: Telemetry,
    hold_server: tuple[Server, asyncio.Event],
    shape: str,
    slow_processor: bool,
    hostile: bool,
) -> None:
    server, release = hold_server
    ledger = SpanLedger(on_start_delay=0.002 if slow_processor else 0.0)
    telemetry.tracer_provider.add_span_processor(ledger)
    tracer = telemetry.tracer_provider.get_tracer("test")
    connector = OpenTelemetryTCPConnector(
        tracer_provider=telemetry.tracer_provider,
        # A meter whose histogram records raise must not change what is counted.
        meter_provider=HostileMeterProvider() if hostile else telemetry.meter_provider,
        limit_per_host=1,
    )
    timeout = SHAPES[shape]
    async with aiohttp.ClientSession(connector=connector) as session:

        async def holder() -> None:
            async with session.get(server.url("/hold")) as resp:
                await resp.read()

        async def queued() -> str:
            with tracer.start_as_current_span("request"):
                try:
                    async with session.get(server.url("/small"), timeout=timeout) as resp:
                        await resp.read()
                        return "ok"
                except asyncio.TimeoutError:  # aiohttp's timeout errors are these
                    return "timeout"

        hold = asyncio.ensure_future(holder())
        await wait_until(lambda: connector.statistics().active == 1, what="slot held")
        outcomes = await asyncio.gather(*(queued() for _ in range(QUEUED)))
        release.set()
        await hold
        await quiet_point()
        stats = connector.statistics()
    await quiet_point()
    observed = outcomes.count("timeout")
    assert observed == QUEUED, outcomes  # the slot was held throughout: all timed out
    waits = ledger.spans(sc.SPAN_WAIT)
    timed_out = [s for s in waits if s.attributes.get(sc.ERROR_TYPE) == "pool_wait_timeout"]
    assert stats.timeouts == observed, (stats.timeouts, observed)
    assert len(timed_out) == observed, [(s.attributes.get(sc.ERROR_TYPE), s.status) for s in waits]
    assert all(s.status.status_code is StatusCode.ERROR for s in timed_out)
    assert ledger.unended() == [] and ledger.ended_twice() == []


async def test_a_callers_cancellation_while_queued_is_not_a_timeout(
    telemetry: Telemetry, hold_server: tuple[Server, asyncio.Event]
) -> None:
    server, release = hold_server
    ledger = SpanLedger()
    telemetry.tracer_provider.add_span_processor(ledger)
    tracer = telemetry.tracer_provider.get_tracer("test")
    connector = telemetry.connector(limit_per_host=1)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def holder() -> None:
            async with session.get(server.url("/hold")) as resp:
                await resp.read()

        async def queued() -> None:
            with tracer.start_as_current_span("request"):
                timeout = aiohttp.ClientTimeout(total=10, connect=5)
                async with session.get(server.url("/small"), timeout=timeout) as resp:
                    await resp.read()

        hold = asyncio.ensure_future(holder())
        await wait_until(lambda: connector.statistics().active == 1, what="slot held")
        tasks = [asyncio.ensure_future(queued()) for _ in range(3)]
        await wait_until(lambda: connector.statistics().waiting == 3, what="queued")
        for t in tasks:
            t.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results), results
        release.set()
        await hold
        await quiet_point()
        stats = connector.statistics()
    assert stats.timeouts == 0, stats
    waits = ledger.spans(sc.SPAN_WAIT)
    assert len(waits) == 3
    assert all(s.attributes.get(sc.ERROR_TYPE) != "pool_wait_timeout" for s in waits)
    assert ledger.unended() == [] and ledger.ended_twice() == []


@pytest.mark.parametrize("shape", ["connect", "total-only"])
async def test_a_cancellation_racing_an_expired_timeout_is_the_callers(
    telemetry: Telemetry, hold_server: tuple[Server, asyncio.Event], shape: str
) -> None:
    """The loop stalls past a queued request's timeout; the caller's own cancellation
    was due first and is what the caller gets (CancelledError): no timeout is counted."""
    server, release = hold_server
    ledger = SpanLedger()
    telemetry.tracer_provider.add_span_processor(ledger)
    tracer = telemetry.tracer_provider.get_tracer("test")
    connector = telemetry.connector(limit_per_host=1)
    timeout = (
        aiohttp.ClientTimeout(total=5, connect=0.05)
        if shape == "connect"
        else aiohttp.ClientTimeout(total=0.05)
    )
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(connector=connector) as session:

        async def holder() -> None:
            async with session.get(server.url("/hold")) as resp:
                await resp.read()

        async def queued() -> None:
            with tracer.start_as_current_span("request"):
                async with session.get(server.url("/small"), timeout=timeout) as resp:
                    await resp.read()

        hold = asyncio.ensure_future(holder())
        await wait_until(lambda: connector.statistics().active == 1, what="slot held")
        task = asyncio.ensure_future(queued())
        await wait_until(lambda: connector.statistics().waiting == 1, what="queued")
        loop.call_later(0.01, task.cancel)  # the caller's cancellation: due first ...
        # ... but the loop stalls (a blocking call in someone's code) past the timeout:
        # both are due in the same loop iteration, the cancellation first.
        loop.call_soon(time.sleep, 0.15)
        result = (await asyncio.gather(task, return_exceptions=True))[0]
        release.set()
        await hold
        await quiet_point()
        stats = connector.statistics()
    caller_timed_out = isinstance(result, asyncio.TimeoutError)
    assert isinstance(result, (asyncio.CancelledError, asyncio.TimeoutError)), result
    assert stats.timeouts == int(caller_timed_out), (result, stats.timeouts)
    waits = ledger.spans(sc.SPAN_WAIT)
    flagged = [s for s in waits if s.attributes.get(sc.ERROR_TYPE) == "pool_wait_timeout"]
    assert len(flagged) == int(caller_timed_out), (result, [dict(s.attributes) for s in waits])
    assert ledger.unended() == [] and ledger.ended_twice() == []


@pytest.mark.parametrize(
    "timeout",
    [aiohttp.ClientTimeout(total=0.3), aiohttp.ClientTimeout(total=0.3, connect=0.25)],
    ids=["total-only", "total-and-connect"],
)
async def test_a_wait_timeout_after_a_redirect_is_counted(
    telemetry: Telemetry,
    hold_server: tuple[Server, asyncio.Event],
    server: Server,
    timeout: aiohttp.ClientTimeout,
) -> None:
    """The first hop is served at once by another host; the redirected request queues for
    the held host and the request's total timer fires there (found by the chaos test)."""
    held, release = hold_server
    ledger = SpanLedger()
    telemetry.tracer_provider.add_span_processor(ledger)
    tracer = telemetry.tracer_provider.get_tracer("test")
    connector = telemetry.connector(limit_per_host=1)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def holder() -> None:
            async with session.get(held.url("/hold")) as resp:
                await resp.read()

        hold = asyncio.ensure_future(holder())
        await wait_until(lambda: connector.statistics().active == 1, what="slot held")
        url = server.url("/redirect") + "?to=" + held.url("/small")
        outcome = "ok"
        with tracer.start_as_current_span("request"):
            try:
                async with session.get(url, timeout=timeout) as resp:
                    await resp.read()
            except asyncio.TimeoutError:
                outcome = "timeout"
        release.set()
        await hold
        await quiet_point()
        stats = connector.statistics()
    assert outcome == "timeout"
    waits = ledger.spans(sc.SPAN_WAIT)
    assert [s.attributes.get(sc.ERROR_TYPE) for s in waits] == ["pool_wait_timeout"]
    assert stats.timeouts == 1, stats
    assert ledger.unended() == [] and ledger.ended_twice() == []


async def test_connect_and_total_expiring_together_are_one_wait_timeout(
    telemetry: Telemetry, hold_server: tuple[Server, asyncio.Event]
) -> None:
    """The loop stalls past both the connect deadline and the total timer of a queued
    request: both cancel the task in one iteration, the caller gets aiohttp's timeout
    error, and that is a pool-wait timeout (found by the chaos test, seeds 7 and 25)."""
    server, release = hold_server
    ledger = SpanLedger()
    telemetry.tracer_provider.add_span_processor(ledger)
    tracer = telemetry.tracer_provider.get_tracer("test")
    connector = telemetry.connector(limit_per_host=1)
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(connector=connector) as session:

        async def holder() -> None:
            async with session.get(server.url("/hold")) as resp:
                await resp.read()

        async def queued() -> None:
            with tracer.start_as_current_span("request"):
                timeout = aiohttp.ClientTimeout(total=0.12, connect=0.1)
                async with session.get(server.url("/small"), timeout=timeout) as resp:
                    await resp.read()

        hold = asyncio.ensure_future(holder())
        await wait_until(lambda: connector.statistics().active == 1, what="slot held")
        task = asyncio.ensure_future(queued())
        await wait_until(lambda: connector.statistics().waiting == 1, what="queued")
        # A blocking call in someone's code holds the loop past both deadlines.
        loop.call_soon(time.sleep, 0.3)
        result = (await asyncio.gather(task, return_exceptions=True))[0]
        release.set()
        await hold
        await quiet_point()
        stats = connector.statistics()
    assert isinstance(result, asyncio.TimeoutError), result
    waits = ledger.spans(sc.SPAN_WAIT)
    assert [s.attributes.get(sc.ERROR_TYPE) for s in waits] == ["pool_wait_timeout"], result
    assert stats.timeouts == 1, stats
    assert ledger.unended() == [] and ledger.ended_twice() == []
