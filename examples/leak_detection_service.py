"""A long-running service with a bug: one code path keeps responses it never closes.
The pool metrics find it: `held_too_long` rises, `available` falls, requests start to
queue. The service watches its own metrics and reports the leak.

    python examples/leak_detection_service.py [--duration 10]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import aiohttp
import local_server
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from aiohttp_pool_otel import OpenTelemetryTCPConnector

leaked: list[aiohttp.ClientResponse] = []


async def healthy_call(session: aiohttp.ClientSession, url: str) -> None:
    async with session.get(url) as resp:
        await resp.read()


async def buggy_call(session: aiohttp.ClientSession, url: str) -> None:
    resp = await session.get(url + "/slow")  # BUG: never read, released or closed
    leaked.append(resp)


def gauge(reader: InMemoryMetricReader, name: str) -> int:
    data = reader.get_metrics_data()
    return sum(
        int(getattr(p, "value", 0))
        for rm in (data.resource_metrics if data else [])
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == name
        for p in m.data.data_points
    )


async def main(duration: float) -> None:
    reader = InMemoryMetricReader()  # in production: Prometheus or OTLP
    meters = MeterProvider(metric_readers=[reader])
    runner, url = await local_server.start()
    connector = OpenTelemetryTCPConnector(
        limit_per_host=4, meter_provider=meters, watchdog_threshold=1.0
    )
    reported = False
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.monotonic() + duration
        tick = 0
        while time.monotonic() < deadline:
            tick += 1
            await healthy_call(session, url)
            if tick % 5 == 0 and len(leaked) < 3:
                await buggy_call(session, url)
            await asyncio.sleep(0.1)
            if tick % 10 == 0:
                held = gauge(reader, "aiohttp.client.connection.held_too_long")
                available = gauge(reader, "aiohttp.client.connection.available")
                print(f"t={tick / 10:.0f}s held_too_long={held} available={available}")
                if held and not reported:
                    reported = True
                    print(
                        f"LEAK: {held} connection(s) held for over 1 s; "
                        f"{available} slot(s) left. Look for responses that are never closed."
                    )
        for resp in leaked:
            resp.close()
    await runner.cleanup()
    meters.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds to run (bounded)")
    asyncio.run(main(min(parser.parse_args().duration, 300.0)))
