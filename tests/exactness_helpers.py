"""Shared pieces of the issue-11 exactness tests: a span ledger, quiet points, bounded
waits, metric readers' points, a hostile meter, and cheap canned HTTP servers.

Everything drives real sockets on 127.0.0.1; nothing here replaces aiohttp or the SDK.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

from opentelemetry.context import Context
from opentelemetry.metrics import Histogram, NoOpHistogram, NoOpMeter, NoOpMeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.util.types import Attributes

from aiohttp_pool_otel import PoolStatistics
from aiohttp_pool_otel import semconv as sc

HOST_KEYS = (sc.SERVER_ADDRESS, sc.SERVER_PORT, sc.URL_SCHEME)
STATE_GAUGES = (
    sc.METRIC_OPEN_CONNECTIONS,
    sc.METRIC_AVAILABLE,
    sc.METRIC_PENDING,
    sc.METRIC_MAX_PER_HOST,
)


# --- waiting without fixed sleeps ---------------------------------------------


async def quiet_point(turns: int = 5) -> None:
    """Let the loop run the callbacks that turn GC and transport facts into telemetry."""
    for _ in range(turns):
        await asyncio.sleep(0)


async def wait_until(
    predicate: Callable[[], bool], timeout: float = 15.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` on the loop until it holds; fail after ``timeout`` (generous)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


def books(stats: PoolStatistics) -> tuple[int, int]:
    """(created - closed, active + idle + connecting): equal at every quiet point."""
    return stats.created - stats.closed, stats.active + stats.idle + stats.connecting


# --- spans ------------------------------------------------------------------------


class SpanLedger(SpanProcessor):
    """Counts ``on_start`` and ``on_end`` per span (thread-safe), to prove every span
    that was started ended exactly once."""

    def __init__(self, on_start_delay: float = 0.0) -> None:
        self._lock = threading.Lock()
        self.started: dict[int, str] = {}
        self.ends: dict[int, int] = {}
        self.finished: dict[int, ReadableSpan] = {}
        self._delay = on_start_delay

    def on_start(self, span: Span, parent_context: Optional[Context] = None) -> None:
        if self._delay:
            # A slow processor (an exporter doing work on start): blocks the loop a bit.
            threading.Event().wait(self._delay)
        with self._lock:
            self.started[span.context.span_id] = span.name

    def on_end(self, span: ReadableSpan) -> None:
        assert span.context is not None
        with self._lock:
            sid = span.context.span_id
            self.ends[sid] = self.ends.get(sid, 0) + 1
            self.finished[sid] = span

    def unended(self) -> list[str]:
        """Names of the spans started and never ended."""
        with self._lock:
            return sorted(n for sid, n in self.started.items() if sid not in self.ends)

    def ended_twice(self) -> list[str]:
        with self._lock:
            return sorted(self.started.get(s, "?") for s, n in self.ends.items() if n > 1)

    def spans(self, name: str) -> list[ReadableSpan]:
        with self._lock:
            return [s for s in self.finished.values() if s.name == name]

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


# --- metrics ----------------------------------------------------------------------


@dataclass
class Collection:
    """One collection of a reader: metric name -> [(attributes, data point)]."""

    points: dict[str, list[tuple[dict[str, Any], Any]]] = field(default_factory=dict)

    def of(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        return self.points.get(name, [])

    def value(self, name: str, **attrs: Any) -> Optional[float]:
        """Sum of the values of ``name`` whose attributes include ``attrs`` (dots as
        ``__``); None when no such point was reported."""
        want = {k.replace("__", "."): v for k, v in attrs.items()}
        found = [
            dp.value
            for a, dp in self.of(name)
            if all(a.get(k) == v for k, v in want.items())
        ]
        return sum(found) if found else None

    def histogram_count(self, name: str) -> int:
        return sum(int(dp.count) for _, dp in self.of(name))

    def host_sets(self, name: str) -> set[tuple[Any, ...]]:
        """Distinct (server.address, server.port, url.scheme) of ``name``'s points."""
        return {tuple(a.get(k) for k in HOST_KEYS) for a, _ in self.of(name)}

    def hosts_of(self, name: str, port: int) -> list[tuple[dict[str, Any], Any]]:
        return [(a, dp) for a, dp in self.of(name) if a.get(sc.SERVER_PORT) == port]


def collect(reader: MetricReader) -> Collection:
    """Collect ``reader`` now (an InMemoryMetricReader) and index its points."""
    out = Collection()
    data = reader.get_metrics_data()  # type: ignore[attr-defined]
    if data is None:
        return out
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                points = out.points.setdefault(metric.name, [])
                for dp in metric.data.data_points:
                    points.append((dict(dp.attributes or {}), dp))
    return out


class RaisingHistogram(NoOpHistogram):
    """A histogram whose ``record`` raises: a broken exporter pipeline, a buggy SDK."""

    def record(
        self,
        amount: Union[int, float],
        attributes: Optional[Attributes] = None,
        context: Optional[Context] = None,
    ) -> None:
        raise RuntimeError("hostile histogram: record() failed")


class _HostileMeter(NoOpMeter):
    def create_histogram(self, name: str, *args: Any, **kwargs: Any) -> Histogram:
        return RaisingHistogram(name)


class HostileMeterProvider(NoOpMeterProvider):
    """A MeterProvider (of the API) whose histograms raise on every record."""

    def get_meter(self, name: str, *args: Any, **kwargs: Any) -> NoOpMeter:
        return _HostileMeter(name)


# --- canned servers: thousands of host keys, cheaply -------------------------------

CANNED_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


async def _canned(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer every request on a keep-alive connection with a 2-byte body."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if not head:
                break
            writer.write(CANNED_RESPONSE)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def start_canned_servers(count: int) -> list[asyncio.base_events.Server]:
    """``count`` tiny HTTP/1.1 servers on 127.0.0.1, each on its own port."""
    return [await asyncio.start_server(_canned, "127.0.0.1", 0) for _ in range(count)]


def port_of(server: asyncio.base_events.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


async def close_servers(servers: Iterable[asyncio.base_events.Server]) -> None:
    servers = list(servers)
    for s in servers:
        s.close()
    for s in servers:
        await s.wait_closed()


async def gather_bounded(coros: Sequence[Awaitable[Any]], limit: int) -> list[Any]:
    """Await ``coros`` with at most ``limit`` at a time; exceptions are returned."""
    sem = asyncio.Semaphore(limit)

    async def one(c: Awaitable[Any]) -> Any:
        async with sem:
            return await c

    return await asyncio.gather(*(one(c) for c in coros), return_exceptions=True)
