"""Send the pool's spans and metrics to an OpenTelemetry Collector over OTLP, e.g. the
repository's ``docker compose up -d`` stack.

    python examples/otlp_to_collector.py [--endpoint http://127.0.0.1:4317]
                                         [--protocol grpc|http/protobuf] [--requests 50]

Without --endpoint the standard OTEL_EXPORTER_OTLP_* variables apply.
"""

from __future__ import annotations

import argparse
import asyncio

import aiohttp
import local_server

from aiohttp_pool_otel import OpenTelemetryTCPConnector, configure_otlp, create_pool_trace_config


async def main(args: argparse.Namespace) -> None:
    otel = configure_otlp(
        service_name="otlp-example", endpoint=args.endpoint, protocol=args.protocol, timeout=5
    )  # sets the global providers, which the connector uses by default
    runner, url = await local_server.start()
    try:
        connector = OpenTelemetryTCPConnector(limit_per_host=4, pool_name="example")
        async with aiohttp.ClientSession(
            connector=connector, trace_configs=[create_pool_trace_config()]
        ) as session:

            async def get() -> None:
                async with session.get(url) as resp:
                    await resp.read()

            await asyncio.gather(*(get() for _ in range(args.requests)))
            print(connector.statistics())
    finally:
        await runner.cleanup()
        await asyncio.to_thread(otel.shutdown)  # flushes spans and metrics


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--endpoint", default=None)
    parser.add_argument("--protocol", default=None, choices=["grpc", "http/protobuf"])
    parser.add_argument("--requests", type=int, default=50)
    asyncio.run(main(parser.parse_args()))
