"""Explicit setup: the instrumented connector and trace config, printing spans and
metrics to the console.

    python examples/console_exporters.py [URL]   (default: a local server)
"""

from __future__ import annotations

import asyncio
import sys

import aiohttp
import local_server
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

from aiohttp_pool_otel import OpenTelemetryTCPConnector, create_pool_trace_config


async def main(url: str | None) -> None:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    meter_provider = MeterProvider(
        metric_readers=[PeriodicExportingMetricReader(ConsoleMetricExporter())]
    )
    runner = None
    if url is None:
        runner, url = await local_server.start()
    connector = OpenTelemetryTCPConnector(
        limit_per_host=2, tracer_provider=tracer_provider, meter_provider=meter_provider
    )
    async with aiohttp.ClientSession(
        connector=connector,
        trace_configs=[
            create_pool_trace_config(
                tracer_provider=tracer_provider, meter_provider=meter_provider
            )
        ],
    ) as session:

        async def get() -> None:
            async with session.get(url) as resp:
                await resp.read()

        await asyncio.gather(*(get() for _ in range(5)))  # 3 of them queue for a slot
        print(connector.statistics(), file=sys.stderr)
    if runner is not None:
        await runner.cleanup()
    meter_provider.shutdown()  # prints the metrics once more
    tracer_provider.shutdown()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else None))
