"""Shared fixtures: explicit OTel providers with in-memory exporters, and real aiohttp
servers on 127.0.0.1 that answer every body shape the pool cares about."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass
from typing import Any, Callable, Optional

import aiohttp
import pytest
import trustme
from aiohttp import web
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from aiohttp_pool_otel import (
    AioHttpConnectionPoolInstrumentor,
    OpenTelemetryTCPConnector,
    create_pool_trace_config,
)

from .rig.metric_points import collect
from .rig.waiting import wait_until

# aiohttp >= 3.10 raises its own error when writing to a closed transport.
_RESET_ERROR = getattr(aiohttp, "ClientConnectionResetError", ConnectionError)

# Bounded everywhere: the endless body stops by itself after this long.
ENDLESS_SECONDS = 20.0

# /gated holds its body until the test opens the gate (Server.open_gate()): a lease
# whose end the test controls, whatever the machine's speed.
GATE = web.AppKey("gate", asyncio.Event)


@dataclass
class Telemetry:
    """Local providers plus what they captured."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    spans_exporter: InMemorySpanExporter
    reader: InMemoryMetricReader

    def spans(self, name: Optional[str] = None) -> list[ReadableSpan]:
        spans = list(self.spans_exporter.get_finished_spans())
        return [s for s in spans if name is None or s.name == name]

    def metrics(self) -> dict[str, list[tuple[dict[str, Any], Any]]]:
        """metric name -> [(attributes, value or histogram point)]."""
        return {
            name: [(attrs, getattr(dp, "value", dp)) for attrs, dp in points]
            for name, points in collect(self.reader).points.items()
        }

    def connector(self, **kwargs: Any) -> OpenTelemetryTCPConnector:
        return OpenTelemetryTCPConnector(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider, **kwargs
        )

    def trace_config(self) -> aiohttp.TraceConfig:
        return create_pool_trace_config(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider
        )

    @contextlib.contextmanager
    def instrumentor(self) -> Iterator[AioHttpConnectionPoolInstrumentor]:
        """The instrumentor, active with these providers until the block ends."""
        instrumentor = AioHttpConnectionPoolInstrumentor()
        instrumentor.instrument(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider
        )
        try:
            yield instrumentor
        finally:
            instrumentor.uninstrument()


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Telemetry(tracer_provider, meter_provider, exporter, reader)
    tracer_provider.shutdown()
    meter_provider.shutdown()


# --- servers ------------------------------------------------------------------


async def _small(request: web.Request) -> web.Response:
    return web.Response(text="hello")


async def _empty(request: web.Request) -> web.Response:
    return web.Response(status=204)


def _body_in_two_writes(
    delay: float,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A handler: headers now, the rest of a Content-Length body ``delay`` s later."""

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": "10"})
        await resp.prepare(request)
        await resp.write(b"01234")
        await asyncio.sleep(delay)
        await resp.write(b"56789")
        await resp.write_eof()
        return resp

    return handler


_late_body = _body_in_two_writes(0.2)  # a body that outlasts the request: later ones queue
_soon_body = _body_in_two_writes(0.01)  # EOF after the headers, quickly


async def _gated(request: web.Request) -> web.StreamResponse:
    """Headers and half a Content-Length body now, the rest once the gate opens."""
    resp = web.StreamResponse(headers={"Content-Length": "10"})
    await resp.prepare(request)
    await resp.write(b"01234")
    # Bounded: a test that never opens the gate gets its body after ENDLESS_SECONDS.
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(request.app[GATE].wait(), ENDLESS_SECONDS)
    await resp.write(b"56789")
    await resp.write_eof()
    return resp


async def _endless(request: web.Request) -> web.StreamResponse:
    """A chunked body that drips until the client goes away (or a bound is hit)."""
    resp = web.StreamResponse()
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ENDLESS_SECONDS
    try:
        while loop.time() < deadline:
            await resp.write(b"x" * 16)
            await asyncio.sleep(0.05)
    except (ConnectionError, _RESET_ERROR):
        pass
    return resp


async def _cut(request: web.Request) -> web.StreamResponse:
    """Promises 100 bytes, sends 10, then drops the connection."""
    resp = web.StreamResponse(headers={"Content-Length": "100"})
    await resp.prepare(request)
    await resp.write(b"0123456789")
    await asyncio.sleep(0.1)
    if request.transport is not None:  # else the client already left
        request.transport.close()
    return resp


async def body_cut(resp: aiohttp.ClientResponse) -> None:
    """Wait (bounded) until aiohttp saw the server's /cut drop the connection (the
    unfinished body failed): from then on nothing of aiohttp keeps ``resp`` alive."""
    await wait_until(lambda: resp.content.exception() is not None, what="the server's cut")


async def _big(request: web.Request) -> web.Response:
    return web.Response(body=b"b" * (4 * 1024 * 1024))


async def _close(request: web.Request) -> web.Response:
    return web.Response(text="bye", headers={"Connection": "close"})


async def _redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound(request.query.get("to", "/small"))


async def _error(request: web.Request) -> web.Response:
    return web.Response(status=500, body=b"e" * (1024 * 1024))


async def _hang(request: web.Request) -> web.Response:
    await asyncio.sleep(ENDLESS_SECONDS)
    return web.Response(text="late")


def make_app() -> web.Application:
    app = web.Application()
    app[GATE] = asyncio.Event()
    app.router.add_get("/small", _small)
    app.router.add_post("/late", _late_body)
    app.router.add_get("/empty", _empty)
    app.router.add_get("/late", _late_body)
    app.router.add_get("/soon", _soon_body)
    app.router.add_get("/gated", _gated)
    app.router.add_post("/gated", _gated)
    app.router.add_get("/endless", _endless)
    app.router.add_get("/big", _big)
    app.router.add_get("/cut", _cut)
    app.router.add_get("/close", _close)
    app.router.add_get("/redirect", _redirect)
    app.router.add_get("/error", _error)
    app.router.add_get("/hang", _hang)
    return app


class Server:
    """A running aiohttp server on 127.0.0.1."""

    def __init__(self, runner: web.AppRunner, port: int, scheme: str = "http") -> None:
        self.runner = runner
        self.port = port
        self.scheme = scheme

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def open_gate(self) -> None:
        """Let every /gated response (now and later) send the rest of its body."""
        self.runner.app[GATE].set()


async def start_server(
    app: Optional[web.Application] = None,
    ssl_context: Optional[ssl.SSLContext] = None,
    **runner_kwargs: Any,
) -> Server:
    runner = web.AppRunner(app or make_app(), handle_signals=False, **runner_kwargs)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    return Server(runner, port, "https" if ssl_context else "http")


@contextlib.asynccontextmanager
async def serving(
    app: Optional[web.Application] = None,
    ssl_context: Optional[ssl.SSLContext] = None,
    **runner_kwargs: Any,
) -> AsyncIterator[Server]:
    """:func:`start_server`, cleaned up when the block ends."""
    srv = await start_server(app, ssl_context, **runner_kwargs)
    try:
        yield srv
    finally:
        await srv.runner.cleanup()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    async with serving() as srv:
        yield srv


@pytest.fixture
async def server2() -> AsyncIterator[Server]:
    async with serving() as srv:
        yield srv


@pytest.fixture(scope="session")
def certificate_authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_server_context(certificate_authority: trustme.CA) -> ssl.SSLContext:
    """A server context with a certificate for 127.0.0.1 and localhost."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate_authority.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
async def tls_server(tls_server_context: ssl.SSLContext) -> AsyncIterator[Server]:
    async with serving(ssl_context=tls_server_context) as srv:
        yield srv


@pytest.fixture
def client_ssl_context(certificate_authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    certificate_authority.configure_trust(context)
    return context


@pytest.fixture
async def hold_server() -> AsyncIterator[tuple[Server, asyncio.Event]]:
    """``/hold`` answers when the test sets the event (bounded), ``/small`` at once."""
    release = asyncio.Event()

    async def hold(request: web.Request) -> web.Response:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(release.wait(), 15)
        return web.Response(text="held")

    async def small(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/hold", hold)
    app.router.add_get("/small", small)
    srv = await start_server(app)
    yield srv, release
    release.set()
    await srv.runner.cleanup()
