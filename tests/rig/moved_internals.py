"""An aiohttp with one private internal moved, and one process that uses it every way.

:func:`moved_copy` copies the installed aiohttp and renames one identifier in its
sources, consistently (aiohttp itself keeps working, as after a refactoring release).
A code object the plugin compares is hidden in the process instead (``hide``): the
method keeps working, but no longer shows a ``__code__``.

``python -m tests.rig.moved_internals [hide]`` (with the copy first on ``PYTHONPATH``)
imports the plugin, runs one fixed workload against a real aiohttp server on
127.0.0.1 with a plain connector, the instrumented connector, the trace config and the
instrumentor, and prints, as JSON, what each request returned and which telemetry
came out, with every warning the plugin gave.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sys
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Optional

RUN_ATTRIBUTES = ("server.port",)  # differ between runs: the server's free port


def moved_copy(dest: Path, pattern: str, replacement: str, files: Optional[list[str]]) -> int:
    """Copy the installed aiohttp into ``dest``, renaming ``pattern`` in ``files`` (all
    of its ``.py`` files if None). Returns how many places were renamed."""
    import aiohttp

    source = Path(aiohttp.__file__).parent
    target = dest / "aiohttp"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    renamed = 0
    for path in target.rglob("*.py"):
        if files is not None and path.name not in files:
            continue
        text, n = re.subn(pattern, replacement, path.read_text())
        if n:
            path.write_text(text)
            renamed += n
    return renamed


class _NoCode:
    """A method that behaves as before and shows no ``__code__`` (as if aiohttp made it
    a compiled or wrapped callable)."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self._function = function

    def __get__(self, obj: Any, cls: Any = None) -> Any:
        return self if obj is None else self._function.__get__(obj, cls)


def hide_code(dotted: str) -> None:
    """Hide the code object of ``Class.method`` (an aiohttp class) in this process."""
    import aiohttp
    import aiohttp.connector

    owner_name, method = dotted.split(".")
    owner = getattr(aiohttp, owner_name, None) or getattr(aiohttp.connector, owner_name)
    setattr(owner, method, _NoCode(vars(owner)[method]))


# --- the workload -------------------------------------------------------------------


async def _server() -> tuple[Any, int, asyncio.Event]:
    from aiohttp import web

    gate = asyncio.Event()

    async def small(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    async def gated(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": "4"})
        await resp.prepare(request)
        await gate.wait()
        await resp.write(b"done")
        return resp

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/small")

    async def endless(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        try:
            for _ in range(200):  # bounded: 10 s at most
                await resp.write(b"x" * 64)
                await asyncio.sleep(0.05)
        except ConnectionError:  # the client closed it, as the workload does
            pass
        return resp

    app = web.Application()
    for path, handler in (("/small", small), ("/gated", gated), ("/redirect", redirect),
                          ("/endless", endless)):  # fmt: skip
        app.router.add_get(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1], gate


async def _outcome(call: Any) -> list[Any]:
    try:
        async with await call as resp:
            return [resp.status, (await resp.read()).decode()]
    except Exception as exc:
        return ["raised", type(exc).__name__]


async def workload(session: Any, port: int, gate: asyncio.Event, refused: int) -> list[Any]:
    """Every path the pool takes: reuse, redirect, 404, a DNS lookup, a release before
    EOF, a wait, a wait that times out, a refused dial."""
    import aiohttp

    base = f"http://127.0.0.1:{port}"
    results = [await _outcome(session.get(f"{base}/small")),
               await _outcome(session.get(f"{base}/redirect")),
               await _outcome(session.get(f"{base}/missing")),
               await _outcome(session.get(f"http://localhost:{port}/small"))]  # fmt: skip
    resp = await session.get(f"{base}/endless")
    await resp.content.readany()
    resp.release()  # before EOF: closed
    results.append([resp.status, "released"])
    for timeout in (None, aiohttp.ClientTimeout(total=None, connect=0.2)):
        gate.clear()
        held = await session.get(f"{base}/gated")  # holds the only slot until the gate
        kwargs = {} if timeout is None else {"timeout": timeout}
        waiter = asyncio.ensure_future(_outcome(session.get(f"{base}/small", **kwargs)))
        await asyncio.sleep(0.3)  # the waiter queues (and, with the timeout, gives up)
        gate.set()
        results += [[held.status, (await held.read()).decode()], await waiter]
    results.append(await _outcome(session.get(f"http://127.0.0.1:{refused}/")))
    return results


def _summary(spans: Any, reader: Any) -> dict[str, Any]:
    names = Counter(span.name for span in spans.get_finished_spans())
    metrics: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                points = metrics.setdefault(metric.name, [])
                for dp in metric.data.data_points:
                    attrs = {k: v for k, v in dp.attributes.items() if k not in RUN_ATTRIBUTES}
                    value = getattr(dp, "value", None)
                    points.append([sorted(attrs.items()), getattr(dp, "count", value)])
                points.sort(key=repr)
    return {"spans": dict(sorted(names.items())), "metrics": dict(sorted(metrics.items()))}


async def _run_mode(mode: str, port: int, gate: asyncio.Event, refused: int) -> dict[str, Any]:
    import aiohttp
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import aiohttp_pool_otel as plugin

    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    tp, mp = TracerProvider(), MeterProvider(metric_readers=[reader])
    tp.add_span_processor(SimpleSpanProcessor(spans))
    providers = {"tracer_provider": tp, "meter_provider": mp}
    trace_configs = []
    instrumentor = None
    if mode == "connector":
        connector: Any = plugin.OpenTelemetryTCPConnector(limit=1, root_spans=True, **providers)
    else:
        if mode == "instrumentor":
            instrumentor = plugin.AioHttpConnectionPoolInstrumentor()
            instrumentor.instrument(root_spans=True, **providers)
        if mode == "trace_config":
            trace_configs.append(plugin.create_pool_trace_config(root_spans=True, **providers))
        connector = aiohttp.TCPConnector(limit=1)
    try:
        async with aiohttp.ClientSession(connector=connector, trace_configs=trace_configs) as s:
            results = await workload(s, port, gate, refused)
            summary = _summary(spans, reader)  # the pool's state with the session open
    finally:
        if instrumentor is not None:
            instrumentor.uninstrument()
    tp.shutdown()
    mp.shutdown()
    return {"results": results, **summary}


async def _main() -> dict[str, Any]:
    import socket

    runner, port, gate = await _server()
    with socket.socket() as probe:  # a port nobody listens on: a refused dial
        probe.bind(("127.0.0.1", 0))
        refused = probe.getsockname()[1]
    try:
        return {m: await _run_mode(m, port, gate, refused)
                for m in ("plain", "connector", "trace_config", "instrumentor")}  # fmt: skip
    finally:
        await runner.cleanup()


def main(argv: list[str]) -> None:
    """Run the workload every way; print the JSON report."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for dotted in argv:
            hide_code(dotted)
        import aiohttp

        import aiohttp_pool_otel  # noqa: F401  # must import whatever aiohttp moved

        modes = asyncio.run(asyncio.wait_for(_main(), 60))
    ours = [str(w.message) for w in caught if "aiohttp-pool-otel" in str(w.message)]
    report = {"aiohttp": os.path.dirname(aiohttp.__file__), "warnings": ours, **modes}
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
