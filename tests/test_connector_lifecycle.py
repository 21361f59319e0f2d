"""Sessions, sharing, closing, and telemetry that fails: aiohttp behaves as without us."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import aiohttp
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

from aiohttp_pool_otel import OpenTelemetryTCPConnector, ReleaseReason
from aiohttp_pool_otel import semconv as sc

from .conftest import Server, Telemetry
from .rig.waiting import wait_until


async def test_connector_shared_by_two_sessions(telemetry: Telemetry, server: Server) -> None:
    connector = telemetry.connector(trace_all_leases=True)
    a = aiohttp.ClientSession(connector=connector, connector_owner=False)
    b = aiohttp.ClientSession(connector=connector, connector_owner=False)
    for session in (a, b, a):
        async with session.get(server.url("/small")) as resp:
            await resp.read()
    held = await b.get(server.url("/endless"))
    await a.close()
    await b.close()
    # connector_owner=False: closing the sessions closed nothing.
    stats = connector.statistics()
    # One connection served all four: the held request reused the idle one (a reuse
    # is counted when its lease ends: two so far).
    assert (stats.created, stats.reused, stats.active, stats.idle) == (1, 2, 1, 0)
    held.close()
    await connector.close()
    stats = connector.statistics()
    assert (stats.active, stats.idle, stats.closed) == (0, 0, 1)
    assert stats.releases == {ReleaseReason.EOF: 3, ReleaseReason.CLOSE: 1}
    assert len(telemetry.spans(sc.SPAN_LEASE)) == 4


async def test_connector_close_ends_every_held_lease_once(
    telemetry: Telemetry, server: Server
) -> None:
    connector = telemetry.connector()
    session = aiohttp.ClientSession(connector=connector)
    held = [await session.get(server.url("/endless")) for _ in range(3)]
    await session.close()
    for resp in held:
        resp.close()
        resp.release()
    stats = connector.statistics()
    assert stats.releases == {ReleaseReason.CONNECTOR_CLOSED: 3}
    assert (stats.active, stats.idle, stats.closed) == (0, 0, 3)
    leases = telemetry.spans(sc.SPAN_LEASE)
    assert len(leases) == 3
    assert {s.attributes[sc.RELEASE_REASON] for s in leases} == {"connector_closed"}


async def test_keepalive_expiry_is_counted_as_closed(telemetry: Telemetry, server: Server) -> None:
    connector = telemetry.connector(keepalive_timeout=0.1, trace_all_leases=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(server.url("/small")) as resp:
            await resp.read()
        # The release pooled the connection (its idle life may already be over on a slow
        # machine: 0.1 s), so a close can only be the keep-alive expiry.
        await wait_until(lambda: bool(telemetry.spans(sc.SPAN_LEASE)), what="the lease span")
        (lease,) = telemetry.spans(sc.SPAN_LEASE)
        assert lease.attributes[sc.RELEASE_OUTCOME] == "pooled"
        assert connector.statistics().releases == {ReleaseReason.EOF: 1}
        await wait_until(lambda: connector.statistics().idle == 0, what="keep-alive expiry")
        stats = connector.statistics()
        assert (stats.idle, stats.closed, stats.created) == (0, 1, 1)
    durations = telemetry.metrics()[sc.METRIC_CONNECTION_DURATION]
    assert sum(p.count for _, p in durations) == 1


class _ExplodingTracerProvider(TracerProvider):
    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        tracer = super().get_tracer(*args, **kwargs)

        class Exploding:
            def start_span(self, *a: Any, **k: Any) -> Any:
                raise RuntimeError("tracer is broken")

            def __getattr__(self, name: str) -> Any:
                return getattr(tracer, name)

        return Exploding()


class _RaisingExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        raise RuntimeError("exporter is down")

    def shutdown(self) -> None:
        pass


async def _scenario(session: aiohttp.ClientSession, server: Server) -> list[Any]:
    """Requests that touch every code path; returns what the caller observes."""
    out: list[Any] = []
    async with session.get(server.url("/small")) as resp:
        out.append((resp.status, await resp.text()))
    results = await asyncio.gather(
        *(session.get(server.url("/late")) for _ in range(3)), return_exceptions=True
    )
    for r in results:
        assert isinstance(r, aiohttp.ClientResponse)
        out.append((r.status, await r.read()))
        r.release()
    resp = await session.get(server.url("/endless"))
    out.append(resp.status)
    resp.close()
    with pytest.raises(aiohttp.ClientResponseError) as info:
        await session.get(server.url("/error"), raise_for_status=True)
    out.append(info.value.status)
    return out


@pytest.mark.parametrize("failure", ["tracer", "exporter", "histogram"])
async def test_broken_telemetry_never_changes_the_requests(
    server: Server, failure: str, caplog: pytest.LogCaptureFixture, monkeypatch: Any
) -> None:
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit_per_host=1)
    ) as bare:
        expected = await _scenario(bare, server)

    tracer_provider = TracerProvider()
    if failure == "tracer":
        tracer_provider = _ExplodingTracerProvider()
    elif failure == "exporter":
        tracer_provider.add_span_processor(SimpleSpanProcessor(_RaisingExporter()))
    elif failure == "histogram":
        from opentelemetry.sdk.metrics._internal import instrument

        def explode(*args: Any, **kwargs: Any) -> None:
            raise RuntimeError("meter is broken")

        monkeypatch.setattr(instrument._Histogram, "record", explode)
    from opentelemetry.sdk.metrics import MeterProvider

    connector = OpenTelemetryTCPConnector(
        limit_per_host=1,
        tracer_provider=tracer_provider,
        meter_provider=MeterProvider(),
        trace_all_leases=True,
        record_hold_time=True,
    )
    with caplog.at_level(logging.ERROR):
        async with aiohttp.ClientSession(connector=connector) as session:
            assert await _scenario(session, server) == expected
            stats = connector.statistics()
    assert (stats.active, stats.waiting) == (0, 0)
    assert stats.created + stats.reused == 6


def test_connector_gc_without_close_does_not_raise(
    telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc
    import sys
    import warnings
    import weakref

    # What a finalizer raises is not raised to anyone: Python hands it to this hook.
    unraisable: list[str] = []
    monkeypatch.setattr(
        sys, "unraisablehook", lambda u: unraisable.append(f"{u.exc_type.__name__}: {u.exc_value}")
    )
    refs: list[weakref.ref[OpenTelemetryTCPConnector]] = []

    async def make() -> None:
        refs.append(weakref.ref(telemetry.connector()))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        asyncio.run(make())
        gc.collect()
    assert refs[0]() is None, "the unclosed connector was collected"
    assert unraisable == []
