"""Every pool-wait timeout is counted, whatever runs between aiohttp starting its
deadline and the wait starting, and a caller's own cancellation never is.

aiohttp starts the ``connect`` deadline (``ceil_timeout``) before it calls the method that
queues; the verdict must come from that deadline's own state, not from a clock the
plugin starts later. The truth is what the callers got.

    POOL_OTEL_WAIT_TRIALS=300 pytest tests/test_pool_wait_timeout_race.py  # per shape
"""

from __future__ import annotations

import asyncio
import os
import random
from contextlib import ExitStack

import aiohttp
import pytest

from aiohttp_pool_otel import semconv as sc

from .conftest import Server, Telemetry
from .rig.spans import SpanLedger
from .rig.waiting import quiet_point, wait_until
from .wait_timeout_trials import (
    TIMEOUTS,
    Tally,
    awaiting_trace_config,
    busy_thread,
    held_slot,
    queued_round,
    run_rounds,
    stall_after_deadline_armed,
)

TRIALS_PER_SHAPE = int(os.environ.get("POOL_OTEL_WAIT_TRIALS", "110"))
KINDS = ["plain", "busy-thread", "trace-config", "slow-processor", "stalls"]


@pytest.mark.parametrize("timeout", list(TIMEOUTS))
async def test_a_stall_right_after_aiohttp_armed_its_deadline_is_still_a_wait_timeout(
    telemetry: Telemetry, hold_server: tuple[Server, asyncio.Event], timeout: str
) -> None:
    """The loop thread stops for 15 ms between aiohttp arming the deadline and the wait
    starting (another thread held the GIL): the deadline fires 15 ms "early" for a clock
    started in the wait; the callers still got aiohttp's timeout error, every one."""
    server, _ = hold_server
    ledger = SpanLedger()
    loop = asyncio.get_running_loop()
    short = aiohttp.ClientTimeout(total=5, connect=0.05)
    if timeout == "total":
        short = aiohttp.ClientTimeout(total=0.05)
    telemetry.tracer_provider.add_span_processor(ledger)
    tracer = telemetry.tracer_provider.get_tracer("test")
    async with held_slot(telemetry, server, ledger) as (session, connector):
        outcomes = []
        with stall_after_deadline_armed(loop, 0.015):
            for _ in range(4):  # one at a time: no other stall delays its deadline
                outcomes += await queued_round(session, server, short, 1, random.Random(1), tracer)
        await quiet_point()
        stats = connector.statistics()
    assert outcomes == ["timeout"] * 4, outcomes
    waits = ledger.spans(sc.SPAN_WAIT)
    flagged = [s for s in waits if s.attributes.get(sc.ERROR_TYPE) == "pool_wait_timeout"]
    assert stats.timeouts == 4, [s.attributes.get(sc.ERROR_TYPE) for s in waits]
    assert len(flagged) == 4
    assert ledger.unended() == [] and ledger.ended_twice() == []


async def test_every_wait_timeout_is_counted_in_every_shape(
    telemetry: Telemetry, hold_server: tuple[Server, asyncio.Event]
) -> None:
    """>= 1,000 queued requests across shapes and both timeout kinds: misses 0."""
    server, _ = hold_server
    loop = asyncio.get_running_loop()
    total, per_shape = Tally(), {}
    for k, kind in enumerate(KINDS):
        for name, timeout in TIMEOUTS.items():
            seed = 100 * k + len(name)
            started = loop.time()
            user_config = awaiting_trace_config(random.Random(seed))
            configs = [user_config] if kind == "trace-config" else None
            ledger = SpanLedger(on_start_delay=0.002 if kind == "slow-processor" else 0.0)
            with ExitStack() as stack:
                if kind == "busy-thread":
                    stack.enter_context(busy_thread())
                if kind == "stalls":
                    stack.enter_context(stall_after_deadline_armed(loop, 0.004))
                tally = await run_rounds(
                    telemetry, server, timeout, TRIALS_PER_SHAPE, seed=seed,
                    trace_configs=configs, ledger=ledger,
                )  # fmt: skip
            per_shape[f"{kind}/{name}"] = tally
            tally.seconds = round(loop.time() - started, 1)
            total.add(tally)
            assert ledger.unended() == [] and ledger.ended_twice() == [], kind
    report = {
        k: (t.trials, t.observed, t.missed, t.stuck, t.other, t.seconds)
        for k, t in per_shape.items()
    }
    print("shape: (trials, timeouts the callers got, missed, stuck, other, seconds)", report)
    assert total.trials >= 1000, report
    assert total.other == 0, report  # the slot was held throughout: nothing got through
    assert total.observed + total.stuck == total.trials, report
    # Only a user's trace config that awaits can make aiohttp lose its total timer (the
    # timer fires before aiohttp made the request's timer context): those callers give
    # up after a second, a cancellation of their own, and the plugin counts none.
    assert [k for k, t in per_shape.items() if t.stuck] in ([], ["trace-config/total"]), report
    assert per_shape["trace-config/total"].observed >= TRIALS_PER_SHAPE // 2, report
    assert [k for k, t in per_shape.items() if t.missed or t.flagged != t.observed] == [], report


async def test_a_callers_own_cancellation_is_never_a_timeout_even_near_the_deadline(
    telemetry: Telemetry, hold_server: tuple[Server, asyncio.Event]
) -> None:
    """Callers cancel their queued requests at random moments up to (and around) the
    connect deadline, with the loop stalling right after aiohttp arms it: exactly the
    requests whose callers got the timeout error are counted."""
    server, _ = hold_server
    ledger = SpanLedger()
    telemetry.tracer_provider.add_span_processor(ledger)
    tracer = telemetry.tracer_provider.get_tracer("test")
    loop = asyncio.get_running_loop()
    rng = random.Random(7)
    timeout = aiohttp.ClientTimeout(total=5, connect=0.08)
    results: list[object] = []
    async with held_slot(telemetry, server, ledger) as (session, connector):

        async def queued() -> None:
            with tracer.start_as_current_span("request"):
                async with session.get(server.url("/small"), timeout=timeout) as resp:
                    await resp.read()

        with stall_after_deadline_armed(loop, 0.004):
            for _ in range(10):
                tasks = [asyncio.ensure_future(queued()) for _ in range(10)]
                await wait_until(lambda: connector.statistics().waiting == 10, what="queued")
                for task in tasks[:6]:
                    loop.call_later(rng.uniform(0.0, 0.05), task.cancel)
                results += await asyncio.gather(*tasks, return_exceptions=True)
        await quiet_point()
        stats = connector.statistics()
    cancelled = sum(isinstance(r, asyncio.CancelledError) for r in results)
    timed_out = sum(isinstance(r, asyncio.TimeoutError) for r in results)
    assert cancelled + timed_out == len(results) == 100, results
    assert cancelled >= 10 and timed_out >= 10, (cancelled, timed_out)  # both, many times
    assert stats.timeouts == timed_out, (stats.timeouts, timed_out, cancelled)
    flagged = [
        s for s in ledger.spans(sc.SPAN_WAIT)
        if s.attributes.get(sc.ERROR_TYPE) == "pool_wait_timeout"
    ]  # fmt: skip
    assert len(flagged) == timed_out
    assert ledger.unended() == [] and ledger.ended_twice() == []
