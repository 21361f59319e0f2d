"""Aiohttp servers on 127.0.0.1 in a process of their own, so that a load test's client
loop does not also serve (its lag would slow the offered rate and stretch hold times).

``/work`` answers after ``SERVICE_TIME``; ``/drip`` sends headers and half its body at
once, the rest 100 ms later. Run as a script: prints the ports as one JSON line, serves
until its stdin closes (bounded: ``LIFETIME`` seconds at most).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator

from aiohttp import web

SERVICE_TIME = 0.05
LIFETIME = 600.0


async def _work(request: web.Request) -> web.Response:
    await asyncio.sleep(SERVICE_TIME)
    return web.Response(text="done")


async def _drip(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Length": "10"})
    await resp.prepare(request)
    with contextlib.suppress(ConnectionError):
        await resp.write(b"01234")
        await asyncio.sleep(0.1)
        await resp.write(b"56789")
        await resp.write_eof()
    return resp


async def _serve(count: int) -> None:
    runners = []
    for _ in range(count):
        app = web.Application()
        app.router.add_get("/work", _work)
        app.router.add_get("/drip", _drip)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
    print(json.dumps([r.addresses[0][1] for r in runners]), flush=True)
    loop = asyncio.get_running_loop()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.read), LIFETIME)
    for runner in runners:
        await runner.cleanup()


@contextlib.contextmanager
def slow_servers(count: int) -> Iterator[list[int]]:
    """Start ``count`` servers in a child process; yields their ports."""
    child = subprocess.Popen(
        [sys.executable, __file__, str(count)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        yield json.loads(child.stdout.readline())
    finally:
        if child.stdin is not None:
            child.stdin.close()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(5)


if __name__ == "__main__":
    asyncio.run(_serve(int(sys.argv[1])))
