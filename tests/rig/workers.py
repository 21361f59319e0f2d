"""Worker processes as services run them (spawned, each configuring OTLP itself, or
forked after the parent configured), a local HTTP server in its own thread for them to
call, and readers of what an OTLP receiver got, per ``service.instance.id``."""

from __future__ import annotations

import asyncio
import faulthandler
import multiprocessing
import os
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Optional

import aiohttp
from aiohttp import web

from aiohttp_pool_otel import OpenTelemetryTCPConnector, configure_otlp
from aiohttp_pool_otel import semconv as sc
from aiohttp_pool_otel.otlp import OtlpProviders

from .otlp_receivers import Received, attributes

INSTANCE_ID = "service.instance.id"
# A worker that has not finished by then dumps its stacks and exits by itself.
WORKER_DEADLINE = 90.0


class ThreadedServer:
    """An aiohttp server on 127.0.0.1 in its own thread and loop (forked workers must
    not inherit a running loop); ``url`` answers 200 and counts each request."""

    def __init__(self) -> None:
        self.requests = 0
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: Optional[web.AppRunner] = None

    async def _ok(self, request: web.Request) -> web.Response:
        self.requests += 1
        return web.Response(text="ok")

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/ok", self._ok)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/ok"

    def start(self) -> ThreadedServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@dataclass(frozen=True)
class WorkerPlan:
    """What each worker does: ``requests`` GETs of ``url``; a spawned worker configures
    OTLP to ``endpoint`` under ``service_name`` itself."""

    url: str
    requests: int
    endpoint: str
    protocol: str
    service_name: str


@dataclass(frozen=True)
class WorkerResult:
    """What a worker reports back: its pid, the instance id its providers carry, the
    status of each request, whether its providers' shutdown finished in time."""

    pid: int
    instance: str
    statuses: tuple[int, ...]
    shutdown_ok: bool


def configure(plan: WorkerPlan) -> OtlpProviders:
    """``configure_otlp()`` as a worker (or a parent about to fork) calls it. Metrics
    leave on the workers' flushes, not on a timer."""
    return configure_otlp(
        service_name=plan.service_name, endpoint=plan.endpoint, protocol=plan.protocol,
        export_interval_millis=60_000, timeout=10, set_global=False,
    )  # fmt: skip


def worker_main(plan: WorkerPlan, results: Any, providers: Optional[OtlpProviders]) -> None:
    """One worker process: configures OTLP unless it inherited ``providers`` from the
    parent that forked it, makes the plan's requests through one long-lived instrumented
    session, shuts its providers down (a multiprocessing child skips atexit), reports."""
    faulthandler.dump_traceback_later(WORKER_DEADLINE, exit=True)
    if providers is None:
        providers = configure(plan)
    statuses = asyncio.run(_requests(plan, providers))
    instance = providers.tracer_provider.resource.attributes.get(INSTANCE_ID, "")
    ok = providers.shutdown(timeout=30)
    results.put(WorkerResult(os.getpid(), str(instance), tuple(statuses), ok))


async def _requests(plan: WorkerPlan, providers: OtlpProviders) -> list[int]:
    tp, mp = providers.tracer_provider, providers.meter_provider
    connector = OpenTelemetryTCPConnector(tracer_provider=tp, meter_provider=mp)
    statuses: list[int] = []
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for _ in range(plan.requests):
            async with session.get(plan.url) as resp:
                await resp.read()
                statuses.append(resp.status)
        # Collected while the connector is open: its counts are read from it.
        await asyncio.to_thread(mp.force_flush)
    return statuses


def run_workers(
    mode: str,
    plan: WorkerPlan,
    count: int,
    providers: Optional[OtlpProviders] = None,
    timeout: float = WORKER_DEADLINE + 30,
) -> list[WorkerResult]:
    """Start ``count`` workers with multiprocessing's ``mode`` start method ("fork"
    hands them the parent's ``providers``), wait (bounded) and return their reports."""
    ctx = multiprocessing.get_context(mode)
    results = ctx.Queue()
    inherited = providers if mode == "fork" else None
    procs = [
        ctx.Process(target=worker_main, args=(plan, results, inherited), daemon=True)
        for _ in range(count)
    ]
    for proc in procs:
        proc.start()
    deadline = time.monotonic() + timeout
    reports: list[WorkerResult] = []
    try:
        for _ in procs:
            reports.append(results.get(timeout=max(1.0, deadline - time.monotonic())))
    except queue.Empty:  # a worker died or hung: its exit code says which
        pass
    for proc in procs:
        proc.join(max(1.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()
            proc.join(5)
    exits = [p.exitcode for p in procs]
    assert exits == [0] * count and len(reports) == count, (exits, reports)
    return reports


# --- what a receiver got, per service.instance.id ------------------------------------


def _resource_of(resource_items: Any) -> tuple[str, str]:
    attrs = attributes(resource_items.resource.attributes)
    return str(attrs.get("service.name", "")), str(attrs.get(INSTANCE_ID, ""))


def span_instances(rx: Received, service: str) -> dict[str, int]:
    """Spans received per instance id of ``service``."""
    out: dict[str, int] = {}
    for request in list(rx.trace_requests):
        for rs in request.resource_spans:
            name, instance = _resource_of(rs)
            if name == service:
                count = sum(len(ss.spans) for ss in rs.scope_spans)
                out[instance] = out.get(instance, 0) + count
    return out


def releases_by_instance(rx: Received, service: str) -> dict[str, float]:
    """The last reported ``releases`` total (summed over its series) per instance id of
    ``service``: the counter is cumulative, so the last export holds it."""
    out: dict[str, float] = {}
    for request in list(rx.metric_requests):
        for rm in request.resource_metrics:
            name, instance = _resource_of(rm)
            points = [
                p.as_int or p.as_double
                for sm in rm.scope_metrics
                for m in sm.metrics
                if m.name == sc.METRIC_RELEASES
                for p in m.sum.data_points
            ]
            if name == service and points:
                out[instance] = float(sum(points))
    return out
