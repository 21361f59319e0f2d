"""Span shapes: which acquisitions get spans, their attributes, parents and errors."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Iterator
from typing import Any, Callable

import aiohttp
import pytest
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

from aiohttp_pool_otel import PoolStatistics
from aiohttp_pool_otel import semconv as sc

from .conftest import Server, Telemetry
from .rig.pool_books import pool_of
from .rig.ports import unused_port
from .rig.reads import get_text
from .rig.spans import by_name
from .rig.waiting import wait_until


async def cancel_once(task: asyncio.Task[Any], ready: Callable[[], bool], what: str) -> None:
    """Cancel ``task`` once ``ready()`` holds (bounded); its caller sees CancelledError."""
    await wait_until(ready, what=what)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def gets_at_once(
    telemetry: Telemetry, server: Server, count: int, **connector_kwargs: Any
) -> PoolStatistics:
    """``count`` concurrent GETs of /late (its body takes 200 ms, so later ones queue)
    through one instrumented connector; its statistics before it closes."""
    connector = telemetry.connector(**connector_kwargs)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(get_text(session, server.url("/late")) for _ in range(count)))
        return connector.statistics()


async def test_first_request_dials_and_gets_create_and_lease_spans_under_request_span(
    telemetry: Telemetry, server: Server
) -> None:
    tracer = telemetry.tracer_provider.get_tracer("test")
    async with aiohttp.ClientSession(
        connector=telemetry.connector(), trace_configs=[telemetry.trace_config()]
    ) as session:
        loop = asyncio.get_running_loop()  # loop.time() is the plugin's clock
        asked = loop.time()
        with tracer.start_as_current_span("request") as request_span:
            assert await get_text(session, server.url("/small")) == "hello"
        answered = loop.time()
        request_id = request_span.get_span_context().span_id
        spans = by_name(telemetry.spans())
        (create,) = spans[sc.SPAN_CREATE]
        (lease,) = spans[sc.SPAN_LEASE]
        assert sc.SPAN_WAIT not in spans
        assert create.parent is not None and create.parent.span_id == request_id
        assert lease.parent is not None and lease.parent.span_id == request_id
        assert create.attributes[sc.SERVER_ADDRESS] == "127.0.0.1"
        assert create.attributes[sc.SERVER_PORT] == server.port
        assert create.attributes[sc.URL_SCHEME] == "http"
        assert create.attributes[sc.HTTP_REQUEST_METHOD] == "GET"
        assert create.attributes[sc.NETWORK_PEER_ADDRESS] == "127.0.0.1"
        assert lease.attributes[sc.CONNECTION_REUSED] is False
        assert lease.attributes[sc.RELEASE_REASON] == "eof"
        assert lease.attributes[sc.RELEASE_PHASE] == "headers"
        assert lease.attributes[sc.RELEASE_OUTCOME] == "pooled"
        assert 0 < lease.attributes[sc.CONNECTION_HOLD_TIME] <= answered - asked
        assert [e.name for e in lease.events] == [sc.EVENT_EOF, sc.EVENT_RELEASED]

        # A reused, unqueued acquisition is the hot path: no span by default.
        telemetry.spans_exporter.clear()
        with tracer.start_as_current_span("request"):
            assert await get_text(session, server.url("/small")) == "hello"
        assert [s.name for s in telemetry.spans()] == ["request"]


async def test_connector_alone_names_each_requests_method_on_its_spans(
    telemetry: Telemetry, server: Server
) -> None:
    tracer = telemetry.tracer_provider.get_tracer("test")
    connector = telemetry.connector(limit_per_host=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        with tracer.start_as_current_span("request"):
            async with session.post(server.url("/gated"), data=b"x") as held:
                # The second request queues behind the held one: its wait span is a GET's.
                waiting = asyncio.create_task(get_text(session, server.url("/small")))
                await wait_until(lambda: connector.statistics().waiting == 1, what="queued")
                server.open_gate()
                await held.read()
            assert await waiting == "hello"
    spans = by_name(telemetry.spans())
    (create,) = spans[sc.SPAN_CREATE]
    (lease,) = spans[sc.SPAN_LEASE]
    (wait,) = spans[sc.SPAN_WAIT]
    assert create.attributes[sc.HTTP_REQUEST_METHOD] == "POST"
    assert lease.attributes[sc.HTTP_REQUEST_METHOD] == "POST"
    assert wait.attributes[sc.HTTP_REQUEST_METHOD] == "GET"


async def test_trace_all_leases_adds_a_lease_span_with_idle_time_for_reuse(
    telemetry: Telemetry, server: Server
) -> None:
    loop = asyncio.get_running_loop()  # loop.time() is the plugin's clock
    async with aiohttp.ClientSession(
        connector=telemetry.connector(trace_all_leases=True)
    ) as session:
        started = loop.time()
        for _ in range(3):
            await get_text(session, server.url("/small"))
        elapsed = loop.time() - started
    leases = telemetry.spans(sc.SPAN_LEASE)
    assert [s.attributes[sc.CONNECTION_REUSED] for s in leases] == [False, True, True]
    assert sc.CONNECTION_IDLE_TIME not in leases[0].attributes
    # Each reuse found the connection idle since the previous release: within the run.
    idle = [s.attributes[sc.CONNECTION_IDLE_TIME] for s in leases[1:]]
    assert all(isinstance(t, float) and 0 <= t <= elapsed for t in idle), (idle, elapsed)


async def test_dns_span_is_a_child_of_create(telemetry: Telemetry, server: Server) -> None:
    async with aiohttp.ClientSession(
        connector=telemetry.connector(force_close=True),  # every request dials
        trace_configs=[telemetry.trace_config()],
    ) as session:
        for _ in range(2):
            assert await get_text(session, server.url("/small", host="localhost")) == "hello"
    spans = by_name(telemetry.spans())
    first, second = spans[sc.SPAN_CREATE]
    (dns,) = spans[sc.SPAN_DNS]  # the second dial was answered by aiohttp's DNS cache
    assert dns.parent is not None
    assert dns.parent.span_id == first.get_span_context().span_id
    assert dns.attributes[sc.SERVER_ADDRESS] == "localhost"
    assert first.attributes[sc.DNS_CACHE_HIT] is False
    assert second.attributes[sc.DNS_CACHE_HIT] is True
    durations = telemetry.metrics()[sc.METRIC_DNS_DURATION]
    assert sum(point.count for _, point in durations) == 1


async def test_queued_acquisition_gets_a_wait_span_naming_the_blocking_limit(
    telemetry: Telemetry, server: Server
) -> None:
    stats = await gets_at_once(telemetry, server, 3, limit=10, limit_per_host=1)
    spans = by_name(telemetry.spans())
    waits = spans[sc.SPAN_WAIT]
    assert len(waits) == 2
    assert sorted(s.attributes[sc.POOL_QUEUE_DEPTH] for s in waits) == [0, 1]
    assert {s.attributes[sc.POOL_BLOCKING_LIMIT] for s in waits} == {"limit_per_host"}
    assert all(s.status.is_ok for s in waits)
    # One span per queued acquisition by default: the wait span; only the dialled
    # connection's lease is traced.
    (lease,) = spans[sc.SPAN_LEASE]
    assert lease.attributes[sc.CONNECTION_QUEUED] is False
    assert (stats.created, stats.reused, stats.waiting, stats.active) == (1, 2, 0, 0)
    waits_hist = telemetry.metrics()[sc.METRIC_WAIT_TIME]
    assert sum(point.count for _, point in waits_hist) == 2


async def test_trace_all_leases_traces_queued_leases_too(
    telemetry: Telemetry, server: Server
) -> None:
    await gets_at_once(telemetry, server, 3, limit_per_host=1, trace_all_leases=True)
    leases = telemetry.spans(sc.SPAN_LEASE)
    assert sorted(s.attributes[sc.CONNECTION_QUEUED] for s in leases) == [False, True, True]
    assert sorted(s.attributes[sc.CONNECTION_REUSED] for s in leases) == [False, True, True]


async def test_total_limit_is_named_when_it_blocks(telemetry: Telemetry, server: Server) -> None:
    await gets_at_once(telemetry, server, 2, limit=1)
    (wait,) = telemetry.spans(sc.SPAN_WAIT)
    assert wait.attributes[sc.POOL_BLOCKING_LIMIT] == "limit"


async def test_pool_wait_timeout(telemetry: Telemetry, server: Server) -> None:
    # Held by the test: a garbage-collected connector's series stop being reported.
    connector = telemetry.connector(limit_per_host=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        held = await session.get(server.url("/endless"))
        with pytest.raises(asyncio.TimeoutError):  # aiohttp's ConnectionTimeoutError
            await session.get(
                server.url("/small"), timeout=aiohttp.ClientTimeout(connect=0.2)
            )
        stats = session.connector.statistics()  # type: ignore[union-attr]
        assert (stats.timeouts, stats.waiting, stats.active) == (1, 0, 1)
        held.close()
    (wait,) = telemetry.spans(sc.SPAN_WAIT)
    assert wait.status.status_code.name == "ERROR"
    # aiohttp < 3.10.11 applies the connect timeout around connect(), 3.10.11+ inside
    # it: either way the plugin sees a cancellation at the deadline, and names it.
    assert wait.attributes[sc.ERROR_TYPE] == "pool_wait_timeout"
    timeouts = telemetry.metrics()[sc.METRIC_TIMEOUTS]
    assert sum(v for _, v in timeouts) == 1


async def test_cancel_while_queued_ends_the_wait_span_and_counts_nothing(
    telemetry: Telemetry, server: Server
) -> None:
    async with aiohttp.ClientSession(
        connector=telemetry.connector(limit_per_host=1)
    ) as session:
        held = await session.get(server.url("/endless"))
        task = asyncio.create_task(session.get(server.url("/small")))
        await cancel_once(task, lambda: pool_of(session).waiting == 1, "the request queued")
        stats = session.connector.statistics()  # type: ignore[union-attr]
        assert (stats.waiting, stats.active, stats.created, stats.timeouts) == (0, 1, 1, 0)
        held.close()
    (wait,) = telemetry.spans(sc.SPAN_WAIT)
    assert wait.attributes[sc.ERROR_TYPE] == "CancelledError"
    assert len(telemetry.spans(sc.SPAN_LEASE)) == 1  # the held one only


async def test_connect_error_marks_create_span_and_leaves_pool_empty(
    telemetry: Telemetry,
) -> None:
    port = unused_port()
    async with aiohttp.ClientSession(connector=telemetry.connector()) as session:
        with pytest.raises(aiohttp.ClientConnectorError):
            await session.get(f"http://127.0.0.1:{port}/")
        stats = session.connector.statistics()  # type: ignore[union-attr]
    assert (stats.active, stats.connecting, stats.created) == (0, 0, 0)
    (create,) = telemetry.spans(sc.SPAN_CREATE)
    assert create.status.status_code.name == "ERROR"
    assert "ClientConnectorError" in create.attributes[sc.ERROR_TYPE]
    assert telemetry.spans(sc.SPAN_LEASE) == []


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """Accepts TCP (in the kernel backlog) but never answers: a TLS dial hangs."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


async def test_cancel_while_dialling(telemetry: Telemetry, silent_listener: int) -> None:
    async with aiohttp.ClientSession(
        connector=telemetry.connector(ssl=ssl.create_default_context())
    ) as session:
        task = asyncio.create_task(session.get(f"https://127.0.0.1:{silent_listener}/"))
        await cancel_once(task, lambda: pool_of(session).connecting == 1, "the dial started")
        stats = session.connector.statistics()  # type: ignore[union-attr]
        assert (stats.connecting, stats.active, stats.created) == (0, 0, 0)
    (create,) = telemetry.spans(sc.SPAN_CREATE)
    assert create.attributes[sc.ERROR_TYPE] == "CancelledError"


async def test_dial_timeout_is_told_apart_from_pool_wait(
    telemetry: Telemetry, silent_listener: int
) -> None:
    async with aiohttp.ClientSession(
        connector=telemetry.connector(ssl=ssl.create_default_context())
    ) as session:
        with pytest.raises(asyncio.TimeoutError):
            await session.get(
                f"https://127.0.0.1:{silent_listener}/",
                timeout=aiohttp.ClientTimeout(connect=0.2),
            )
        assert session.connector.statistics().timeouts == 0  # type: ignore[union-attr]
    (create,) = telemetry.spans(sc.SPAN_CREATE)
    assert create.attributes[sc.ERROR_TYPE] == "connect_timeout"


async def test_unsampled_parent_builds_no_spans(telemetry: Telemetry, server: Server) -> None:
    parent = NonRecordingSpan(
        SpanContext(trace_id=1, span_id=2, is_remote=True, trace_flags=TraceFlags(0))
    )
    async with aiohttp.ClientSession(
        connector=telemetry.connector(limit_per_host=1, trace_all_leases=True),
        trace_configs=[telemetry.trace_config()],
    ) as session:
        from opentelemetry import context

        token = context.attach(set_span_in_context(parent))
        try:
            await asyncio.gather(*(get_text(session, server.url("/late")) for _ in range(2)))
        finally:
            context.detach(token)
        stats = session.connector.statistics()  # type: ignore[union-attr]
    assert telemetry.spans() == []
    assert (stats.created, stats.reused) == (1, 1)  # metrics still count everything


async def test_held_response_lease_outlives_its_request_span(
    telemetry: Telemetry, server: Server
) -> None:
    tracer = telemetry.tracer_provider.get_tracer("test")
    async with aiohttp.ClientSession(connector=telemetry.connector()) as session:
        with tracer.start_as_current_span("request"):
            resp = await session.get(server.url("/endless"))
        assert [s.name for s in telemetry.spans()] == [sc.SPAN_CREATE, "request"]
        (request,) = telemetry.spans("request")
        ended = request.end_time or 0
        assert ended > request.start_time > 0  # type: ignore[operator]
        # The clock moved on (the SDK's clock is time_ns; a coarse one may repeat).
        await wait_until(lambda: time.time_ns() > ended, what="the clock to move")
        resp.close()
    spans = by_name(telemetry.spans())
    (request,) = spans["request"]
    (lease,) = spans[sc.SPAN_LEASE]
    assert (lease.end_time or 0) > ended
    assert lease.attributes[sc.RELEASE_REASON] == "close"


async def test_unix_connector(telemetry: Telemetry, tmp_path: Any) -> None:
    from aiohttp import web

    from aiohttp_pool_otel import OpenTelemetryUnixConnector

    from .conftest import make_app

    path = str(tmp_path / "s.sock")
    runner = web.AppRunner(make_app(), handle_signals=False)
    await runner.setup()
    await web.UnixSite(runner, path).start()
    try:
        connector = OpenTelemetryUnixConnector(
            path=path,
            tracer_provider=telemetry.tracer_provider,
            meter_provider=telemetry.meter_provider,
        )
        async with aiohttp.ClientSession(connector=connector) as session:
            for _ in range(2):
                assert await get_text(session, "http://unix.invalid/small") == "hello"
            stats = connector.statistics()
        assert (stats.created, stats.reused) == (1, 1)
        assert list(stats.hosts) == [("unix.invalid", 80, "http")]
    finally:
        await runner.cleanup()


async def test_a_redirect_after_a_queued_acquisition_is_not_queued(
    telemetry: Telemetry, server: Server
) -> None:
    """A wait that ended with a pooled connection is over: the redirect's own dial (a
    new host key, in the same task) is a new acquisition, not the queued one."""
    tracer = telemetry.tracer_provider.get_tracer("test")
    target = server.url("/small", host="localhost")
    async with aiohttp.ClientSession(connector=telemetry.connector(limit_per_host=1)) as session:
        with tracer.start_as_current_span("request"):
            holder = await session.get(server.url("/gated"))  # holds the slot until opened

            async def redirected() -> str:
                return await get_text(session, server.url(f"/redirect?to={target}"))

            follower = asyncio.ensure_future(redirected())
            await wait_until(  # it queues behind the holder
                lambda: session.connector.statistics().waiting == 1,  # type: ignore[union-attr]
                what="the follower queued",
            )
            server.open_gate()
            await holder.read()  # EOF pools the connection: the follower takes it
            assert await follower == "hello"
    spans = by_name(telemetry.spans())
    assert len(spans[sc.SPAN_WAIT]) == 1  # one queued acquisition, one wait span
    creates = spans[sc.SPAN_CREATE]
    assert sorted(s.attributes[sc.SERVER_ADDRESS] for s in creates) == ["127.0.0.1", "localhost"]
    leases = {s.attributes[sc.SERVER_ADDRESS]: s for s in spans[sc.SPAN_LEASE]}
    assert leases["localhost"].attributes[sc.CONNECTION_QUEUED] is False
    assert leases["127.0.0.1"].attributes[sc.CONNECTION_QUEUED] is False  # the holder's dial
