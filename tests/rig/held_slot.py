"""One connection slot held, so that the next requests queue: the scene of every
pool-wait timeout test.

``async with one_slot_held(telemetry, hold_server) as scene:`` opens an instrumented
connector with ``limit_per_host=1`` and a session, and holds the slot with a request to
``/hold`` until the block ends. ``scene.get(...)`` makes a traced request that queues
behind it. On exit the slot is released, the pool settles, ``scene.stats`` is read, and
every span must have ended exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Optional

import aiohttp

from aiohttp_pool_otel import OpenTelemetryTCPConnector, PoolStatistics

from .spans import SpanLedger
from .waiting import quiet_point, wait_until


class HeldSlot:
    """A session whose only slot for the hold server is taken."""

    def __init__(
        self, session: aiohttp.ClientSession, connector: OpenTelemetryTCPConnector,
        ledger: SpanLedger, tracer: Any, server: Any,
    ) -> None:  # fmt: skip
        self.session = session
        self.connector = connector
        self.ledger = ledger
        self.tracer = tracer
        self.server = server
        self.stats: Optional[PoolStatistics] = None  # read once the slot is released

    async def get(self, timeout: aiohttp.ClientTimeout, url: Optional[str] = None) -> None:
        """One GET under a request span (it queues for the held slot), body read."""
        with self.tracer.start_as_current_span("request"):
            target = url or self.server.url("/small")
            async with self.session.get(target, timeout=timeout) as resp:
                await resp.read()

    async def outcome(self, timeout: aiohttp.ClientTimeout) -> str:
        """``"timeout"`` if :meth:`get` raised aiohttp's timeout error, else ``"ok"``."""
        try:
            await self.get(timeout)
        except asyncio.TimeoutError:  # aiohttp's timeout errors are these
            return "timeout"
        return "ok"

    async def queued(self, n: int) -> None:
        """Until ``n`` requests wait for the slot."""
        await wait_until(lambda: self.connector.statistics().waiting == n, what="queued")


@contextlib.asynccontextmanager
async def one_slot_held(
    telemetry: Any,
    hold_server: tuple[Any, asyncio.Event],
    meter_provider: Any = None,
    on_start_delay: float = 0.0,
) -> AsyncIterator[HeldSlot]:
    """The scene (see the module's doc); ``meter_provider`` replaces the test's own."""
    server, release = hold_server
    ledger = SpanLedger(on_start_delay=on_start_delay)
    telemetry.tracer_provider.add_span_processor(ledger)
    connector = OpenTelemetryTCPConnector(
        tracer_provider=telemetry.tracer_provider,
        meter_provider=meter_provider or telemetry.meter_provider,
        limit_per_host=1,
    )
    async with aiohttp.ClientSession(connector=connector) as session:
        scene = HeldSlot(
            session, connector, ledger, telemetry.tracer_provider.get_tracer("test"), server
        )

        async def holder() -> None:
            async with session.get(server.url("/hold")) as resp:
                await resp.read()

        hold = asyncio.ensure_future(holder())
        await wait_until(lambda: connector.statistics().active == 1, what="slot held")
        try:
            yield scene
        finally:
            release.set()
            await hold
            await quiet_point()
            scene.stats = connector.statistics()
    await quiet_point()
    assert ledger.unended() == [] and ledger.ended_twice() == []
