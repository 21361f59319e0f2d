"""Steady background traffic for tests that watch a pool over time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp


@contextlib.asynccontextmanager
async def steady_traffic(
    session: aiohttp.ClientSession, url: str, workers: int, rounds: int
) -> AsyncIterator[None]:
    """``workers`` tasks GET ``url`` and read it, each at most ``rounds`` times (bounded),
    until the block ends; they are awaited then."""
    stop = asyncio.Event()

    async def worker() -> None:
        for _ in range(rounds):
            if stop.is_set():
                return
            async with session.get(url) as resp:
                await resp.read()

    tasks = [asyncio.create_task(worker()) for _ in range(workers)]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)
