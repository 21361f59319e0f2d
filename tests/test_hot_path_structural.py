"""Structural guarantees of the hot path that timing cannot show reliably.

In the default mode (connector only, no trace config) the reuse/release path of a
pooled request must not call any SDK instrument method and must not start a span; and
the plugin must not register a TraceConfig unless asked. Real aiohttp server on
127.0.0.1, real requests, reused keep-alive connections; no timing assertions.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import pytest
from opentelemetry.sdk.metrics._internal import instrument as sdk_instrument

from aiohttp_pool_otel import OpenTelemetryTCPConnector, ReleaseReason
from aiohttp_pool_otel._aiohttp import hooks, probe

from .conftest import Server, Telemetry
from .rig.reads import get_bodies

pytestmark = pytest.mark.timeout(60)

HOT_METHODS = (
    (sdk_instrument.Counter, "add"),
    (sdk_instrument.UpDownCounter, "add"),
    (sdk_instrument.Histogram, "record"),
    (sdk_instrument.Gauge, "set"),
)


@pytest.fixture
def base_url(server: Server) -> str:
    """The test server's root: /small (EOF with the headers) and /soon (EOF 10 ms after)."""
    return server.url("")


def span_names(telemetry: Telemetry) -> list[str]:
    return [s.name for s in telemetry.spans()]


class Trap:
    """Every SDK synchronous instrument method records its call and raises, when armed.

    The plugin swallows its own exceptions (it must never break a request), so the
    calls are recorded as well as raised, and the tests assert on the record.
    """

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.armed = False

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for cls, name in HOT_METHODS:
            monkeypatch.setattr(cls, name, self._wrap(cls.__name__, name, getattr(cls, name)))

    def _wrap(self, cls_name: str, name: str, original: Any) -> Any:
        label = f"{cls_name}.{name}"

        def trap(instrument: Any, *args: Any, **kwargs: Any) -> Any:
            if self.armed:
                self.calls.append(f"{label}({getattr(instrument, 'name', '?')})")
                raise AssertionError(f"SDK {label} called on the hot path")
            return original(instrument, *args, **kwargs)

        return trap


@pytest.fixture
def trap(monkeypatch: pytest.MonkeyPatch) -> Trap:
    t = Trap()
    t.install(monkeypatch)
    return t


async def _request_mix(session: aiohttp.ClientSession, base_url: str, rounds: int) -> None:
    """Sequential and concurrent requests whose connections all go back to the pool,
    released in every way that keeps them (closing one before EOF is not the hot path:
    the connection is gone, and its lifetime histogram is recorded)."""
    for _ in range(rounds):
        async with session.get(f"{base_url}/small") as resp:  # EOF with the headers
            assert await resp.text() == "hello"
        resp = await session.get(f"{base_url}/soon")  # EOF after the body, no context
        assert await resp.read() == b"0123456789"
        resp = await session.get(f"{base_url}/soon")  # explicit release after EOF
        await resp.read()
        resp.release()
        async with session.get(f"{base_url}/small") as resp:  # unread: EOF at headers
            pass

    for _ in range(rounds):
        assert await get_bodies(session, f"{base_url}/small", 4) == [b"hello"] * 4


async def test_reuse_and_release_call_no_sdk_instrument(
    telemetry: Telemetry,
    base_url: str,
    trap: Trap,
    caplog: pytest.LogCaptureFixture,
) -> None:
    connector = telemetry.connector(limit=10)
    async with aiohttp.ClientSession(connector=connector) as session:
        assert session._trace_configs == []
        # Warm the pool: dial 4 connections (the slow path may record histograms).
        await get_bodies(session, f"{base_url}/small", 4)
        before = connector.statistics()
        assert before.created == 4
        trap.armed = True
        with caplog.at_level(logging.WARNING, logger="aiohttp_pool_otel"):
            await _request_mix(session, base_url, rounds=5)
        trap.armed = False
        after = connector.statistics()

    # Closing an instrument-poisoned request never raised; now check it stayed silent.
    assert trap.calls == []
    assert not [r for r in caplog.records if "telemetry failed" in r.getMessage()]
    # The pool was really reused: 5 rounds of 4 sequential and 4 concurrent requests, no dial.
    hot = 5 * 4 + 5 * 4
    assert after.created == before.created
    assert after.reused - before.reused == hot
    # ... and the counters moved anyway: they are plain ints read at collection.
    released = sum(after.releases.values()) - sum(before.releases.values())
    assert released == hot


@pytest.mark.skipif(not probe.HAS_WAIT_METHOD, reason="aiohttp < 3.10.11 queues in connect()")
async def test_default_connector_adds_no_coroutine_to_connect(telemetry: Telemetry) -> None:
    """By default connect() is aiohttp's own: the plugin adds no coroutine per request.
    Options that need every acquisition seen hook it; a subclass's connect() stays."""
    default = telemetry.connector()
    per_lease = OpenTelemetryTCPConnector(
        meter_provider=telemetry.meter_provider, record_hold_time=True
    )

    class Own(OpenTelemetryTCPConnector):
        async def connect(self, *args: Any, **kwargs: Any) -> Any:
            return await super().connect(*args, **kwargs)

    own = Own(meter_provider=telemetry.meter_provider)
    try:
        # Nothing on the instances: a class-level patch of connect() (mock.patch) works.
        for c in (default, per_lease, own):
            ours = {k for k, v in vars(c).items() if callable(v) or "pool_otel" in k}
            assert not ours & set(dir(type(c))), ours
        assert type(default).connect is aiohttp.BaseConnector.connect
        assert type(per_lease).connect is not aiohttp.BaseConnector.connect
        assert isinstance(per_lease, OpenTelemetryTCPConnector)
        assert type(own).connect is Own.connect
    finally:
        for c in (default, per_lease, own):
            await c.close()


async def test_eof_releases_are_classified_without_the_stack(
    telemetry: Telemetry, base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Releases by EOF (every request of the mix) take the two-read test, never the
    stack walk that names the rarer releases."""
    walks: list[bool] = []
    original = hooks.classify_by_caller

    def counting(*args: Any, **kwargs: Any) -> Any:
        walks.append(True)
        return original(*args, **kwargs)

    monkeypatch.setattr(hooks, "classify_by_caller", counting)
    connector = OpenTelemetryTCPConnector(meter_provider=telemetry.meter_provider)
    async with aiohttp.ClientSession(connector=connector) as session:
        await _request_mix(session, base_url, rounds=2)
        resp = await session.get(f"{base_url}/soon")  # released before EOF: walks
        resp.release()
        stats = connector.statistics()
    expected_walks = 0 if probe.EXPLICIT_SHOULD_CLOSE else sum(stats.releases.values())
    assert len(walks) == max(expected_walks, 1)
    assert stats.releases[ReleaseReason.EOF] == 2 * 4 + 2 * 4
    assert stats.releases[ReleaseReason.RELEASE] == 1


async def test_trap_catches_an_instrument_call(trap: Trap, telemetry: Telemetry) -> None:
    """The trap itself works (guards the test above against a vacuous pass)."""
    counter = telemetry.meter_provider.get_meter("t").create_counter("c")
    histogram = telemetry.meter_provider.get_meter("t").create_histogram("h")
    trap.armed = True
    with pytest.raises(AssertionError):
        counter.add(1)
    with pytest.raises(AssertionError):
        histogram.record(1.0)
    assert trap.calls == ["Counter.add(c)", "Histogram.record(h)"]


async def test_record_hold_time_is_the_only_per_release_instrument(
    telemetry: Telemetry, base_url: str, trap: Trap
) -> None:
    """The opt-in option does what it costs: one histogram record per release."""
    connector = telemetry.connector(record_hold_time=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(f"{base_url}/small") as resp:
            await resp.read()
        trap.armed = True
        for _ in range(3):
            async with session.get(f"{base_url}/small") as resp:
                await resp.read()
        trap.armed = False
    assert trap.calls == ["Histogram.record(aiohttp.client.connection.use_time)"] * 3


async def test_no_span_for_a_reused_unqueued_acquisition(
    telemetry: Telemetry, base_url: str
) -> None:
    connector = telemetry.connector(limit=10)
    tracer = telemetry.tracer_provider.get_tracer("test")
    async with aiohttp.ClientSession(connector=connector) as session:
        with tracer.start_as_current_span("warm-up"):
            async with session.get(f"{base_url}/small") as resp:
                await resp.read()
        # The dial was traced: create + lease under the sampled parent.
        assert sorted(span_names(telemetry)) == [
            "aiohttp.connection.create",
            "aiohttp.connection.lease",
            "warm-up",
        ]
        telemetry.spans_exporter.clear()
        with tracer.start_as_current_span("request"):  # sampled parent, like an HTTP span
            await _request_mix(session, base_url, rounds=3)
        assert connector.statistics().created <= 4

    names = span_names(telemetry)
    dialled = connector.statistics().created - 1
    # Only the concurrent rounds may dial (they need up to 4 connections); a reused,
    # unqueued acquisition makes no span at all.
    assert names.count("aiohttp.connection.lease") == dialled
    assert names.count("aiohttp.connection.create") == dialled
    assert "aiohttp.connection.wait" not in names


async def test_trace_all_leases_gives_one_lease_span_per_request(
    telemetry: Telemetry, base_url: str
) -> None:
    connector = telemetry.connector(trace_all_leases=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(3):
            async with session.get(f"{base_url}/small") as resp:
                await resp.read()
    names = span_names(telemetry)
    assert names.count("aiohttp.connection.lease") == 3
    assert names.count("aiohttp.connection.create") == 1


async def test_the_connector_adds_no_trace_config(telemetry: Telemetry) -> None:
    connector = telemetry.connector()
    session = aiohttp.ClientSession(connector=connector)
    try:
        assert session._trace_configs == []
    finally:
        await session.close()


async def test_the_instrumentor_adds_no_trace_config_and_builds_no_connector(
    telemetry: Telemetry,
) -> None:
    pytest.importorskip("opentelemetry.instrumentation")
    with telemetry.instrumentor():
        session = aiohttp.ClientSession()
        try:
            assert type(session.connector) is aiohttp.TCPConnector
            assert session._trace_configs == []
        finally:
            await session.close()
