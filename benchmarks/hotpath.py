"""Socket-free micro-benchmark of the connector's hot path: ``connect()`` + ``release()``.

The pool is pre-filled with a fake keep-alive protocol, so each iteration is exactly
the reuse path every pooled request takes, without sockets and without the noise of
an end-to-end run. Reported: min over repeats of µs per iteration, and the difference
to bare ``aiohttp.TCPConnector``.

Three measurements:

* reuse path (``connect()`` finds an idle connection, ``release()`` pools it again), for
  the default connector and each per-lease option (``record_hold_time``,
  ``trace_all_leases``, ``capture_request_location``, ``watchdog_threshold``);
* queued path (``limit_per_host=1``: each acquisition waits until the previous
  holder releases), to price the slow path: tracing off, under an unsampled parent,
  and sampled;
* one collection (``InMemoryMetricReader.collect``) of all pool instruments with one
  and with ten pools.

    python -m benchmarks.hotpath [--loops 20000] [--repeats 11] [--json FILE]
    python -m benchmarks.hotpath --check [benchmarks/goals.toml] [--strict]
    python -m benchmarks.hotpath --quick          # smoke: span counts, no timing verdict

``--check`` prints every goal's verdict but exits non-zero only above the generous
``ci_max`` gate of shared CI machines; ``--strict`` gates on the goal itself.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
from types import SimpleNamespace
from typing import Any, Optional

import aiohttp
from aiohttp.client_reqrep import ClientResponse, ConnectionKey

from . import _goals
from .variants import CountingSpanExporter

KEY = ConnectionKey("127.0.0.1", 8080, False, True, None, None, None)
DEFAULT_GOALS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "goals.toml")


class _FinishedBody:
    def is_eof(self) -> bool:
        return True


class FakeProtocol:
    """Enough of aiohttp's ResponseHandler for the pool: a healthy keep-alive connection
    whose last response body is complete, so each release is the EOF auto-release that
    every small response takes."""

    _payload = _FinishedBody()
    should_close = False
    transport = None
    closed = None  # aiohttp >= 3.12 awaits this future on close when set

    def is_connected(self) -> bool:
        return True

    def close(self) -> None:
        pass


class Providers:
    def __init__(self) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace import NoOpTracerProvider

        self.spans = CountingSpanExporter()
        self.tp = TracerProvider()
        # Large enough for one timed block: nothing is dropped, flushed between blocks.
        self.tp.add_span_processor(BatchSpanProcessor(self.spans, max_queue_size=1 << 16))
        self.reader = InMemoryMetricReader()
        self.mp = MeterProvider(metric_readers=[self.reader])
        self.noop_tp = NoOpTracerProvider()

    def span_counts(self) -> dict[str, int]:
        self.tp.force_flush()
        return self.spans.snapshot()

    def shutdown(self) -> None:
        self.tp.shutdown()
        self.mp.shutdown()


def make_connector(case: str, prov: Providers, limit_per_host: int) -> Any:
    kw: dict[str, Any] = {"limit": 100, "limit_per_host": limit_per_host}
    if case == "bare":
        return aiohttp.TCPConnector(**kw)
    from aiohttp_pool_otel import OpenTelemetryTCPConnector

    traced = case in ("plugin-traced", "plugin-all-leases")
    return OpenTelemetryTCPConnector(
        tracer_provider=prov.tp if traced else prov.noop_tp,
        meter_provider=prov.mp,
        trace_all_leases=case == "plugin-all-leases",
        record_hold_time=case == "plugin-hold-time",
        capture_request_location=case == "plugin-request-location",
        watchdog_threshold=60.0 if case == "plugin-watchdog" else None,
        **kw,
    )


def _request() -> Any:
    return SimpleNamespace(
        connection_key=KEY, proxy=None, response_class=ClientResponse, method="GET"
    )


class Case:
    """One connector in one mode, timed in blocks of ``loops`` iterations.

    ``path`` is ``reuse`` (an idle connection is taken and pooled again) or ``queued``
    (``limit_per_host=1``: each acquisition waits until the previous holder releases,
    then takes its place). Plugin cases run under a sampled request span, like a
    request under the HTTP instrumentation, except ``plugin-unsampled`` (an unsampled
    remote parent).
    """

    def __init__(self, path: str, case: str, prov: Providers) -> None:
        self.path, self.case, self.prov = path, case, prov
        kind = case
        if path == "queued" and case in ("plugin-unsampled", "plugin-sampled"):
            kind = "plugin-traced"
        self.conn = make_connector(kind, prov, 1 if path == "queued" else 0)
        self.conn._conns[KEY].append((FakeProtocol(), time.monotonic()))
        self.req, self.timeout = _request(), aiohttp.ClientTimeout(total=60)
        self.samples: list[float] = []
        self.iterations = 0
        self.spans: dict[str, int] = {}
        self.held: Any = None
        self.root: Any = None
        if case == "plugin-unsampled":
            self.parent: Any = _unsampled_parent()
        elif case != "bare":
            self.root = prov.tp.get_tracer("bench").start_span("request")
            self.parent = self.root
        else:
            self.parent = None

    async def _reuse(self, n: int) -> None:
        conn, req, timeout = self.conn, self.req, self.timeout
        for _ in range(n):
            c = await conn.connect(req, [], timeout)
            c.release()

    async def _queued(self, n: int) -> None:
        conn, req, timeout = self.conn, self.req, self.timeout
        if self.held is None:
            self.held = await conn.connect(req, [], timeout)
        for _ in range(n):
            nxt = asyncio.ensure_future(conn.connect(req, [], timeout))
            await asyncio.sleep(0)  # it runs until it waits for the slot
            self.held.release()
            self.held = await nxt

    async def block(self, n: int, timed: bool = True) -> None:
        from opentelemetry import context, trace

        token = None
        if self.parent is not None:
            token = context.attach(trace.set_span_in_context(self.parent))
        try:
            before = self.prov.span_counts()
            gc.collect()
            t0 = time.perf_counter()
            await (self._reuse(n) if self.path == "reuse" else self._queued(n))
            elapsed = time.perf_counter() - t0
            if self.held is not None:
                self.held.release()
                self.held = None
            after = self.prov.span_counts()  # flushes: outside the timed part
        finally:
            if token is not None:
                context.detach(token)
        self.iterations += n
        for k, v in after.items():
            if v - before.get(k, 0):
                self.spans[k] = self.spans.get(k, 0) + v - before.get(k, 0)
        if timed:
            self.samples.append(elapsed / n * 1e6)

    async def close(self) -> None:
        if self.root is not None:
            self.root.end()
        await self.conn.close()

    def result(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "min": min(self.samples),
            "spans_per_iter": sum(self.spans.values()) / self.iterations,
            "spans": self.spans,
        }


def _unsampled_parent() -> Any:
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    return NonRecordingSpan(SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(0)))


def bench_collection(repeats: int, pools: int) -> dict[str, Any]:
    """µs per collect() of a MeterProvider holding only this package's instruments."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from aiohttp_pool_otel import OpenTelemetryTCPConnector

    async def build() -> tuple[Any, Any, list[Any]]:
        reader = InMemoryMetricReader()
        mp = MeterProvider(metric_readers=[reader])
        conns = []
        for i in range(pools):
            c = OpenTelemetryTCPConnector(meter_provider=mp, pool_name=f"pool{i}")
            c._conns[KEY].append((FakeProtocol(), time.monotonic()))
            held = await c.connect(_request(), [], aiohttp.ClientTimeout(total=60))
            held.release()  # one host key with counts, one idle connection
            conns.append(c)
        return reader, mp, conns

    async def run() -> dict[str, Any]:
        reader, mp, conns = await build()
        reader.get_metrics_data()
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(20):
                data = reader.get_metrics_data()
            samples.append((time.perf_counter() - t0) / 20 * 1e6)
        points = sum(
            len(m.data.data_points)
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
        )
        for c in conns:
            await c.close()
        mp.shutdown()
        return {"samples": samples, "min": min(samples), "points": points,
                "sdk_floor": sdk_floor(points, repeats)}

    return asyncio.run(run())


def sdk_floor(points: int, repeats: int) -> float:
    """µs per collect() of the SDK alone for ``points`` observations of one observable
    gauge with attributes like the pool's: what any plugin reporting that many data
    points pays, whatever its callbacks do."""
    from opentelemetry.metrics import Observation
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    observations = [
        Observation(i, {"server.address": "127.0.0.1", "server.port": 8080,
                        "url.scheme": "http", "aiohttp.pool.name": f"p{i}"})
        for i in range(points)
    ]
    reader = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[reader])
    mp.get_meter("floor").create_observable_gauge("g", [lambda _: observations])
    reader.get_metrics_data()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(20):
            reader.get_metrics_data()
        samples.append((time.perf_counter() - t0) / 20 * 1e6)
    mp.shutdown()
    return min(samples)


REUSE_CASES = [
    "bare", "plugin-metrics", "plugin-traced", "plugin-hold-time", "plugin-all-leases",
    "plugin-request-location", "plugin-watchdog",
]
QUEUED_CASES = ["bare", "plugin-metrics", "plugin-unsampled", "plugin-sampled"]


async def measure(loops: int, qloops: int, repeats: int) -> dict[str, Any]:
    """Every case once per repeat, interleaved (rotated order), so drift hits all alike."""
    prov = Providers()
    cases = [Case("reuse", c, prov) for c in REUSE_CASES]
    cases += [Case("queued", c, prov) for c in QUEUED_CASES]
    out: dict[str, Any] = {"reuse": {}, "queued": {}}
    try:
        for case in cases:  # warm-up, untimed
            await case.block(min(loops, 1000) if case.path == "reuse" else min(qloops, 300),
                             timed=False)
        for rep in range(repeats):
            k = rep % len(cases)
            for case in cases[k:] + cases[:k]:
                await case.block(loops if case.path == "reuse" else qloops)
        for case in cases:
            out[case.path][case.case] = case.result()
    finally:
        for case in cases:
            await case.close()
        prov.shutdown()
    return out


def report(res: dict[str, Any]) -> str:
    lines = ["| path | case | µs per iteration (min) | + µs vs bare | spans/iteration |",
             "|---|---|---|---|---|"]
    for path in ("reuse", "queued"):
        base = res[path]["bare"]["min"]
        for case, r in res[path].items():
            lines.append(
                f"| {path} | {case} | {r['min']:.2f} | {r['min'] - base:+.2f} "
                f"| {r['spans_per_iter']:.2f} |"
            )
    for label, key in (("1 pool", "collection_1"), ("10 pools", "collection_10")):
        r = res[key]
        lines.append(
            f"| collect() | {label}, {r['points']} data points | {r['min']:.1f} "
            f"| SDK alone for as many points: {r['sdk_floor']:.1f} | |"
        )
    return "\n".join(lines)


def check(res: dict[str, Any], config: dict[str, Any], strict: bool) -> tuple[list[str], bool]:
    lines, failed = [], False
    for g in _goals.goals_of(config, ("hotpath", "unsampled", "collection")):
        if g["kind"] == "hotpath":
            value = res["reuse"][g["case"]]["min"] - res["reuse"]["bare"]["min"]
        elif g["kind"] == "unsampled":
            q = res["queued"]
            value = q["plugin-unsampled"]["min"] - q["plugin-metrics"]["min"]
            if q["plugin-unsampled"]["spans_per_iter"]:
                lines.append(f"FAIL         {g['id']}: spans were built under an unsampled parent")
                failed = True
        else:
            value = res["collection_1"]["min"]
        goal = _goals.PASS if value <= g["max"] else _goals.FAIL
        gate = g.get("ci_max", g["max"])
        ci = "within" if value <= gate else "ABOVE"
        shown = f"{value:.1f} µs" if g["kind"] == "collection" else f"{value:+.2f} µs"
        lines.append(
            f"{goal:<12} {g['id']}: {g['text']} — measured {shown} "
            f"(goal <= {g['max']}, CI gate <= {gate}: {ci})"
        )
        failed |= value > (g["max"] if strict else gate)
    return lines, failed


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--loops", type=int, default=20000, help="iterations per repeat (reuse path)")
    p.add_argument("--queued-loops", type=int, default=4000, help="iterations per repeat (queued)")
    p.add_argument("--repeats", type=int, default=11)
    p.add_argument("--json", default=None)
    p.add_argument("--check", nargs="?", const=DEFAULT_GOALS, default=None, metavar="GOALS_TOML")
    p.add_argument("--strict", action="store_true", help="with --check: gate on the goal itself")
    p.add_argument("--quick", action="store_true", help="smoke: few loops, span counts only")
    a = p.parse_args(argv)
    if a.quick:
        a.loops, a.queued_loops, a.repeats = 1000, 300, 2
    t0 = time.time()
    res = asyncio.run(asyncio.wait_for(measure(a.loops, a.queued_loops, a.repeats), 600))
    res["collection_1"] = bench_collection(a.repeats, 1)
    res["collection_10"] = bench_collection(a.repeats, 10)
    print(report(res))
    problems = []
    expect = {("reuse", "bare"): 0, ("reuse", "plugin-metrics"): 0, ("reuse", "plugin-traced"): 0,
              ("reuse", "plugin-hold-time"): 0, ("reuse", "plugin-all-leases"): 1,
              ("reuse", "plugin-request-location"): 0, ("reuse", "plugin-watchdog"): 0,
              ("queued", "bare"): 0, ("queued", "plugin-metrics"): 0,
              ("queued", "plugin-unsampled"): 0}
    for (path, case), want in expect.items():
        got = res[path][case]["spans_per_iter"]
        if abs(got - want) > 1e-9:
            problems.append(f"{path}/{case}: {got:.3f} spans per iteration, expected {want}")
    sampled = res["queued"]["plugin-sampled"]["spans"]
    # One span per queued acquisition: its wait span (the reused connection is not traced).
    if not sampled.get("aiohttp.connection.wait") or sampled.get("aiohttp.connection.lease"):
        problems.append(f"queued/plugin-sampled: expected wait spans only, got {sampled}")
    failed = bool(problems)
    for msg in problems:
        print(f"SPAN CHECK FAILED: {msg}", file=sys.stderr)
    if a.check and not a.quick:
        lines, gate_failed = check(res, _goals.load(a.check), a.strict)
        print("\n### goals\n")
        for line in lines:
            print(f"- {line}")
        failed |= gate_failed
    print(f"\n{time.time() - t0:.0f} s, loops {a.loops}/{a.queued_loops} x {a.repeats} repeats")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    if a.quick and not failed:
        print("quick: OK (span counts as designed; no timing verdict)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
