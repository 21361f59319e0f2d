"""Send the pool's spans and metrics to an OpenTelemetry Collector over OTLP, e.g. the
repository's ``docker compose up -d`` stack, and say how much of it arrived.

    python examples/otlp_to_collector.py [--endpoint http://127.0.0.1:4317]
                                         [--protocol grpc|http/protobuf] [--requests 50]

Without --endpoint the standard OTEL_EXPORTER_OTLP_* variables apply. The protocol
follows the endpoint (port 4317: gRPC; port 4318 or a /v1/... path: HTTP) unless given.
Exits 1 with one line on stderr when the Collector accepted nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

import aiohttp
import local_server

from aiohttp_pool_otel import OpenTelemetryTCPConnector, configure_otlp, create_pool_trace_config


async def main(args: argparse.Namespace) -> int:
    try:
        otel = configure_otlp(
            service_name="otlp-example",
            endpoint=args.endpoint,
            protocol=args.protocol,
            timeout=5,  # each export request
            shutdown_timeout=5,  # the final flush
        )  # sets the global providers, which the connector uses by default
    except ValueError as exc:  # an endpoint whose protocol cannot be told, a bad URL
        print(f"otlp_to_collector: error: {exc}", file=sys.stderr)
        return 2
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
        # Flushes spans and metrics; bounded, so a Collector that is down cannot hang us.
        await asyncio.to_thread(otel.shutdown)
    d = otel.delivery
    print(
        f"delivered to {otel.endpoint} ({otel.protocol}): {d.spans_delivered} spans, "
        f"{d.metric_points_delivered} metric data points "
        f"(not delivered: {d.spans_failed} spans, {d.metric_points_failed} points)"
    )
    if d.delivered == 0:
        print(
            f"otlp_to_collector: error: nothing reached {otel.endpoint} over {otel.protocol}: "
            "is a Collector listening there, and does it speak that protocol?",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--endpoint", default=None)
    parser.add_argument("--protocol", default=None, choices=["grpc", "http/protobuf"])
    parser.add_argument("--requests", type=int, default=50)
    # The count above tells delivery; the exporters' per-attempt retry messages add noise.
    logging.getLogger("opentelemetry").setLevel(logging.CRITICAL + 1)
    sys.exit(asyncio.run(main(parser.parse_args())))
