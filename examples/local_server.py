"""A tiny aiohttp server on 127.0.0.1 for the examples: ``/`` answers at once,
``/slow`` streams its body slowly (for a bounded time)."""

from __future__ import annotations

import asyncio

from aiohttp import web


async def _fast(request: web.Request) -> web.Response:
    return web.Response(text="hello")


async def _slow(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse()
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    try:
        for _ in range(300):  # at most 30 s
            await resp.write(b"." * 16)
            await asyncio.sleep(0.1)
    except ConnectionError:
        pass
    return resp


async def start() -> tuple[web.AppRunner, str]:
    """Start the server on a free port; returns (runner, base URL)."""
    app = web.Application()
    app.router.add_get("/", _fast)
    app.router.add_get("/slow", _slow)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"
