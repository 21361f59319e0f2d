"""An open-loop load generator: requests start on a fixed schedule at the offered rate,
whether or not earlier ones finished (as independent users do), unlike a closed loop of
workers that slows down with the pool it measures. Bounded in count and in time."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Callable

import aiohttp

Request = Callable[[aiohttp.ClientSession, str], Awaitable[None]]


async def read_body(session: aiohttp.ClientSession, url: str) -> None:
    """A well-behaved request: read the body, release on exit."""
    async with session.get(url) as resp:
        await resp.read()


async def leave_body_unread(session: aiohttp.ClientSession, url: str) -> None:
    """Headers only: ``async with`` exits (``release()``) before the body's end."""
    async with session.get(url) as resp:
        resp.raise_for_status()


@dataclass
class Outcome:
    """What the schedule offered and how each request ended."""

    offered: int = 0
    ended: Counter[str] = field(default_factory=Counter)  # "ok", "timeout", error class


async def open_loop(
    session: aiohttp.ClientSession,
    urls: list[str],
    rate: float,
    duration: float,
    request: Request = read_body,
    drain: float = 15.0,
    seed: int = 1,
) -> Outcome:
    """``rate * duration`` requests, round-robin over ``urls``, arriving as a Poisson
    process of ``rate``/s (independent users: bursts and gaps, seeded); then waits at
    most ``drain`` s for the stragglers (cancelled past that)."""
    loop = asyncio.get_running_loop()
    arrivals = random.Random(seed)
    outcome = Outcome()
    tasks: list[asyncio.Task[None]] = []

    async def one(url: str) -> None:
        try:
            await request(session, url)
            outcome.ended["ok"] += 1
        except asyncio.TimeoutError:  # includes aiohttp's pool-wait ConnectionTimeoutError
            outcome.ended["timeout"] += 1
        except aiohttp.ClientError as exc:
            outcome.ended[type(exc).__name__] += 1

    due = loop.time()
    for i in range(int(rate * duration)):
        due += arrivals.expovariate(rate)
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(urls[i % len(urls)])))
        outcome.offered += 1
    _, pending = await asyncio.wait(tasks, timeout=drain)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    outcome.ended["cancelled"] += len(pending)
    return outcome
