"""The demo's two local servers, on 127.0.0.1 only."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web

# Bounded: a slow body stops by itself after this long even if nobody reads it.
SLOW_BODY_SECONDS = 30.0
# `small /late` answers after this long: long enough that concurrent requests queue.
LATE_SECONDS = 0.2
# `small /cut` promises CUT_PROMISED bytes, sends CUT_SENT, then hangs up after this long.
CUT_SECONDS = 0.1
CUT_PROMISED = 100
CUT_SENT = 10


async def _small(request: web.Request) -> web.Response:
    return web.Response(text="hello")


async def _late(request: web.Request) -> web.Response:
    await asyncio.sleep(LATE_SECONDS)
    return web.Response(text="done")


async def _cut(request: web.Request) -> web.StreamResponse:
    """Promises CUT_PROMISED bytes, sends CUT_SENT, then drops the connection: a body cut
    short, which aiohttp cannot give back to the pool and no longer keeps alive."""
    resp = web.StreamResponse(headers={"Content-Length": str(CUT_PROMISED)})
    await resp.prepare(request)
    await resp.write(b"." * CUT_SENT)
    await asyncio.sleep(CUT_SECONDS)
    if request.transport is not None:  # else the client already left
        request.transport.close()
    return resp


async def _slow(request: web.Request) -> web.StreamResponse:
    """A chunked body that drips 16 bytes every 100 ms."""
    resp = web.StreamResponse()
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SLOW_BODY_SECONDS
    try:
        while loop.time() < deadline:
            await resp.write(b"." * 16)
            await asyncio.sleep(0.1)
    except ConnectionError:
        pass
    return resp


@dataclass
class DemoServers:
    """Two running servers: ``small`` answers at once (``/late`` later, ``/cut`` cuts
    its body short), ``slow`` streams for up to SLOW_BODY_SECONDS."""

    small: str
    slow: str
    _runners: tuple[web.AppRunner, ...]

    async def close(self) -> None:
        for runner in self._runners:
            await runner.cleanup()


async def _serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, int(runner.addresses[0][1])


async def start_servers() -> DemoServers:
    """Start both servers on free ports of 127.0.0.1."""
    small_app = web.Application()
    small_app.router.add_get("/", _small)
    small_app.router.add_get("/late", _late)
    small_app.router.add_get("/cut", _cut)
    slow_app = web.Application()
    slow_app.router.add_get("/", _slow)
    small_runner, small_port = await _serve(small_app)
    slow_runner, slow_port = await _serve(slow_app)
    return DemoServers(
        small=f"http://127.0.0.1:{small_port}",
        slow=f"http://127.0.0.1:{slow_port}",
        _runners=(small_runner, slow_runner),
    )
