"""Every span the plugin starts ends exactly once, whatever the
providers, the server or the caller do: the connector closed during a dial, a meter whose
histogram ``record`` raises, a caller's cancellation while dialling, GC of an unclosed
response. A span processor counts ``on_start`` / ``on_end`` per span id.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver
from opentelemetry.trace import StatusCode, Tracer

from aiohttp_pool_otel import OpenTelemetryTCPConnector
from aiohttp_pool_otel import semconv as sc

from .conftest import Server, Telemetry
from .rig.hostile_meter import HostileMeterProvider
from .rig.pool_books import assert_books_balance
from .rig.resolvers import loopback_answer
from .rig.spans import SpanLedger
from .rig.waiting import quiet_point, wait_until

# A name only our resolver knows; it resolves to the loopback server.
HOST = "pool-otel-exactness.test"


async def traced_get(session: aiohttp.ClientSession, tracer: Tracer, url: str) -> bytes:
    """GET ``url`` under a "request" span; its body."""
    with tracer.start_as_current_span("request"):
        async with session.get(url) as resp:
            return await resp.read()


class GateResolver(AbstractResolver):
    """A real resolver (aiohttp's interface) that answers 127.0.0.1 once ``gate`` opens:
    holds a dial in progress for as long as the test needs."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[dict[str, Any]]:  # aiohttp's ResolveResult (3.10+): a dict
        self.entered.set()
        await asyncio.wait_for(self.gate.wait(), 15)  # bounded
        return loopback_answer(host, port)

    async def close(self) -> None:
        pass


@pytest.fixture
def ledger(telemetry: Telemetry) -> SpanLedger:
    led = SpanLedger()
    telemetry.tracer_provider.add_span_processor(led)
    return led


@dataclass
class DialInProgress:
    """A traced request whose dial is held in its DNS lookup until ``resolver.gate``
    opens."""

    resolver: GateResolver
    connector: OpenTelemetryTCPConnector
    session: aiohttp.ClientSession
    request: asyncio.Future[bytes]


@pytest.fixture
async def dial_in_progress(
    telemetry: Telemetry, ledger: SpanLedger, server: Server
) -> AsyncIterator[DialInProgress]:
    """A dial in progress (after the ledger is watching); the session closed after."""
    resolver = GateResolver()
    connector = telemetry.connector(resolver=resolver, use_dns_cache=False)
    session = aiohttp.ClientSession(connector=connector)
    tracer = telemetry.tracer_provider.get_tracer("test")
    request = asyncio.ensure_future(
        traced_get(session, tracer, f"http://{HOST}:{server.port}/small")
    )
    await asyncio.wait_for(resolver.entered.wait(), 15)
    yield DialInProgress(resolver, connector, session, request)
    resolver.gate.set()
    await session.close()


async def test_connector_closed_during_a_dial_ends_every_span(
    dial_in_progress: DialInProgress, ledger: SpanLedger
) -> None:
    dial = dial_in_progress
    await dial.connector.close()  # while the dial is in progress ...
    dial.resolver.gate.set()  # ... which then completes: aiohttp drops the new connection
    result = await asyncio.gather(dial.request, return_exceptions=True)
    assert isinstance(result[0], aiohttp.ClientError), result
    await dial.session.close()
    await quiet_point()
    assert ledger.unended() == [], f"spans never ended: {ledger.unended()}"
    assert ledger.ended_twice() == []
    creates = ledger.spans(sc.SPAN_CREATE)
    assert len(creates) == 1
    assert creates[0].status.status_code is StatusCode.ERROR, creates[0].status
    stats = dial.connector.statistics()
    assert stats.created == stats.closed, stats  # the dropped connection was closed


async def test_caller_cancelling_a_dial_ends_every_span(
    dial_in_progress: DialInProgress, ledger: SpanLedger
) -> None:
    dial = dial_in_progress
    dial.request.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await dial.request
    dial.resolver.gate.set()
    await quiet_point()
    stats = dial.connector.statistics()
    assert (stats.connecting, stats.active) == (0, 0), stats
    await dial.session.close()
    await quiet_point()
    assert ledger.unended() == [] and ledger.ended_twice() == []
    creates = ledger.spans(sc.SPAN_CREATE)
    assert [c.status.status_code for c in creates] == [StatusCode.ERROR]


async def test_a_histogram_whose_record_raises_leaves_no_span_open(
    telemetry: Telemetry, ledger: SpanLedger, server: Server
) -> None:
    # Spans to the real tracer, metrics to a meter whose every histogram record raises.
    connector = OpenTelemetryTCPConnector(
        tracer_provider=telemetry.tracer_provider,
        meter_provider=HostileMeterProvider(),
        limit_per_host=1,
        record_hold_time=True,
    )
    tracer = telemetry.tracer_provider.get_tracer("test")
    async with aiohttp.ClientSession(connector=connector) as session:
        # /close: every request dials (create_time), queues behind the others
        # (wait_time) and closes its connection (connection.duration): each a record
        # that raises.
        bodies = await asyncio.gather(
            *(traced_get(session, tracer, server.url("/close")) for _ in range(4))
        )
        bodies += await asyncio.gather(
            *(traced_get(session, tracer, server.url("/small")) for _ in range(3))
        )
        assert bodies == [b"bye"] * 4 + [b"hello"] * 3  # telemetry never breaks requests
        await quiet_point()
        stats = connector.statistics()
        assert stats.timeouts == 0, stats
        assert_books_balance(stats)
    await quiet_point()
    assert ledger.unended() == [], f"spans never ended: {ledger.unended()}"
    assert ledger.ended_twice() == []
    # Each queued acquisition had its span: 3 behind the first /close, 2 behind /small.
    assert len(ledger.spans(sc.SPAN_WAIT)) == 5


async def test_gc_of_an_unclosed_response_ends_its_lease_span(
    telemetry: Telemetry, ledger: SpanLedger, server: Server
) -> None:
    connector = telemetry.connector(trace_all_leases=True)
    tracer = telemetry.tracer_provider.get_tracer("test")
    async with aiohttp.ClientSession(connector=connector) as session:
        with tracer.start_as_current_span("request"):
            resp = await session.get(server.url("/cut"))  # the server drops it mid-body
        cycle: list[Any] = [resp]
        cycle.append(cycle)  # only the cyclic GC can free it
        del resp, cycle
        await wait_until(
            lambda: connector.statistics().active == 0 or gc.collect() < 0, what="GC release"
        )
        await quiet_point()
        assert_books_balance(connector.statistics())
    await quiet_point()
    assert ledger.unended() == [] and ledger.ended_twice() == []
    leases = ledger.spans(sc.SPAN_LEASE)
    assert [s.attributes.get(sc.RELEASE_REASON) for s in leases] == ["gc"]
