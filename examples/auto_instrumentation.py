"""An app with no OpenTelemetry code at all. Run it through the real auto-instrumentation:

    pip install 'aiohttp-pool-otel[otlp]' opentelemetry-distro
    OTEL_TRACES_EXPORTER=console OTEL_METRICS_EXPORTER=none \\
        opentelemetry-instrument python examples/auto_instrumentation.py

Every aiohttp connector in the process is then instrumented, whoever built it: here the
session's own default TCPConnector.
"""

from __future__ import annotations

import asyncio

import aiohttp
import local_server

from aiohttp_pool_otel import pool_statistics


async def main() -> None:
    runner, url = await local_server.start()
    async with aiohttp.ClientSession() as session:  # no connector, no trace config
        for _ in range(3):
            async with session.get(url) as resp:
                await resp.read()
        print("connector:", type(session.connector).__name__)
        s = pool_statistics(session.connector)  # None when not instrumented
        if s is not None:
            print(f"created={s.created} reused={s.reused} releases={dict(s.releases)}")
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
