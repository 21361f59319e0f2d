"""Waiting without fixed sleeps: quiet points and bounded polls on the running loop."""

from __future__ import annotations

import asyncio
from typing import Callable


async def quiet_point(turns: int = 5) -> None:
    """Let the loop run the callbacks that turn GC and transport facts into telemetry."""
    for _ in range(turns):
        await asyncio.sleep(0)


async def wait_until(
    predicate: Callable[[], bool], timeout: float = 15.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` on the loop until it holds; fail after ``timeout`` (generous)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)
