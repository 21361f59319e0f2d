"""One measurement, in a fresh process: N requests at concurrency C through one session.

Prints one JSON line: req/s, client CPU µs per request (``time.process_time``, so the
span and metric export threads count), spans per request by name (from a counting
exporter, after a flush: drops would show), errors, and the server's CPU % over the
timed window (from ``/proc/<pid>/stat``). With ``--chunks K`` it also records RSS and
the number of exported metric data points after each of K chunks (the soak).

    python -m benchmarks.client --variant plugin-metrics --url http://127.0.0.1:PORT/small
           --n 20000 --c 50 [--limit-per-host 2 --yield-between] [--server-pid PID]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import sys
import time
from typing import Any, Optional

import aiohttp

from .variants import Built, build, check_spans


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def process_cpu_seconds(pid: int) -> Optional[float]:
    """utime + stime of another process (None without /proc)."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _unsampled_parent() -> Any:
    """A context manager making an unsampled remote parent span current."""
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    ctx = SpanContext(
        trace_id=random.getrandbits(128) | 1,
        span_id=random.getrandbits(64) | 1,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.DEFAULT),
    )
    span = NonRecordingSpan(ctx)
    return lambda: trace.use_span(span, end_on_exit=False)


async def run_load(
    session: aiohttp.ClientSession,
    url: str,
    n: int,
    c: int,
    yield_between: bool,
    parent: Any = None,
) -> int:
    """``n`` GETs by ``c`` tasks; returns the number of errors."""
    remaining = n
    errors = 0

    async def one() -> None:
        nonlocal errors
        try:
            async with session.get(url) as resp:
                await resp.read()
                if resp.status != 200:
                    errors += 1
        except (aiohttp.ClientError, asyncio.TimeoutError):
            errors += 1

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            if parent is None:
                await one()
            else:
                with parent():
                    await one()
            if yield_between:
                # Let the waiter woken by our release take the slot: without this,
                # aiohttp hands the released connection straight back to this task.
                await asyncio.sleep(0)

    await asyncio.gather(*(worker() for _ in range(min(c, n) or 1)))
    return errors


def _pool_counts(built: Built) -> dict[str, int]:
    """Cumulative created / reused (public statistics) and queued (exported metric)."""
    out: dict[str, int] = {}
    stats = getattr(built.connector, "statistics", None)
    if stats is not None:
        s = stats()
        out["created"], out["reused"] = s.created, s.reused
    if built.metric_exporter is not None and stats is not None:
        built.flush_metrics()
        out["queued"] = built.metric_exporter.last_values.get(
            "aiohttp.client.connection.queued", 0
        )
    return out


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    built = build(
        args.variant,
        limit=args.limit,
        limit_per_host=args.limit_per_host,
        metric_interval_ms=args.metric_interval_ms,
    )
    parent = _unsampled_parent() if built.unsampled_parent else None
    out: dict[str, Any] = {
        "variant": args.variant,
        "url_path": args.url.split("/", 3)[-1] if args.url.count("/") >= 3 else "",
        "n": args.n,
        "c": args.c,
        "warmup": args.warmup,
        "limit": args.limit,
        "limit_per_host": args.limit_per_host,
        "yield_between": args.yield_between,
        "loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
    }
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(
        connector=built.connector, trace_configs=built.trace_configs, timeout=timeout
    ) as session:
        warm_errors = await run_load(
            session, args.url, args.warmup, args.c, args.yield_between, parent
        )
        built.flush()
        spans0 = built.span_exporter.snapshot() if built.span_exporter else {}
        pool0 = _pool_counts(built)
        gc.collect()
        rss0 = rss_bytes()
        gc0 = [s["collections"] for s in gc.get_stats()]
        server0 = process_cpu_seconds(args.server_pid)
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        rss_curve: list[int] = []
        points_curve: list[int] = []
        errors = 0
        chunks = max(args.chunks, 1)
        for i in range(chunks):
            count = args.n // chunks + (1 if i < args.n % chunks else 0)
            errors += await run_load(session, args.url, count, args.c, args.yield_between, parent)
            if args.chunks > 1:
                gc.collect()
                rss_curve.append(rss_bytes())
                if built.metric_exporter is not None:
                    built.flush_metrics()
                    points_curve.append(built.metric_exporter.last_points)
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        server1 = process_cpu_seconds(args.server_pid)
        gc1 = [s["collections"] for s in gc.get_stats()]
        built.flush()
        spans1 = built.span_exporter.snapshot() if built.span_exporter else {}
        pool1 = _pool_counts(built)
        gc.collect()
        rss1 = rss_bytes()
    built.shutdown()
    spans = {k: v - spans0.get(k, 0) for k, v in spans1.items() if v - spans0.get(k, 0)}
    n_spans = sum(spans.values())
    pool = {k: v - pool0.get(k, 0) for k, v in pool1.items()}
    out.update(
        {
            "wall_s": wall,
            "rps": args.n / wall,
            "wall_us_per_req": wall / args.n * 1e6,
            "cpu_us_per_req": cpu / args.n * 1e6,
            "client_cpu_pct": 100.0 * cpu / wall,
            "server_cpu_pct": (
                100.0 * (server1 - server0) / wall
                if server0 is not None and server1 is not None
                else None
            ),
            "errors": errors,
            "warmup_errors": warm_errors,
            "spans": spans,
            "spans_per_req": n_spans / args.n,
            "span_problems": check_spans(args.variant, args.n, spans),
            "pool": pool,
            "metric_exports": built.metric_exporter.exports if built.metric_exporter else 0,
            "metric_points": built.metric_exporter.last_points if built.metric_exporter else 0,
            "gc_collections": [b - a for a, b in zip(gc0, gc1)],
            "rss_before": rss0,
            "rss_after": rss1,
            "rss_curve": rss_curve,
            "metric_points_curve": points_curve,
        }
    )
    return out


def main(argv: Optional[list[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--variant", required=True)
    p.add_argument("--url", required=True, help="full URL, e.g. http://127.0.0.1:PORT/small")
    p.add_argument("--n", type=int, default=20000, help="timed requests")
    p.add_argument("--c", type=int, default=50, help="concurrent tasks")
    p.add_argument("--warmup", type=int, default=1000, help="untimed requests first")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--limit-per-host", type=int, default=0)
    p.add_argument("--yield-between", action="store_true", help="sleep(0) between requests")
    p.add_argument("--metric-interval-ms", type=float, default=1000.0)
    p.add_argument("--server-pid", type=int, default=0)
    p.add_argument("--chunks", type=int, default=1, help="record RSS after each of K chunks")
    p.add_argument("--uvloop", action="store_true", help="client on uvloop")
    p.add_argument("--max-seconds", type=float, default=900.0, help="hard bound on the run")
    args = p.parse_args(argv)
    if args.uvloop:
        import uvloop

        uvloop.install()

    async def bounded() -> dict[str, Any]:
        return await asyncio.wait_for(measure(args), timeout=args.max_seconds)

    result = asyncio.run(bounded())
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
