"""Thousands of host keys, cheaply: one tiny canned HTTP/1.1 server per port on
127.0.0.1, and a bounded way to send them requests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any

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
