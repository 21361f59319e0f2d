"""Leaks and saturation made visible: the watchdog, request origins, queue counters,
the pool picture on a wait timeout, and graceful degradation on an unknown aiohttp."""

from __future__ import annotations

import asyncio
import gc
import logging
import pathlib
import subprocess
import sys
import warnings
from typing import Any, Optional

import aiohttp
import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Span, SpanProcessor

from aiohttp_pool_otel import semconv as sc
from aiohttp_pool_otel._aiohttp.probe import HAS_WAIT_METHOD

from .conftest import Server, Telemetry, body_cut
from .rig.waiting import wait_until


def points(telemetry: Telemetry, name: str) -> list[tuple[dict[str, Any], Any]]:
    return telemetry.metrics().get(name, [])


class _LiveSpans(SpanProcessor):
    """Keeps each started span (the SDK's live object): events added to a span still
    open are visible, so a test can wait for them instead of sleeping."""

    def __init__(self) -> None:
        self.started: list[Span] = []

    def on_start(self, span: Span, parent_context: Optional[Context] = None) -> None:
        self.started.append(span)


def flagged(span: Any) -> bool:
    """Whether the watchdog marked this lease span as held too long."""
    return any(e.name == sc.EVENT_HELD_TOO_LONG for e in span.events)


async def test_watchdog_counts_and_marks_connections_held_too_long(
    telemetry: Telemetry, server: Server
) -> None:
    threshold = 1.0
    live = _LiveSpans()
    telemetry.tracer_provider.add_span_processor(live)
    connector = telemetry.connector(watchdog_threshold=threshold, trace_all_leases=True)
    loop = asyncio.get_running_loop()  # loop.time() is the watchdog's clock (monotonic)
    async with aiohttp.ClientSession(connector=connector) as session:
        asked = loop.time()  # the held lease starts after this
        held = await session.get(server.url("/endless"))
        async with session.get(server.url("/small")) as resp:
            await resp.read()
        young = [v for _, v in points(telemetry, sc.METRIC_HELD_TOO_LONG)]
        at_most = loop.time() - asked  # the held lease's age at that collection, at most
        # A lease younger than the threshold is not counted (checked whenever this
        # machine got here in time, which is every run but a starved one).
        assert young == [0] or at_most >= threshold, (young, at_most)
        await wait_until(
            lambda: [v for _, v in points(telemetry, sc.METRIC_HELD_TOO_LONG)] == [1],
            timeout=threshold + 15,
            what="the held lease counted as held too long",
        )
        # ... and it is counted only once it is that old.
        assert loop.time() - asked >= threshold
        # The watchdog's timer (every threshold / 2) marks the open lease span too.
        await wait_until(
            lambda: any(s.name == sc.SPAN_LEASE and flagged(s) for s in live.started),
            timeout=threshold + 15,
            what="the held lease's held_too_long event",
        )
        held.close()
        assert [v for _, v in points(telemetry, sc.METRIC_HELD_TOO_LONG)] == [0]
    leases = telemetry.spans(sc.SPAN_LEASE)
    assert len(leases) == 2
    (long_lease,) = [s for s in leases if s.attributes[sc.RELEASE_REASON] == "close"]
    assert flagged(long_lease)
    for lease in leases:  # the /small lease too, had a starved machine held it that long
        if flagged(lease):
            (event,) = [e for e in lease.events if e.name == sc.EVENT_HELD_TOO_LONG]
            assert event.attributes is not None
            assert event.attributes[sc.CONNECTION_HOLD_TIME] >= threshold


async def test_watchdog_off_reports_no_gauge(telemetry: Telemetry, server: Server) -> None:
    async with aiohttp.ClientSession(connector=telemetry.connector()) as session:
        async with session.get(server.url("/small")) as resp:
            await resp.read()
        assert points(telemetry, sc.METRIC_HELD_TOO_LONG) == []


async def test_gc_release_names_the_line_that_made_the_request(
    telemetry: Telemetry, server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    connector = telemetry.connector(capture_request_location=True, trace_all_leases=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        resp: Any = await session.get(server.url("/cut"))  # the leaking line
        await body_cut(resp)  # from then on only the test keeps the response alive
        with caplog.at_level(logging.WARNING, "aiohttp_pool_otel"), warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            del resp
            gc.collect()
    (lease,) = telemetry.spans(sc.SPAN_LEASE)
    assert lease.attributes[sc.RELEASE_REASON] == "gc"
    assert lease.attributes[sc.CODE_FILEPATH] == __file__
    assert lease.attributes[sc.CODE_FUNCTION] == (
        "test_gc_release_names_the_line_that_made_the_request"
    )
    source = pathlib.Path(__file__).read_text().splitlines()  # noqa: ASYNC240
    line = source[int(lease.attributes[sc.CODE_LINENO]) - 1]
    assert "the leaking line" in line
    assert any("garbage-collected" in r.getMessage() for r in caplog.records)


async def test_queued_counter_names_the_limiting_factor(
    telemetry: Telemetry, server: Server
) -> None:
    async with aiohttp.ClientSession(
        connector=telemetry.connector(limit=3, limit_per_host=1)
    ) as session:
        async def get() -> None:
            async with session.get(server.url("/late")) as resp:
                await resp.read()

        await asyncio.gather(*(get() for _ in range(3)))
        queued = points(telemetry, sc.METRIC_QUEUED)
    assert [(a[sc.POOL_BLOCKING_LIMIT], v) for a, v in queued] == [("limit_per_host", 2)]


@pytest.mark.skipif(
    not HAS_WAIT_METHOD, reason="aiohttp < 3.10.11: a connect timeout looks like a cancellation"
)
async def test_wait_timeout_span_carries_a_picture_of_the_pool(
    telemetry: Telemetry, server: Server, server2: Server
) -> None:
    loop = asyncio.get_running_loop()  # loop.time() is the plugin's clock (monotonic)
    connector = telemetry.connector(limit=2)
    async with aiohttp.ClientSession(connector=connector) as session:
        asked = loop.time()  # both leases start after this
        held = [
            await session.get(server.url("/endless")),
            await session.get(server2.url("/endless")),
        ]
        leased = loop.time()  # ... and before this
        # Not synchronisation: the leases age a little before anyone waits, so a lease's
        # age tells itself apart from the wait's (a slow machine only adds to it).
        await asyncio.sleep(0.1)
        patient = asyncio.create_task(session.get(server2.url("/small")))
        await wait_until(lambda: connector.statistics().waiting == 1, what="the patient queued")
        queued = loop.time()  # the impatient one queues after this, for 0.2 s at least
        with pytest.raises(asyncio.TimeoutError):
            await session.get(server.url("/small"), timeout=aiohttp.ClientTimeout(connect=0.2))
        failed = loop.time()
        patient.cancel()
        with pytest.raises(asyncio.CancelledError):
            await patient
        for resp in held:
            resp.close()
    waits = telemetry.spans(sc.SPAN_WAIT)
    (wait,) = [s for s in waits if s.attributes.get(sc.ERROR_TYPE) == "pool_wait_timeout"]
    assert sorted(str(s.attributes.get(sc.ERROR_TYPE)) for s in waits) == [
        "CancelledError",
        "pool_wait_timeout",
    ]
    assert wait.attributes[sc.POOL_BLOCKING_LIMIT] == "limit"
    assert wait.attributes[sc.POOL_ACTIVE] == 2
    assert wait.attributes[sc.POOL_WAITING] == 1  # the patient one; the failing one left
    # The oldest lease's age at the timeout: from its acquisition, not from the wait.
    age = wait.attributes[sc.POOL_OLDEST_LEASE_AGE]
    assert queued - leased + 0.2 <= age <= failed - asked, (age, queued - leased)
    keys = [e for e in wait.events if e.name == sc.EVENT_POOL_KEY]
    assert sorted(e.attributes[sc.SERVER_PORT] for e in keys) == sorted(  # type: ignore[index]
        [server.port, server2.port]
    )


def test_unknown_aiohttp_degrades_to_limits_with_one_warning(tmp_path: Any) -> None:
    script = tmp_path / "degrade.py"
    script.write_text(
        """
import asyncio, warnings
import aiohttp
from aiohttp import web
del aiohttp.BaseConnector._cleanup   # an aiohttp whose internals moved
warnings.simplefilter("always")
import aiohttp_pool_otel  # nothing is looked up at import: the warning comes at first use

async def main():
    app = web.Application()
    app.router.add_get("/", lambda r: web.Response(text="ok"))
    runner = web.AppRunner(app); await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0); await site.start()
    port = runner.addresses[0][1]
    connector = aiohttp_pool_otel.OpenTelemetryTCPConnector(limit=7)
    async with aiohttp.ClientSession(connector=connector) as s:
        for _ in range(3):
            async with s.get(f"http://127.0.0.1:{port}/") as r:
                assert await r.text() == "ok"
        stats = connector.statistics()
        assert stats.limit == 7 and stats.active == 0, stats
    await runner.cleanup()
    print("DEGRADED-OK")

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    asyncio.run(main())
messages = [str(w.message) for w in caught if "aiohttp-pool-otel" in str(w.message)]
assert len(messages) == 1, messages
assert "BaseConnector._cleanup" in messages[0]
"""
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "DEGRADED-OK" in done.stdout
