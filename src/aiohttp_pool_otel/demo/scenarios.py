"""The demo's scenarios: real requests, observed only through the package's public API
(``statistics()``, the lease/wait spans) the way a user would observe them."""

from __future__ import annotations

import asyncio
import gc
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import aiohttp
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from .. import OpenTelemetryTCPConnector, ReleaseReason
from . import names as sc
from .servers import DemoServers

# The connector options each scenario sets beyond the limits, and why: the output and
# the README say so, since a user's default connector does not have them.
SCENARIO_OPTIONS: dict[str, dict[str, Any]] = {
    "puzzle": {"trace_all_leases": True},
    "exhaustion": {"trace_all_leases": True},
    "leak": {"watchdog_threshold": 0.3},
}
# Each such option's default and what the scenario gains from it.
OPTION_WHY: dict[str, tuple[Any, str]] = {
    "trace_all_leases": (
        False,
        "every request gets a lease span, so each release shows; by default only a "
        "request that dials a new connection gets one, and a queued one only its wait span",
    ),
    "watchdog_threshold": (
        None,
        "a connection held longer than 0.3 s counts in the held_too_long gauge; by default "
        "there is no watchdog",
    ),
}


@dataclass
class Release:
    """One release seen on a lease span."""

    host: str
    reason: str
    phase: Optional[str]
    outcome: str
    hold_ms: float


@dataclass
class HostState:
    """One host's pool after a step."""

    active: int
    idle: int
    waiting: int
    available: Optional[int]


@dataclass
class Row:
    """One step of a scenario: what was done, the pool after it, the releases during it."""

    step: int
    action: str
    host: str
    connection: str
    pools: dict[str, HostState]
    releases: list[Release] = field(default_factory=list)
    note: str = ""


@dataclass
class DemoResult:
    """Everything a scenario observed."""

    scenario: str
    limit: int
    limit_per_host: int
    options: dict[str, Any]
    hosts: dict[str, str]
    rows: list[Row] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)


class Recorder:
    """Turns the connector's statistics and finished lease spans into table rows."""

    def __init__(
        self,
        result: DemoResult,
        connector: OpenTelemetryTCPConnector,
        spans: InMemorySpanExporter,
        ports: dict[int, str],
    ) -> None:
        self.result = result
        self.connector = connector
        self.spans = spans
        self.ports = ports
        self._seen = 0

    def host_of(self, span: ReadableSpan) -> str:
        port = (span.attributes or {}).get(sc.SERVER_PORT)
        return self.ports.get(int(port), "?") if isinstance(port, int) else "?"

    def counts(self, host: str) -> tuple[int, int]:
        for h in self.connector.statistics().hosts.values():
            if self.ports.get(h.port or 0) == host:
                return h.created, h.reused
        return 0, 0

    def kind(self, host: str, before: tuple[int, int]) -> str:
        created, reused = self.counts(host)
        if created > before[0]:
            return "new"
        return "reused" if reused > before[1] else "-"

    def new_releases(self) -> list[Release]:
        finished = self.spans.get_finished_spans()
        fresh, self._seen = finished[self._seen :], len(finished)
        out = []
        for span in fresh:
            if span.name != sc.SPAN_LEASE:
                continue
            a = span.attributes or {}
            out.append(
                Release(
                    host=self.host_of(span),
                    reason=str(a.get(sc.RELEASE_REASON)),
                    phase=str(a[sc.RELEASE_PHASE]) if sc.RELEASE_PHASE in a else None,
                    outcome=str(a.get(sc.RELEASE_OUTCOME)),
                    hold_ms=round(_number(a.get(sc.CONNECTION_HOLD_TIME)) * 1000, 1),
                )
            )
        return out

    def row(self, action: str, host: str, connection: str, note: str = "") -> Row:
        pools = {name: HostState(0, 0, 0, None) for name in self.result.hosts}
        for h in self.connector.statistics().hosts.values():
            name = self.ports.get(h.port or 0)
            if name is not None:
                pools[name] = HostState(h.active, h.idle, h.waiting, h.available)
        row = Row(len(self.result.rows) + 1, action, host, connection, pools)
        row.releases = self.new_releases()
        row.note = note
        self.result.rows.append(row)
        return row


@dataclass
class Telemetry:
    """The providers the demo reports to, and what it reads back."""

    tracer_provider: TracerProvider
    meter_provider: Any
    spans: InMemorySpanExporter
    reader: Optional[InMemoryMetricReader]
    # Metric values collected at the scenario's most telling moment.
    snapshot: Any = None
    snapshot_label: str = "at the end"

    def take_snapshot(self, label: str) -> None:
        if self.reader is not None:
            self.snapshot = self.reader.get_metrics_data()
            self.snapshot_label = label


Progress = Callable[[str], None]


def _setup(
    telemetry: Telemetry, servers: DemoServers, scenario: str, limit: int, per_host: int
) -> tuple[OpenTelemetryTCPConnector, Recorder]:
    options = SCENARIO_OPTIONS[scenario]
    connector = OpenTelemetryTCPConnector(
        limit=limit,
        limit_per_host=per_host,
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        pool_name="demo",
        # Hold times for the dashboard's hold-time panel and `advise` (with --otlp): one
        # histogram record per release, nothing the scenarios print depends on it.
        record_hold_time=True,
        **options,
    )
    hosts = {"small": servers.small, "slow": servers.slow}
    result = DemoResult(scenario, limit, per_host, dict(options), hosts)
    ports = {int(url.rsplit(":", 1)[1]): name for name, url in hosts.items()}
    return connector, Recorder(result, connector, telemetry.spans, ports)


async def puzzle(telemetry: Telemetry, servers: DemoServers, progress: Progress) -> DemoResult:
    """limit=25, limit_per_host=5; 2 unread requests to `small`, 3 to `slow`; then close."""
    connector, rec = _setup(telemetry, servers, "puzzle", 25, 5)
    tracer = telemetry.tracer_provider.get_tracer("aiohttp-pool-otel-demo")
    held: list[aiohttp.ClientResponse] = []
    async with aiohttp.ClientSession(connector=connector) as session:
        for host in ("small", "small", "slow", "slow", "slow"):
            before = rec.counts(host)
            with tracer.start_as_current_span(f"GET {host} (request {len(held) + 1})"):
                held.append(await session.get(rec.result.hosts[host]))
            rec.row(f"GET {host}, not read, not closed", host, rec.kind(host, before))
            progress(f"request {len(held)} done")
        await asyncio.sleep(0.05)  # let any late EOF arrive before we close
        telemetry.take_snapshot("before closing the responses")
        # aiohttp marks a response closed when it released the connection at EOF.
        rec.result.facts["closed_before_close"] = [r.closed for r in held]
        for resp in held:
            resp.close()
        rec.row(f"close all {len(held)} responses", "both", "-")
        rec.result.facts["closed_after_close"] = [r.closed for r in held]
    return rec.result


async def exhaustion(
    telemetry: Telemetry, servers: DemoServers, progress: Progress
) -> DemoResult:
    """8 concurrent requests to a host allowed 2 connections: 6 must queue."""
    connector, rec = _setup(telemetry, servers, "exhaustion", 25, 2)
    tracer = telemetry.tracer_provider.get_tracer("aiohttp-pool-otel-demo")
    url = rec.result.hosts["small"] + "/late"
    peak_waiting = 0
    peak_gauge: Optional[int] = None
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(i: int) -> None:
            with tracer.start_as_current_span(f"GET small /late (request {i})"):
                async with session.get(url) as resp:
                    await resp.read()

        tasks = [asyncio.create_task(one(i)) for i in range(1, 9)]
        for _ in range(200):  # bounded sampling of the pool while they run
            if all(t.done() for t in tasks):
                break
            waiting = connector.statistics().waiting
            if waiting > peak_waiting:
                # Read the exported gauge at the new peak: what a dashboard would show.
                peak_waiting = waiting
                peak_gauge = _gauge(telemetry, sc.METRIC_PENDING)
            await asyncio.sleep(0.02)
        await asyncio.gather(*tasks)
        progress("8 requests done")
        waits = [s for s in telemetry.spans.get_finished_spans() if s.name == sc.SPAN_WAIT]
        created, reused = rec.counts("small")
        rec.row("8 concurrent GET small /late", "small", f"{created} new, {reused} reused")
    durations = sorted(((s.end_time or 0) - (s.start_time or 0)) / 1e6 for s in waits)
    rec.result.facts.update(
        requests=8,
        wait_spans=len(waits),
        peak_waiting=peak_waiting,
        pending_requests_at_peak=peak_gauge,
        wait_ms_max=round(durations[-1], 1) if durations else 0.0,
        wait_ms_median=round(durations[len(durations) // 2], 1) if durations else 0.0,
        blocking_limits=sorted(
            {str((s.attributes or {}).get(sc.POOL_BLOCKING_LIMIT)) for s in waits}
        ),
    )
    return rec.result


async def leak(telemetry: Telemetry, servers: DemoServers, progress: Progress) -> DemoResult:
    """Responses never closed until the pool runs dry; the plugin shows why."""
    connector, rec = _setup(telemetry, servers, "leak", 25, 3)
    held: list[aiohttp.ClientResponse] = []
    timeout = aiohttp.ClientTimeout(connect=1.0)
    async with aiohttp.ClientSession(connector=connector) as session:
        for i in range(1, 6):
            try:
                before = rec.counts("slow")
                held.append(await session.get(rec.result.hosts["slow"], timeout=timeout))
                rec.row("GET slow, response kept, never closed", "slow", rec.kind("slow", before))
                await asyncio.sleep(0.2)
            except asyncio.TimeoutError:  # ConnectionTimeoutError on aiohttp >= 3.10
                rec.row("GET slow", "slow", "-", note="timed out waiting for a slot")
                rec.result.facts["timed_out_request"] = i
                break
            finally:
                progress(f"request {i}")
        wait = next(
            s for s in telemetry.spans.get_finished_spans() if s.name == sc.SPAN_WAIT
        )
        a = wait.attributes or {}
        rec.result.facts.update(
            wait_error_type=a.get(sc.ERROR_TYPE),
            wait_pool_active=a.get(sc.POOL_ACTIVE),
            wait_oldest_lease_s=round(_number(a.get(sc.POOL_OLDEST_LEASE_AGE)), 2),
            held_too_long_after_timeout=_gauge(telemetry, sc.METRIC_HELD_TOO_LONG),
        )
        # Dropping the responses does not free their slots while the bodies stream:
        # aiohttp itself keeps them alive. Only closing does.
        count = len(held)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            del held[:]
            gc.collect()
        stats = connector.statistics()
        rec.result.facts.update(responses_dropped=count, active_after_gc=stats.active)
        rec.row(f"drop the {count} responses + gc.collect()", "slow", "-")
        await _garbage_collected_leak(rec, session, progress)
        # Both leaks at once: the streamed responses still held, the cut one collected.
        telemetry.take_snapshot("after the garbage collection; streamed responses still held")
    rec.row("close the session", "slow", "-")
    return rec.result


async def _garbage_collected_leak(
    rec: Recorder, session: aiohttp.ClientSession, progress: Progress
) -> None:
    """The leak the garbage collector does free: a response whose body the server cut
    short is no longer kept alive by aiohttp, so once the caller drops it unclosed only a
    garbage collection releases its connection (reason gc, what the leak alert counts)."""
    before = rec.counts("small")
    cut: Optional[aiohttp.ClientResponse] = await session.get(
        rec.result.hosts["small"] + "/cut"
    )
    kind = rec.kind("small", before)
    for _ in range(250):  # bounded: the server hangs up CUT_SECONDS after the headers
        if cut is None or cut.content.exception() is not None:
            break
        await asyncio.sleep(0.02)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        del cut
        gc.collect()
    # A finalizer only leaves a fact behind; the loop turns it into telemetry (spans,
    # counters), and statistics() applies what is still pending.
    for _ in range(3):
        await asyncio.sleep(0)
    gc_releases = rec.connector.statistics().releases.get(ReleaseReason.GC, 0)
    rec.result.facts["gc_releases"] = gc_releases
    rec.row("GET small /cut, body cut short, dropped + gc.collect()", "small", kind)
    progress(f"cut response garbage-collected ({gc_releases} gc release)")


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else 0.0


def _gauge(telemetry: Telemetry, name: str) -> Optional[int]:
    if telemetry.reader is None:
        return None
    data = telemetry.reader.get_metrics_data()
    total = 0
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == name:
                    total += sum(int(getattr(p, "value", 0)) for p in metric.data.data_points)
    return total


SCENARIOS = {"puzzle": puzzle, "exhaustion": exhaustion, "leak": leak}
# ``replay``: a pass starts at most this often (the puzzle's pass takes under 0.1 s: no
# need to spin a core for a dashboard), and never more passes than this.
PASS_PERIOD_S = 1.0
MAX_PASSES = 10_000


@dataclass
class Replays:
    """The passes ``demo --duration`` ran after the first, reported by their count only."""

    duration: float
    passes: int
    seconds: float
    spans: int


async def replay(
    scenario: str,
    telemetry: Telemetry,
    servers: DemoServers,
    duration: float,
    progress: Progress,
    *,
    started: float,
) -> Replays:
    """Run ``scenario`` again, each time in a fresh session, until ``duration`` seconds
    have passed since ``started`` (the first pass's ``time.monotonic()``; a pass begun
    before then runs to its end): traffic that lasts long enough for a scraper to see
    its counts rise. The providers and servers stay, so every pass adds to the same
    series."""
    start, until = time.monotonic(), started + duration
    passes = spans = 0
    progress(f"replaying the scenario in fresh sessions for {max(until - start, 0):.0f} s more")

    def quiet(message: str) -> None:
        pass

    begun = started
    while passes < MAX_PASSES:
        # One pass per period at most, and none begun at or after the deadline.
        next_at = max(begun + PASS_PERIOD_S, time.monotonic())
        if next_at >= until:
            break
        await asyncio.sleep(next_at - time.monotonic())
        begun = time.monotonic()
        # The first pass's spans are reported already; a replay's go out over OTLP only.
        telemetry.spans.clear()
        await SCENARIOS[scenario](telemetry, servers, quiet)
        spans += len(telemetry.spans.get_finished_spans())
        passes += 1
    telemetry.spans.clear()
    progress(f"{passes} replays done")
    return Replays(duration, passes, round(time.monotonic() - start, 1), spans)
