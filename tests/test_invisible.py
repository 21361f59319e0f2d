"""The plugin covers every aiohttp connector and is invisible to everyone else.

One test (or one parametrized family) per case a user found, against real aiohttp
servers on 127.0.0.1, with ``AioHttpConnectionPoolInstrumentor`` active through the
``pool_instrumentor`` fixture (in-memory providers; always uninstrumented afterwards).

The rule for pool spans that have no request span above them (``root_spans``), as
tested here:

- default (``root_spans=None``, "auto"): while opentelemetry-instrumentation-aiohttp-client
  is instrumented, a pool span is made only under a valid current span; where the request
  instrumentation deliberately made no span (an excluded URL, a no-op tracer provider)
  there is no pool span either, so never a root trace of its own. Without the request
  instrumentation, pool spans may start their own trace (else an app without request
  spans would see nothing).
- ``root_spans=False``: pool spans only under a current sampled span.
- ``root_spans=True``: pool spans always, as roots when nothing is current.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Callable
from unittest import mock

import aiohttp
import aiohttp.client_reqrep
import aiohttp.connector
import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.instrumentation.utils import (
    suppress_http_instrumentation,
    suppress_instrumentation,
)
from opentelemetry.sdk.trace import ReadableSpan

from aiohttp_pool_otel import AioHttpConnectionPoolInstrumentor, pool_statistics

from .conftest import Server, Telemetry, start_server
from .rig.reads import get_body
from .rig.waiting import quiet_point

RELEASES = "aiohttp.client.connection.releases"
SPAN_WAIT = "aiohttp.connection.wait"
SPAN_CREATE = "aiohttp.connection.create"
SPAN_LEASE = "aiohttp.connection.lease"
SPAN_DNS = "aiohttp.dns.resolve"
POOL_SPANS = (SPAN_WAIT, SPAN_CREATE, SPAN_LEASE, SPAN_DNS)

# Every class whose attributes the instrumentor may patch: uninstrument() must leave each
# exactly as it was (the same object under every name, no name added or removed).
PATCHABLE = (
    aiohttp.connector.BaseConnector,
    aiohttp.connector.TCPConnector,
    aiohttp.connector.UnixConnector,
    aiohttp.ClientSession,
    aiohttp.client_reqrep.ClientResponse,
    aiohttp.connector.Connection,
)


# --- helpers ----------------------------------------------------------------------------


class PoolInstrumentor:
    """Our instrumentor with the test's providers; undone by the fixture whatever happens."""

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry
        self.instrumentor = AioHttpConnectionPoolInstrumentor()

    def instrument(self, **options: Any) -> None:
        self.instrumentor.instrument(
            tracer_provider=self.telemetry.tracer_provider,
            meter_provider=self.telemetry.meter_provider,
            **options,
        )

    def uninstrument(self) -> None:
        if self.instrumentor.is_instrumented_by_opentelemetry:
            self.instrumentor.uninstrument()


@pytest.fixture
def pool_instrumentor(telemetry: Telemetry) -> Iterator[PoolInstrumentor]:
    """Not yet instrumented: each test decides when (before or after its connectors).

    Afterwards both instrumentors are undone and, should that leave aiohttp changed (the
    failure one test reports), aiohttp's classes are put back so the next test starts clean.
    """
    before = snapshot()
    ours = PoolInstrumentor(telemetry)
    contrib = AioHttpClientInstrumentor()
    try:
        yield ours
    finally:
        ours.uninstrument()
        if contrib.is_instrumented_by_opentelemetry:
            contrib.uninstrument()
        restore(before)


@pytest.fixture
def instrumented(pool_instrumentor: PoolInstrumentor) -> PoolInstrumentor:
    """The instrumentor active with default options."""
    pool_instrumentor.instrument()
    return pool_instrumentor


def releases_recorded(telemetry: Telemetry) -> int:
    return sum(int(value) for _, value in telemetry.metrics().get(RELEASES, []))


def pool_spans(telemetry: Telemetry) -> list[ReadableSpan]:
    return [s for s in telemetry.spans() if s.name in POOL_SPANS]


def span_names(spans: list[ReadableSpan]) -> list[str]:
    return sorted(s.name for s in spans)


def shadowing(connector: aiohttp.BaseConnector) -> set[str]:
    """Instance attributes that hide a class attribute of the connector's class."""
    return set(vars(connector)) & set(dir(type(connector)))


def snapshot() -> dict[type, dict[str, Any]]:
    return {cls: dict(vars(cls)) for cls in PATCHABLE}


def restore(before: dict[type, dict[str, Any]]) -> None:
    for cls, attrs in before.items():
        for name in set(vars(cls)) - set(attrs):
            delattr(cls, name)
        for name, value in attrs.items():
            if vars(cls).get(name) is not value:
                setattr(cls, name, value)


def changed_since(before: dict[type, dict[str, Any]]) -> list[str]:
    missing = object()
    return sorted(
        f"{cls.__qualname__}.{name}"
        for cls, attrs in before.items()
        for name in set(attrs) | set(vars(cls))
        if attrs.get(name, missing) is not vars(cls).get(name, missing)
    )


# --- 1. zero-code covers every connector, whoever built it ------------------------------


class ThirdPartyClient:
    """What a library does: builds its own session and connector inside its own code."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit_per_host=2, keepalive_timeout=30),
            headers={"User-Agent": "third-party/1.0"},
        )

    async def fetch(self, path: str) -> bytes:
        async with self.session.get(self.base_url + path) as resp:
            resp.raise_for_status()
            return await resp.read()

    async def close(self) -> None:
        await self.session.close()


async def check_four_requests_covered(
    telemetry: Telemetry, connector: aiohttp.BaseConnector, fetch: Callable[[], Any]
) -> None:
    for _ in range(4):
        assert await fetch() == b"hello"
    await quiet_point()
    stats = pool_statistics(connector)
    assert stats is not None, "a plain connector used while instrumented is covered"
    assert sum(stats.releases.values()) == 4
    assert (stats.created, stats.reused) == (1, 3)  # sequential: one dial, three reuses
    assert releases_recorded(telemetry) == 4, "the releases counter shows the 4 releases"


async def test_session_given_a_plain_connector_is_covered(
    instrumented: PoolInstrumentor, telemetry: Telemetry, server: Server
) -> None:
    connector = aiohttp.TCPConnector(limit=3)
    async with aiohttp.ClientSession(connector=connector) as session:
        assert session.connector is connector  # the user's connector, not a replacement
        assert type(connector) is aiohttp.TCPConnector
        await check_four_requests_covered(
            telemetry, connector, lambda: get_body(session, server.url("/small"))
        )
        assert pool_statistics(connector).limit == 3


async def test_connector_created_before_instrument_is_covered(
    pool_instrumentor: PoolInstrumentor, telemetry: Telemetry, server: Server
) -> None:
    connector = aiohttp.TCPConnector(limit=3)
    async with aiohttp.ClientSession(connector=connector) as session:
        pool_instrumentor.instrument()
        await check_four_requests_covered(
            telemetry, connector, lambda: get_body(session, server.url("/small"))
        )


async def test_a_librarys_own_session_is_covered(
    instrumented: PoolInstrumentor, telemetry: Telemetry, server: Server
) -> None:
    client = ThirdPartyClient(server.url(""))
    try:
        await check_four_requests_covered(
            telemetry, client.session.connector, lambda: client.fetch("/small")
        )
    finally:
        await client.close()


async def test_pool_statistics_of_an_uninstrumented_connector_is_none() -> None:
    connector = aiohttp.TCPConnector()
    try:
        assert pool_statistics(connector) is None
    finally:
        await connector.close()


# --- 2. a connector method patched on the class is honoured -----------------------------


class Patched(Exception):
    """Raised by the patched connect: the request must end with it."""


def connector_kinds() -> list[str]:
    return [
        "plain-instrumented",
        "opentelemetry-connector",
        "opentelemetry-connector-and-instrumentor",
    ]


def make_connector(kind: str, telemetry: Telemetry, pool: PoolInstrumentor) -> aiohttp.TCPConnector:
    if kind != "opentelemetry-connector":
        pool.instrument()
    if kind == "plain-instrumented":
        return aiohttp.TCPConnector()
    return telemetry.connector()


@pytest.mark.parametrize("kind", connector_kinds())
@pytest.mark.parametrize("how", ["mock.patch", "mock.patch.object"])
async def test_class_patch_of_connect_after_the_connector_exists_is_honoured(
    kind: str, how: str, pool_instrumentor: PoolInstrumentor, telemetry: Telemetry,
    server: Server,
) -> None:  # fmt: skip
    connector = make_connector(kind, telemetry, pool_instrumentor)
    baseline = shadowing(aiohttp.TCPConnector())  # aiohttp's own (``_closed``), for reference
    async with aiohttp.ClientSession(connector=connector) as session:
        # Used first, so whatever per-connector state the plugin keeps already exists.
        assert await get_body(session, server.url("/small")) == b"hello"
        assert pool_statistics(connector) is not None, "the connector is covered"
        patch = (
            mock.patch("aiohttp.client.TCPConnector.connect", side_effect=Patched())
            if how == "mock.patch"
            else mock.patch.object(aiohttp.TCPConnector, "connect", side_effect=Patched())
        )
        with patch as patched:
            with pytest.raises(Patched):
                await get_body(session, server.url("/small"))
            assert patched.called, "the class-level patch was bypassed"
        # Unpatched again: requests work as before.
        assert await get_body(session, server.url("/small")) == b"hello"
        assert shadowing(connector) - baseline == set(), "no instance attribute hides a class one"


# --- 3. the session's own arguments are untouched ---------------------------------------


@dataclass
class LoopObservation:
    connector_type: type
    body: bytes
    warnings: list[tuple[type, str]]


def run_session_with_loop_argument() -> LoopObservation:
    """``ClientSession(loop=...)`` built outside any running loop, then used on that loop."""
    loop = asyncio.new_event_loop()
    try:
        srv = loop.run_until_complete(start_server())
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            session = aiohttp.ClientSession(loop=loop)
        try:
            body = loop.run_until_complete(get_body(session, srv.url("/small")))
            connector_type = type(session.connector)
        finally:
            loop.run_until_complete(session.close())
            loop.run_until_complete(srv.runner.cleanup())
    finally:
        loop.close()
    seen = [(w.category, str(w.message)) for w in caught]
    return LoopObservation(connector_type, body, seen)


def run_session_with_connector_of_another_loop() -> str:
    """aiohttp refuses a connector bound to another loop: the same error either way."""
    other, loop = asyncio.new_event_loop(), asyncio.new_event_loop()

    async def make_connector() -> aiohttp.TCPConnector:
        return aiohttp.TCPConnector()

    async def make_session(connector: aiohttp.TCPConnector) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=connector, loop=loop)

    try:
        connector = other.run_until_complete(make_connector())
        try:
            loop.run_until_complete(make_session(connector))
        except RuntimeError as error:
            return f"RuntimeError: {error}"
        finally:
            other.run_until_complete(connector.close())
        return "no error"
    finally:
        other.close()
        loop.close()


async def session_with_ssl_shutdown_timeout() -> tuple[type, Any, list[tuple[type, str]]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        session = aiohttp.ClientSession(ssl_shutdown_timeout=1.0)
    async with session:
        connector = session.connector
        # Private, but the only place aiohttp keeps it; compared with the plain run.
        value = getattr(connector, "_ssl_shutdown_timeout", "absent")
        return type(connector), value, [(w.category, str(w.message)) for w in caught]


def test_session_loop_argument_behaves_as_without_the_plugin(
    pool_instrumentor: PoolInstrumentor,
) -> None:
    plain = run_session_with_loop_argument()
    plain_error = run_session_with_connector_of_another_loop()
    pool_instrumentor.instrument()
    assert run_session_with_loop_argument() == plain
    assert plain.connector_type is aiohttp.TCPConnector  # the instrumentor builds none
    assert run_session_with_connector_of_another_loop() == plain_error
    assert plain_error.startswith("RuntimeError: Session and connector has to use same event loop")


@pytest.mark.skipif(
    "ssl_shutdown_timeout" not in inspect.signature(aiohttp.ClientSession).parameters,
    reason="this aiohttp has no ssl_shutdown_timeout",
)
async def test_ssl_shutdown_timeout_behaves_as_without_the_plugin(
    pool_instrumentor: PoolInstrumentor,
) -> None:
    plain = await session_with_ssl_shutdown_timeout()
    pool_instrumentor.instrument()
    assert await session_with_ssl_shutdown_timeout() == plain
    assert plain[0] is aiohttp.TCPConnector


# --- 4. suppression -----------------------------------------------------------------------


async def pool_scenario(session: aiohttp.ClientSession, server: Server) -> None:
    """One dial with a DNS lookup (``localhost``), one acquisition queued behind it."""
    url = server.url("/late", host="localhost")  # the body takes 200 ms: the second waits
    bodies = await asyncio.gather(get_body(session, url), get_body(session, url))
    assert bodies == [b"0123456789"] * 2


def limited_connector(
    route: str, telemetry: Telemetry, pool: PoolInstrumentor
) -> aiohttp.TCPConnector:
    if route == "instrumentor":
        if not pool.instrumentor.is_instrumented_by_opentelemetry:
            pool.instrument()
        return aiohttp.TCPConnector(limit=1)
    return telemetry.connector(limit=1)


@pytest.mark.parametrize("route", ["instrumentor", "opentelemetry-connector"])
@pytest.mark.parametrize("suppress", [suppress_instrumentation, suppress_http_instrumentation])
async def test_no_pool_span_under_suppression(
    route: str, suppress: Callable[[], Any], pool_instrumentor: PoolInstrumentor,
    telemetry: Telemetry, server: Server,
) -> None:  # fmt: skip
    async with aiohttp.ClientSession(
        connector=limited_connector(route, telemetry, pool_instrumentor)
    ) as session:
        with suppress():
            await pool_scenario(session, server)
    assert span_names(pool_spans(telemetry)) == [], f"pool spans under {suppress.__name__}"
    # The same scenario unsuppressed makes every kind of pool span (so the above can fail).
    async with aiohttp.ClientSession(
        connector=limited_connector(route, telemetry, pool_instrumentor)
    ) as session:
        await pool_scenario(session, server)
    assert {s.name for s in pool_spans(telemetry)} == set(POOL_SPANS)


# --- 5. no root traces where the request instrumentation made no span --------------------


def root_pool_spans(telemetry: Telemetry) -> list[str]:
    return span_names([s for s in pool_spans(telemetry) if s.parent is None])


async def one_dial(
    route: str, telemetry: Telemetry, pool: PoolInstrumentor, url: str, **options: Any
) -> aiohttp.TCPConnector:
    """One request that dials; returns its (closed) connector."""
    if route == "instrumentor":
        if not pool.instrumentor.is_instrumented_by_opentelemetry:
            pool.instrument(**options)
        connector: aiohttp.TCPConnector = aiohttp.TCPConnector()
    else:
        connector = telemetry.connector(**options)
    async with aiohttp.ClientSession(connector=connector) as session:
        assert await get_body(session, url) == b"hello"
    return connector


ROUTES = ["instrumentor", "opentelemetry-connector"]
EXCLUDED_URLS = "OTEL_PYTHON_AIOHTTP_CLIENT_EXCLUDED_URLS"


@pytest.fixture
def small_excluded(
    pool_instrumentor: PoolInstrumentor, telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The request instrumentation active, with /small excluded from its spans (the
    contrib reads the variable per session; the pool_instrumentor fixture undoes it)."""
    monkeypatch.setenv(EXCLUDED_URLS, "/small")
    AioHttpClientInstrumentor().instrument(tracer_provider=telemetry.tracer_provider)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.usefixtures("small_excluded")
async def test_no_root_pool_span_for_an_excluded_url(
    route: str, pool_instrumentor: PoolInstrumentor, telemetry: Telemetry, server: Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    await one_dial(route, telemetry, pool_instrumentor, server.url("/small"))
    assert [s.name for s in telemetry.spans() if s.name == "GET"] == []  # excluded indeed
    assert root_pool_spans(telemetry) == []
    # Not excluded (the contrib reads the variable per session): the pool spans are there,
    # under the request span.
    monkeypatch.delenv(EXCLUDED_URLS)
    await one_dial(route, telemetry, pool_instrumentor, server.url("/small"))
    (request,) = [s for s in telemetry.spans() if s.name == "GET"]
    spans = pool_spans(telemetry)
    assert {s.name for s in spans} == {SPAN_CREATE, SPAN_LEASE}
    assert all(s.parent is not None and s.parent.span_id == request.context.span_id for s in spans)


@pytest.mark.parametrize("route", ROUTES)
async def test_no_root_pool_span_under_a_no_op_request_tracer(
    route: str, pool_instrumentor: PoolInstrumentor, telemetry: Telemetry, server: Server,
) -> None:  # fmt: skip
    AioHttpClientInstrumentor().instrument(tracer_provider=trace.NoOpTracerProvider())
    connector = await one_dial(route, telemetry, pool_instrumentor, server.url("/small"))
    assert root_pool_spans(telemetry) == []
    # The pool was covered all the same (the rule silenced its spans, nothing else).
    stats = pool_statistics(connector)
    assert stats is not None and stats.created == 1


@pytest.mark.parametrize("route", ROUTES)
async def test_without_request_instrumentation_pool_spans_start_their_own_trace(
    route: str, pool_instrumentor: PoolInstrumentor, telemetry: Telemetry, server: Server,
) -> None:  # fmt: skip
    await one_dial(route, telemetry, pool_instrumentor, server.url("/small"))
    assert root_pool_spans(telemetry) == [SPAN_CREATE, SPAN_LEASE]


@pytest.mark.parametrize("route", ROUTES)
async def test_root_spans_false_makes_pool_spans_only_under_a_current_span(
    route: str, pool_instrumentor: PoolInstrumentor, telemetry: Telemetry, server: Server,
) -> None:  # fmt: skip
    await one_dial(route, telemetry, pool_instrumentor, server.url("/small"), root_spans=False)
    assert pool_spans(telemetry) == []
    with telemetry.tracer_provider.get_tracer("test").start_as_current_span("parent") as parent:
        await one_dial(route, telemetry, pool_instrumentor, server.url("/small"), root_spans=False)
    spans = pool_spans(telemetry)
    assert {s.name for s in spans} == {SPAN_CREATE, SPAN_LEASE}
    assert all(
        s.parent is not None and s.parent.span_id == parent.get_span_context().span_id
        for s in spans
    )


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.usefixtures("small_excluded")
async def test_root_spans_true_makes_pool_spans_even_for_an_excluded_url(
    route: str, pool_instrumentor: PoolInstrumentor, telemetry: Telemetry, server: Server
) -> None:
    await one_dial(route, telemetry, pool_instrumentor, server.url("/small"), root_spans=True)
    assert root_pool_spans(telemetry) == [SPAN_CREATE, SPAN_LEASE]


# --- 6. a connection object that is not aiohttp's -----------------------------------------


def mock_protocol() -> mock.Mock:
    """What aiohttp's own tests hand the connector in place of a ResponseHandler."""
    proto = mock.Mock(should_close=False)
    proto.is_connected.return_value = True
    proto.closed = asyncio.get_running_loop().create_future()
    proto.closed.set_result(None)
    return proto


async def request_through_mock_protocol(
    connector: aiohttp.TCPConnector, url: str, mocked: str
) -> str:
    """The outcome of a request whose connection is a Mock (aiohttp cannot finish it).

    ``mocked`` is the connector method replaced on the instance, as aiohttp's own tests
    do: ``_create_connection`` (returns the protocol) or ``_create_direct_connection``
    (returns transport and protocol, under the connector's dial).
    """
    proto = mock_protocol()
    result = proto if mocked == "_create_connection" else (proto.transport, proto)
    with mock.patch.object(connector, mocked, mock.AsyncMock(return_value=result)):
        async with aiohttp.ClientSession(connector=connector) as session:
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as resp:
                    await resp.read()
            except Exception as error:
                return f"{type(error).__name__}: {error}"
            return "completed"


@pytest.mark.parametrize("mocked", ["_create_connection", "_create_direct_connection"])
@pytest.mark.parametrize("route", ["instrumentor", "opentelemetry-connector"])
async def test_a_mock_connection_makes_the_plugin_log_nothing(
    route: str, mocked: str, pool_instrumentor: PoolInstrumentor, telemetry: Telemetry,
    server: Server, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    url = server.url("/small")
    plain = await request_through_mock_protocol(aiohttp.TCPConnector(), url, mocked)
    plain_errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    caplog.clear()
    connector = limited_connector(route, telemetry, pool_instrumentor)
    with caplog.at_level(logging.DEBUG):
        outcome = await request_through_mock_protocol(connector, url, mocked)
    if route == "opentelemetry-connector" or mocked == "_create_direct_connection":
        # The plugin's dial hook ran and handed on the Mock: it saw it (and kept quiet).
        assert pool_statistics(connector) is not None, "the plugin saw the mock connection"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    ours = [r for r in errors if r.name.startswith("aiohttp_pool_otel")]
    assert ours == [], f"the plugin logged: {[r.getMessage() for r in ours]}"
    assert [r.getMessage() for r in errors] == [r.getMessage() for r in plain_errors]
    assert outcome == plain, "the request ends as it does without the plugin"


async def connect_with_a_mock_request(connector: aiohttp.BaseConnector, queued: bool) -> str:
    """What aiohttp's own connector tests do (``test_cancelled_waiter``): ``connect()`` with
    a Mock request whose connection key is a plain string, the dial replaced on the
    instance, and (``queued``) the only slot taken, the waiting acquisition cancelled."""
    req = mock.Mock()
    req.connection_key = "key"
    proto = mock_protocol()

    async def create_connection(req: Any, traces: Any = None, timeout: Any = None) -> Any:
        return proto

    connector._create_connection = create_connection  # type: ignore[method-assign]
    if queued:
        connector._acquired.add(mock_protocol())
    task = asyncio.ensure_future(connector.connect(req, [], aiohttp.ClientTimeout()))
    if queued:
        await asyncio.sleep(0)
        task.cancel()
    try:
        connection = await task
        connection.release()
        outcome = "connected and released"
    except BaseException as error:  # the cancellation is the expected outcome when queued
        outcome = type(error).__name__
    await connector.close()
    return outcome


@pytest.mark.parametrize("queued", [False, True], ids=["dials", "queues"])
@pytest.mark.parametrize("route", ["instrumentor", "opentelemetry-connector"])
async def test_a_mock_request_with_a_string_key_makes_the_plugin_log_nothing(
    route: str, queued: bool, pool_instrumentor: PoolInstrumentor, telemetry: Telemetry,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    plain = await connect_with_a_mock_request(aiohttp.TCPConnector(limit=1), queued)
    caplog.clear()
    connector = limited_connector(route, telemetry, pool_instrumentor)
    with caplog.at_level(logging.DEBUG):
        outcome = await connect_with_a_mock_request(connector, queued)
    ours = [r for r in caplog.records if r.name.startswith("aiohttp_pool_otel")]
    assert [r.getMessage() for r in ours if r.levelno >= logging.ERROR] == []
    assert outcome == plain, "connect() ends as it does without the plugin"


# --- 7. uninstrument() restores aiohttp exactly --------------------------------------------


@pytest.mark.parametrize(
    ("instrument_order", "uninstrument_order"),
    [
        pytest.param(["ours"], ["ours"], id="ours-alone"),
        pytest.param(["ours", "contrib"], ["contrib", "ours"], id="ours-first,undo-reversed"),
        pytest.param(["ours", "contrib"], ["ours", "contrib"], id="ours-first,undo-same-order"),
        pytest.param(["contrib", "ours"], ["ours", "contrib"], id="contrib-first,undo-reversed"),
        pytest.param(["contrib", "ours"], ["contrib", "ours"], id="contrib-first,undo-same-order"),
    ],
)
async def test_uninstrument_restores_aiohttp_exactly(
    instrument_order: list[str], uninstrument_order: list[str],
    pool_instrumentor: PoolInstrumentor, telemetry: Telemetry, server: Server,
) -> None:  # fmt: skip
    before = snapshot()
    contrib = AioHttpClientInstrumentor()
    do = {
        "ours": (pool_instrumentor.instrument, pool_instrumentor.uninstrument),
        "contrib": (
            lambda: contrib.instrument(tracer_provider=telemetry.tracer_provider),
            contrib.uninstrument,
        ),
    }
    for name in instrument_order:
        do[name][0]()
    # Used while instrumented (anything patched lazily on first use is patched by now).
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(get_body(session, server.url("/small")) for _ in range(3)))
    for name in uninstrument_order:
        do[name][1]()
    assert changed_since(before) == []
    # And aiohttp works as before: no pool telemetry from a new connector.
    spans_before = len(telemetry.spans())
    async with aiohttp.ClientSession() as session:
        assert await get_body(session, server.url("/small")) == b"hello"
        assert pool_statistics(session.connector) is None
    assert len(telemetry.spans()) == spans_before


# --- 8. the explicit connector under the instrumentor never double-counts ----------------


@contextlib.asynccontextmanager
async def session_of(connector: aiohttp.BaseConnector) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


async def test_opentelemetry_connector_under_the_instrumentor_counts_once(
    instrumented: PoolInstrumentor, telemetry: Telemetry, server: Server
) -> None:
    connector = telemetry.connector(limit=2)
    async with session_of(connector) as session:
        url = server.url("/late")  # 200 ms bodies: two at once dial two connections
        await asyncio.gather(get_body(session, url), get_body(session, url))
        for _ in range(4):
            await get_body(session, server.url("/small"))
        await quiet_point()
        stats = connector.statistics()
        assert sum(stats.releases.values()) == 6
        assert stats.created == 2
        assert releases_recorded(telemetry) == 6, "one release counted per request"
        assert pool_statistics(connector) == stats
    leases = telemetry.spans(SPAN_LEASE)
    creates = telemetry.spans(SPAN_CREATE)
    assert len(creates) == 2, "one create span per dial"
    assert len(leases) == 2, "one lease span per dialled connection, not two"
