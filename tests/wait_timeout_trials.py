"""Rounds of requests that queue for a held slot and time out, in the shapes services
run: what runs between aiohttp starting its deadline and the wait starting varies (a
busy thread holding the GIL, a user's TraceConfig that awaits, a slow span processor, a
loop stall right after aiohttp armed its deadline).

One connection to ``/hold`` holds the only slot (``limit_per_host=1``) for a whole run, so
every queued request must end in aiohttp's timeout error; a *miss* is one the caller got
and the plugin did not count. Real sockets on 127.0.0.1 only; every run is bounded in
count and time.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Optional

import aiohttp

from aiohttp_pool_otel import OpenTelemetryTCPConnector
from aiohttp_pool_otel import semconv as sc

from .conftest import Server, Telemetry
from .exactness_helpers import SpanLedger, quiet_point, wait_until

# Small timeouts keep a run short; the deadline lands on a loop busy with its peers.
CONNECT = aiohttp.ClientTimeout(total=5, connect=0.03)
TOTAL = aiohttp.ClientTimeout(total=0.03)
TIMEOUTS = {"connect": CONNECT, "total": TOTAL}
# A request still running this long after its 30 ms timeout got no timeout from aiohttp.
STUCK_AFTER = 1.0


@dataclass
class Tally:
    """What the callers got, and what the plugin counted, over some rounds."""

    trials: int = 0
    observed: int = 0  # callers that got aiohttp's timeout error
    counted: int = 0  # statistics().timeouts
    flagged: int = 0  # wait spans with error.type=pool_wait_timeout
    stuck: int = 0  # requests aiohttp never timed out; their callers cancelled them
    other: int = 0  # any other outcome (the run was not what it meant to be)
    seconds: float = 0.0

    @property
    def missed(self) -> int:
        return self.observed - self.counted

    def add(self, other: Tally) -> None:
        for name in ("trials", "observed", "counted", "flagged", "stuck", "other"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


# --- what runs around the deadline ----------------------------------------------------


@contextmanager
def busy_thread() -> Iterator[None]:
    """A pure-Python thread beside the loop: it holds the GIL for a switch interval at
    a time, wherever the loop thread happens to be."""
    stop = threading.Event()

    def spin() -> None:
        n = 0
        while not stop.is_set():
            n += 1

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


def awaiting_trace_config(rng: random.Random) -> aiohttp.TraceConfig:
    """A user's TraceConfig whose request-start and queued-start callbacks await 1-5 ms."""

    async def pause(session: Any, ctx: Any, params: Any) -> None:
        await asyncio.sleep(rng.uniform(0.001, 0.005))

    config = aiohttp.TraceConfig()
    config.on_request_start.append(pause)
    config.on_connection_queued_start.append(pause)
    return config


@contextmanager
def stall_after_deadline_armed(loop: asyncio.AbstractEventLoop, seconds: float) -> Iterator[None]:
    """Block the loop thread for ``seconds`` right after a timeout context schedules its
    deadline: what a thread holding the GIL (or a long GC pause) does at the worst
    moment, between aiohttp starting its deadline and the pool wait starting."""
    original = loop.call_at

    def call_at(when: float, callback: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        handle = original(when, callback, *args, **kwargs)
        if getattr(callback, "__name__", "") in ("_on_timeout", "__call__"):
            time.sleep(seconds)
        return handle

    loop.call_at = call_at  # type: ignore[method-assign]
    try:
        yield
    finally:
        del loop.call_at  # the class's method again


# --- a run --------------------------------------------------------------------------


@asynccontextmanager
async def held_slot(
    telemetry: Telemetry, server: Server, ledger: SpanLedger, **session_kwargs: Any
) -> AsyncIterator[tuple[aiohttp.ClientSession, OpenTelemetryTCPConnector]]:
    """A session whose connector's only slot for ``server`` is held by ``/hold``."""
    connector = telemetry.connector(limit_per_host=1)
    async with aiohttp.ClientSession(connector=connector, **session_kwargs) as session:

        async def holder() -> None:
            async with session.get(server.url("/hold")) as resp:
                await resp.read()

        hold = asyncio.ensure_future(holder())
        try:
            await wait_until(lambda: connector.statistics().active == 1, what="slot held")
            yield session, connector
        finally:
            hold.cancel()
            await asyncio.gather(hold, return_exceptions=True)


async def queued_round(
    session: aiohttp.ClientSession,
    server: Server,
    timeout: aiohttp.ClientTimeout,
    concurrency: int,
    rng: random.Random,
    tracer: Any,
) -> list[str]:
    """``concurrency`` requests that start a few ms apart and queue for the held slot."""

    async def request() -> str:
        with tracer.start_as_current_span("request"):
            try:
                async with session.get(server.url("/small"), timeout=timeout) as resp:
                    await resp.read()
                    return "ok"
            except asyncio.TimeoutError:  # aiohttp's timeout errors are these
                return "timeout"

    async def one(delay: float) -> str:
        await asyncio.sleep(delay)
        task = asyncio.ensure_future(request())
        done, _ = await asyncio.wait({task}, timeout=STUCK_AFTER)
        if done:
            return task.result()
        # aiohttp lost its total timer (it fired while a trace callback of the user's
        # awaited, before the request's timer context existed): the caller gives up,
        # which is a cancellation of its own, never a timeout.
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return "stuck"

    delays = [rng.uniform(0, 0.01) for _ in range(concurrency)]
    return await asyncio.gather(*(one(d) for d in delays))


async def run_rounds(
    telemetry: Telemetry,
    server: Server,
    timeout: aiohttp.ClientTimeout,
    trials: int,
    *,
    seed: int,
    concurrency: int = 20,
    wall_seconds: float = 8.0,
    trace_configs: Optional[list[aiohttp.TraceConfig]] = None,
    ledger: Optional[SpanLedger] = None,
) -> Tally:
    """``trials`` queued requests in rounds; stops early (counting what ran) at
    ``wall_seconds``, well inside the holder's bound."""
    ledger = ledger or SpanLedger()
    telemetry.tracer_provider.add_span_processor(ledger)
    tracer = telemetry.tracer_provider.get_tracer("trials")
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    tally = Tally()
    async with held_slot(telemetry, server, ledger, trace_configs=trace_configs) as (s, c):
        deadline = loop.time() + wall_seconds
        before = c.statistics().timeouts
        while tally.trials < trials and loop.time() < deadline:
            n = min(concurrency, trials - tally.trials)
            outcomes = await queued_round(s, server, timeout, n, rng, tracer)
            tally.trials += n
            tally.observed += outcomes.count("timeout")
            tally.stuck += outcomes.count("stuck")
            tally.other += n - outcomes.count("timeout") - outcomes.count("stuck")
        await quiet_point()
        tally.counted = c.statistics().timeouts - before
    waits = [s for s in ledger.spans(sc.SPAN_WAIT) if s.attributes is not None]
    tally.flagged = sum(1 for s in waits if s.attributes.get(sc.ERROR_TYPE) == "pool_wait_timeout")
    return tally
