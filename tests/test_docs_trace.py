"""The trace the docs draw (the README's "What you see", and "What a trace looks like"
in docs/spans-and-attributes.md) is a real run: this reproduces it span for span.

Not in the aiohttp version matrix (it needs the contrib instrumentation); the behaviour
it shows is covered there by the core span tests.
"""

from __future__ import annotations

import asyncio
import socket

import aiohttp
from opentelemetry.instrumentation.aiohttp_client import create_trace_config

from aiohttp_pool_otel import semconv as sc

from .conftest import Server, Telemetry
from .rig.docs import code_blocks, read, section
from .rig.reads import get_text
from .rig.spans import by_name


def test_the_readme_and_the_reference_draw_the_same_trace() -> None:
    reference = section(read("docs/spans-and-attributes.md"), "What a trace looks like")
    (drawn,) = code_blocks(reference, "text")
    assert drawn.startswith("GET ")
    assert drawn in code_blocks(read("README.md"), "text")


async def test_the_readme_trace_two_requests_under_contrib_spans_through_one_slot(
    telemetry: Telemetry, server: Server
) -> None:
    """The timeline the docs draw, span for span."""
    connector = telemetry.connector(limit_per_host=1, family=socket.AF_INET)
    url = f"http://localhost:{server.port}/late"  # a name, so that DNS is resolved
    async with aiohttp.ClientSession(
        connector=connector,
        # The contrib's request spans; the pool's DNS span comes from the connector.
        trace_configs=[create_trace_config(tracer_provider=telemetry.tracer_provider)],
    ) as session:
        await asyncio.gather(get_text(session, url), get_text(session, url))
    spans = telemetry.spans()
    children: dict[int, list[str]] = {}
    for s in spans:
        if s.parent is not None:
            children.setdefault(s.parent.span_id, []).append(s.name)
    first, second = sorted((s for s in spans if s.name == "GET"), key=lambda s: s.start_time or 0)
    assert sorted(children[first.context.span_id]) == [sc.SPAN_CREATE, sc.SPAN_LEASE]
    assert children[second.context.span_id] == [sc.SPAN_WAIT]
    (create,) = by_name(spans)[sc.SPAN_CREATE]
    assert children[create.context.span_id] == [sc.SPAN_DNS]
    (lease,) = by_name(spans)[sc.SPAN_LEASE]
    (wait,) = by_name(spans)[sc.SPAN_WAIT]
    assert (lease.attributes[sc.RELEASE_REASON], lease.attributes[sc.RELEASE_PHASE]) == (
        "eof",
        "body",
    )
    # The request span ends at the headers; the lease runs on to the body's EOF.
    assert (lease.end_time or 0) > (first.end_time or 0)
    assert wait.attributes[sc.POOL_BLOCKING_LIMIT] == "limit_per_host"
