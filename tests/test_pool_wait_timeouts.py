"""A request that raised aiohttp's timeout while queued for a slot is a pool-wait timeout,
every time, whatever the timeout's shape, and only then.

The truth is what the caller got: the count of timeout exceptions the callers saw equals
``statistics().timeouts`` and the number of wait spans with ``error.type=pool_wait_timeout``.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from opentelemetry.trace import StatusCode

from aiohttp_pool_otel import semconv as sc

from .conftest import Server, Telemetry
from .rig.held_slot import HeldSlot, one_slot_held
from .rig.hostile_meter import HostileMeterProvider

QUEUED = 6
HoldServer = tuple[Server, asyncio.Event]


def wait_errors(scene: HeldSlot) -> list[object]:
    """``error.type`` of every wait span, in the order they ended."""
    return [s.attributes.get(sc.ERROR_TYPE) for s in scene.ledger.spans(sc.SPAN_WAIT)]


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
    telemetry: Telemetry, hold_server: HoldServer, shape: str, slow_processor: bool,
    hostile: bool,
) -> None:  # fmt: skip
    # A meter whose histogram records raise must not change what is counted.
    meter = HostileMeterProvider() if hostile else None
    delay = 0.002 if slow_processor else 0.0
    async with one_slot_held(telemetry, hold_server, meter, delay) as scene:
        outcomes = await asyncio.gather(*(scene.outcome(SHAPES[shape]) for _ in range(QUEUED)))
    assert outcomes == ["timeout"] * QUEUED  # the slot was held throughout: all timed out
    assert scene.stats is not None and scene.stats.timeouts == QUEUED, scene.stats
    assert wait_errors(scene) == ["pool_wait_timeout"] * QUEUED
    waits = scene.ledger.spans(sc.SPAN_WAIT)
    assert all(s.status.status_code is StatusCode.ERROR for s in waits)


async def test_a_callers_cancellation_while_queued_is_not_a_timeout(
    telemetry: Telemetry, hold_server: HoldServer
) -> None:
    timeout = aiohttp.ClientTimeout(total=10, connect=5)
    async with one_slot_held(telemetry, hold_server) as scene:
        tasks = [asyncio.ensure_future(scene.get(timeout)) for _ in range(3)]
        await scene.queued(3)
        for t in tasks:
            t.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results), results
    assert scene.stats is not None and scene.stats.timeouts == 0, scene.stats
    assert wait_errors(scene) == ["CancelledError"] * 3


@pytest.mark.parametrize("shape", ["connect", "total-only"])
async def test_a_cancellation_racing_an_expired_timeout_is_the_callers(
    telemetry: Telemetry, hold_server: HoldServer, shape: str
) -> None:
    """The loop stalls past a queued request's timeout; the caller's own cancellation
    was due first and is what the caller gets (CancelledError): no timeout is counted."""
    timeout = (
        aiohttp.ClientTimeout(total=5, connect=0.05)
        if shape == "connect"
        else aiohttp.ClientTimeout(total=0.05)
    )
    loop = asyncio.get_running_loop()
    async with one_slot_held(telemetry, hold_server) as scene:
        task = asyncio.ensure_future(scene.get(timeout))
        await scene.queued(1)
        loop.call_later(0.01, task.cancel)  # the caller's cancellation: due first ...
        # ... but the loop stalls (a blocking call in someone's code) past the timeout:
        # both are due in the same loop iteration, the cancellation first.
        loop.call_soon(time.sleep, 0.15)
        result = (await asyncio.gather(task, return_exceptions=True))[0]
    caller_timed_out = isinstance(result, asyncio.TimeoutError)
    assert isinstance(result, (asyncio.CancelledError, asyncio.TimeoutError)), result
    assert scene.stats is not None and scene.stats.timeouts == int(caller_timed_out)
    flagged = [e for e in wait_errors(scene) if e == "pool_wait_timeout"]
    assert len(flagged) == int(caller_timed_out), (result, wait_errors(scene))


@pytest.mark.parametrize(
    "timeout",
    [aiohttp.ClientTimeout(total=0.3), aiohttp.ClientTimeout(total=0.3, connect=0.25)],
    ids=["total-only", "total-and-connect"],
)
async def test_a_wait_timeout_after_a_redirect_is_counted(
    telemetry: Telemetry, hold_server: HoldServer, server: Server,
    timeout: aiohttp.ClientTimeout,
) -> None:  # fmt: skip
    """The first hop is served at once by another host; the redirected request queues for
    the held host and the request's total timer fires there (found by the chaos test)."""
    held = hold_server[0]
    async with one_slot_held(telemetry, hold_server) as scene:
        url = server.url("/redirect") + "?to=" + held.url("/small")
        with pytest.raises(asyncio.TimeoutError):
            await scene.get(timeout, url)
    assert wait_errors(scene) == ["pool_wait_timeout"]
    assert scene.stats is not None and scene.stats.timeouts == 1, scene.stats


async def test_connect_and_total_expiring_together_are_one_wait_timeout(
    telemetry: Telemetry, hold_server: HoldServer
) -> None:
    """The loop stalls past both the connect deadline and the total timer of a queued
    request: both cancel the task in one iteration, the caller gets aiohttp's timeout
    error, and that is a pool-wait timeout (found by the chaos test)."""
    loop = asyncio.get_running_loop()
    async with one_slot_held(telemetry, hold_server) as scene:
        task = asyncio.ensure_future(scene.get(aiohttp.ClientTimeout(total=0.12, connect=0.1)))
        await scene.queued(1)
        # A blocking call in someone's code holds the loop past both deadlines.
        loop.call_soon(time.sleep, 0.3)
        result = (await asyncio.gather(task, return_exceptions=True))[0]
    assert isinstance(result, asyncio.TimeoutError), result
    assert wait_errors(scene) == ["pool_wait_timeout"], result
    assert scene.stats is not None and scene.stats.timeouts == 1, scene.stats
