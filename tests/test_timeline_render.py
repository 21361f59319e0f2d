"""The pool timeline picture, drawn from a real workload's spans (two real servers on
127.0.0.1, an in-memory exporter, converted to Jaeger's JSON shape) and read back as
SVG: bars where the spans are, colours as the legend says, a row per connection."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from aiohttp_pool_otel.timeline import model, svg
from aiohttp_pool_otel.timeline.otel_spans import jaeger_traces

from .conftest import Server, Telemetry, start_server
from .rig.timeline_svg import (
    check_bars_match_spans,
    check_colours,
    parse,
    pool_spans,
    tags,
)

SERVICE = "timeline-test"
LATE_S = 0.1
PEERS = web.AppKey("peers", list)
GATE = web.AppKey("gate", asyncio.Event)


async def _late(request: web.Request) -> web.StreamResponse:
    """Headers now, the body LATE_S later; records the client's port (its peer)."""
    request.app[PEERS].append(request.transport.get_extra_info("peername")[1])  # type: ignore[union-attr]
    resp = web.StreamResponse(headers={"Content-Length": "4"})
    await resp.prepare(request)
    await asyncio.sleep(LATE_S)
    await resp.write(b"done")
    return resp


async def _gated(request: web.Request) -> web.StreamResponse:
    """Headers and half a body now, the rest when the test opens the gate (bounded)."""
    request.app[PEERS].append(request.transport.get_extra_info("peername")[1])  # type: ignore[union-attr]
    resp = web.StreamResponse(headers={"Content-Length": "4"})
    await resp.prepare(request)
    await resp.write(b"ha")
    try:
        await asyncio.wait_for(request.app[GATE].wait(), 10)
        await resp.write(b"lf")
    except (asyncio.TimeoutError, ConnectionError):
        pass
    return resp


async def _recording_server() -> Server:
    app = web.Application()
    app[PEERS] = []
    app[GATE] = asyncio.Event()
    app.router.add_get("/late", _late)
    app.router.add_get("/gated", _gated)
    return await start_server(app)


@dataclass
class Run:
    """What the workload did, as its servers and its spans saw it."""

    traces: list[dict[str, Any]]
    busy: Server  # 6 concurrent requests through 2 slots: eof releases and 4 waits
    mixed: Server  # release, close and eof, one wait

    def ports(self, server: Server) -> set[int]:
        return set(server.runner.app[PEERS])


@pytest.fixture
async def run(telemetry: Telemetry) -> AsyncIterator[Run]:
    busy, mixed = await _recording_server(), await _recording_server()
    connector = telemetry.connector(limit_per_host=2, trace_all_leases=True)
    tracer = telemetry.tracer_provider.get_tracer("test")
    try:
        async with aiohttp.ClientSession(connector=connector) as session:

            async def read(url: str, i: int) -> None:
                with tracer.start_as_current_span(f"GET {i}"):
                    async with session.get(url) as resp:
                        await resp.read()

            await asyncio.gather(*(read(busy.url("/late"), i) for i in range(6)))
            with tracer.start_as_current_span("held"):
                released = await session.get(mixed.url("/gated"))
                closed = await session.get(mixed.url("/gated"))
            queued = asyncio.create_task(read(mixed.url("/late"), 7))
            for _ in range(100):  # bounded: until the third request queues
                if connector.statistics().waiting:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            released.release()  # before EOF: reason release
            closed.close()  # reason close
            await queued
        mixed.runner.app[GATE].set()
        yield Run(jaeger_traces(telemetry.spans()), busy, mixed)
    finally:
        for srv in (busy, mixed):
            srv.runner.app[GATE].set()
            await srv.runner.cleanup()


def on(server: Server, host_label: str) -> bool:
    """Whether a group's label (``http://127.0.0.1:PORT``) is ``server``'s."""
    return host_label == f"http://127.0.0.1:{server.port}"


def _host_spans(spans: list[dict[str, Any]], server: Server) -> list[dict[str, Any]]:
    return [s for s in spans if tags(s)["server.port"] == server.port]


def test_every_bar_is_where_its_span_is(run: Run) -> None:
    spans = pool_spans(run.traces)
    drawing = parse(svg.render(model.build(run.traces)))
    assert Counter(s["operationName"] for s in spans) == {
        "aiohttp.connection.lease": 9,
        "aiohttp.connection.create": 5,  # release/close before EOF close theirs
        "aiohttp.connection.wait": 5,
    }
    check_bars_match_spans(drawing, spans)


def test_leases_have_their_release_reasons_colour(run: Run) -> None:
    spans = pool_spans(run.traces)
    drawing = parse(svg.render(model.build(run.traces)))
    reasons = Counter(
        tags(s)["aiohttp.connection.release.reason"]
        for s in spans
        if s["operationName"] == "aiohttp.connection.lease"
    )
    assert reasons == {"eof": 7, "release": 1, "close": 1}
    check_colours(drawing, spans)
    # Three reasons, three colours: the legend tells them apart.
    assert len({drawing.legend[r] for r in reasons}) == 3


def test_lease_and_create_spans_carry_their_connections_local_port(run: Run) -> None:
    """``network.local.port`` is the client port the server saw the request come from."""
    for server in (run.busy, run.mixed):
        spans = [
            s for s in _host_spans(pool_spans(run.traces), server)
            if s["operationName"] != "aiohttp.connection.wait"
        ]  # fmt: skip
        assert {tags(s)["network.local.port"] for s in spans} == run.ports(server)


def test_one_row_per_connection_named_by_its_local_port(run: Run) -> None:
    drawing = parse(svg.render(model.build(run.traces)))
    by_id = {s["spanID"]: s for s in pool_spans(run.traces)}
    for server in (run.busy, run.mixed):
        rows = [r for r in drawing.rows if r["data-kind"] == "connection" and on(server, r["host"])]
        # The connections the server saw, by their client port: one row each.
        assert sorted(int(r["data-local-port"]) for r in rows) == sorted(run.ports(server))
        for row in rows:
            bars = [b for b in drawing.bars if b.row == int(row["data-row"])]
            dials = [b for b in bars if b.kind == "dial"]
            assert len(dials) == 1 and bars[0].kind == "dial"  # the dial opens its row
            ports = {tags(by_id[b.span_id])["network.local.port"] for b in bars}
            assert ports == {int(row["data-local-port"])}
    busy = [b for b in drawing.bars if b.kind == "lease" and on(run.busy, b.host)]
    # 6 requests through 2 connections: 3 leases on each.
    assert sorted(Counter(b.row for b in busy).values()) == [3, 3]


def test_queued_requests_are_bars_of_their_own_host(run: Run) -> None:
    spans = pool_spans(run.traces)
    drawing = parse(svg.render(model.build(run.traces)))
    for server, waits in ((run.busy, 4), (run.mixed, 1)):
        want = {
            s["spanID"] for s in _host_spans(spans, server)
            if s["operationName"] == "aiohttp.connection.wait"
        }  # fmt: skip
        drawn = [b for b in drawing.bars if b.kind == "wait" and on(server, b.host)]
        assert len(want) == waits
        assert {b.span_id for b in drawn} == want
        assert {b.row_kind for b in drawn} == {"queue"}
        # Lanes never overlap: a bar starts where the one before it in its lane ended.
        for row in {b.row for b in drawn}:
            lane = sorted((b for b in drawn if b.row == row), key=lambda b: b.x)
            for before, after in zip(lane, lane[1:]):
                assert after.x >= before.x + before.width - 1.0


def test_html_output_holds_the_same_svg(run: Run, tmp_path: Any) -> None:
    from aiohttp_pool_otel.timeline.cli import write

    timeline = model.build(run.traces)
    write(timeline, tmp_path / "t.html")
    html = (tmp_path / "t.html").read_text()
    assert html.startswith("<!doctype html>")
    inner = html[html.index("<svg") : html.index("</svg>") + 6]
    assert inner == svg.render(timeline).strip()
    check_bars_match_spans(parse(inner), pool_spans(run.traces))
