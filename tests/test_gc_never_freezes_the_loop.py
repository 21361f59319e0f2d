"""Garbage collection of unclosed responses must never freeze the loop.

aiohttp's finalizer (``ClientResponse.__del__``) releases the connection of a response
nobody closed. The cyclic GC runs such finalizers at arbitrary allocation points, also on
the metric reader's thread while the SDK holds an instrument's lock during ``collect``:
whatever the plugin does from a finalizer must take no lock and make no SDK call.

The stress runs in a child process (a hang cannot hang pytest): a real aiohttp server and
an instrumented client on one loop, a ``PeriodicExportingMetricReader`` collecting every
5 ms, half of the responses abandoned inside reference cycles after the server cut their
body (so only the cyclic GC can free them and release their connections). A watchdog
thread dumps every thread's stack and exits non-zero when the loop stops making progress.
"""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import json
import os
import subprocess
import sys
from collections.abc import Sequence

import aiohttp
from aiohttp import web
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)

from aiohttp_pool_otel import OpenTelemetryTCPConnector, ReleaseReason

# The stress stops after this long ...
RUN_SECONDS = float(os.environ.get("POOL_OTEL_GC_STRESS_SECONDS", "5"))
MAX_REQUESTS = 6000  # ... or after this many requests
PORTS = 1  # one host: a finalizer's record hits the very series being collected
READERS = 6  # several periodic readers (say OTLP and a second backend), 5 ms each
STALL_SECONDS = 10.0  # no progress this long: a hang (generous: shared CI machines)
CHILD_TIMEOUT = 90.0  # the outer bound (the watchdog should fire long before)


class _NullExporter(MetricExporter):
    """Drops every batch: the collection (and its locks) is what matters here."""

    def __init__(self) -> None:
        super().__init__(preferred_temporality={}, preferred_aggregation={})
        self.exports = 0

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: object
    ) -> MetricExportResult:
        self.exports += 1
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
        pass


async def _cut(request: web.Request) -> web.StreamResponse:
    """Headers and part of a Content-Length body, then the connection is dropped:
    the client's protocol lets go of the payload, so an abandoned response is
    reachable only through its own reference cycle."""
    resp = web.StreamResponse(headers={"Content-Length": "100"})
    await resp.prepare(request)
    await resp.write(b"0123456789")
    await asyncio.sleep(0.002)
    if request.transport is not None:
        request.transport.close()
    return resp


async def _small(request: web.Request) -> web.Response:
    return web.Response(text="hello")


class _Watchdog:
    """Dumps every thread's stack and exits the process when ``beat`` is not called for
    ``STALL_SECONDS``: no request completed (the loop froze, or the GC that frees the
    abandoned responses' slots is stuck in another thread), or the shutdown hung.

    faulthandler's timer is a C thread: it needs neither the GIL nor any allocation, so
    a finalizer stuck on a lock cannot stop it (a Python watchdog thread can itself be
    the one the GC picks to run the stuck finalizer).
    """

    def beat(self) -> None:
        faulthandler.dump_traceback_later(STALL_SECONDS, exit=True)

    def stop(self) -> None:
        faulthandler.cancel_dump_traceback_later()


async def _stress(watchdog: _Watchdog) -> dict[str, int]:
    app = web.Application()
    app.router.add_get("/cut", _cut)
    app.router.add_get("/small", _small)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    ports = []
    for _ in range(PORTS):
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        ports.append(runner.addresses[-1][1])

    exporters = [_NullExporter() for _ in range(READERS)]
    readers = [PeriodicExportingMetricReader(e, export_interval_millis=5) for e in exporters]
    meter_provider = MeterProvider(metric_readers=readers)
    connector = OpenTelemetryTCPConnector(
        meter_provider=meter_provider, limit=0  # no limit: slots of abandoned responses never block
    )
    session = aiohttp.ClientSession(connector=connector)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RUN_SECONDS
    done = 0
    abandoned = 0
    issued = 0

    async def worker(n: int) -> None:
        nonlocal done, abandoned, issued
        while issued < MAX_REQUESTS and loop.time() < deadline:
            issued += 1
            abandon = issued % 2 == 0
            try:
                port = ports[issued % len(ports)]
                path = "cut" if abandon else "small"
                resp = await session.get(f"http://127.0.0.1:{port}/{path}")
            except aiohttp.ClientError:
                continue
            if abandon:
                # Left unclosed, in a cycle: only the cyclic GC frees it, wherever it runs.
                cycle: list[object] = [resp]
                cycle.append(cycle)
                abandoned += 1
            else:
                await resp.read()
                resp.release()
            del resp
            done += 1

    async def progress() -> None:
        # Progress is both: requests complete (the loop runs) and exports go on (the
        # reader thread runs). A finalizer stuck on a lock stops the one or the other.
        seen = (done, *(e.exports for e in exporters))
        while True:
            await asyncio.sleep(0.05)
            now = (done, *(e.exports for e in exporters))
            if all(n > s for n, s in zip(now, seen)):
                watchdog.beat()
                seen = now

    monitor = asyncio.ensure_future(progress())
    await asyncio.gather(*(worker(n) for n in range(8)))
    monitor.cancel()
    watchdog.beat()  # the shutdown below must not hang either
    gc.collect()
    for _ in range(5):  # a quiet point: GC facts become telemetry in loop callbacks
        await asyncio.sleep(0)
    stats = connector.statistics()
    await session.close()
    meter_provider.shutdown()
    await runner.cleanup()
    return {
        "completed": done,
        "abandoned": abandoned,
        "gc_releases": stats.releases.get(ReleaseReason.GC, 0),
        "exports": min(e.exports for e in exporters),
    }


def child_main() -> None:
    """The stress, in this process; prints its counts as one JSON line."""
    # Frequent young collections: finalizers then run on whichever thread allocates,
    # the reader's included, as they do (less often) in any long-running service.
    gc.set_threshold(100, 5, 5)
    watchdog = _Watchdog()
    watchdog.beat()
    result = asyncio.run(_stress(watchdog))
    watchdog.stop()
    print(json.dumps(result))


def run_child(args: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    """Run :func:`child_main` in a fresh interpreter, bounded by ``CHILD_TIMEOUT``."""
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    return subprocess.run(
        [sys.executable, os.path.abspath(__file__), *args],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        env=env,
        check=False,
    )


def test_gc_of_unclosed_responses_never_freezes_the_loop() -> None:
    proc = run_child()
    assert proc.returncode == 0, (
        f"child exited {proc.returncode} (a 'Timeout' stack dump: the loop froze)\n"
        f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-12000:]}"
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["completed"] >= 200, result
    assert result["abandoned"] >= 100, result
    # The stress did what it is for: the GC released connections, and the reader ran.
    assert result["gc_releases"] > 0, result
    assert result["exports"] > 10, result


if __name__ == "__main__":
    child_main()
