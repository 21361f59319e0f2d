"""Together with opentelemetry-instrumentation-aiohttp-client: its request span is the
parent of the pool's spans. Prints the span tree.

    python examples/with_contrib_instrumentation.py
"""

from __future__ import annotations

import asyncio

import aiohttp
import local_server
from opentelemetry.instrumentation.aiohttp_client import create_trace_config
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from aiohttp_pool_otel import OpenTelemetryTCPConnector, create_pool_trace_config


async def main() -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    runner, url = await local_server.start()
    async with aiohttp.ClientSession(
        connector=OpenTelemetryTCPConnector(limit_per_host=1, tracer_provider=provider),
        trace_configs=[
            create_trace_config(tracer_provider=provider),  # the request spans
            create_pool_trace_config(tracer_provider=provider),  # optional: DNS spans
        ],
    ) as session:

        async def get() -> None:
            async with session.get(url) as resp:
                await resp.read()

        await asyncio.gather(get(), get())  # the second one queues
    await runner.cleanup()
    finished = spans.get_finished_spans()
    by_id = {s.context.span_id: s for s in finished}
    for span in sorted(finished, key=lambda s: s.start_time or 0):
        parent = by_id.get(span.parent.span_id) if span.parent else None
        if parent is None:
            print(span.name)
            for child in sorted(finished, key=lambda s: s.start_time or 0):
                if child.parent and child.parent.span_id == span.context.span_id:
                    print(f"  {child.name}")


if __name__ == "__main__":
    asyncio.run(main())
