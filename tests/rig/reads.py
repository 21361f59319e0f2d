"""Requests read to the end, the way most tests make them."""

from __future__ import annotations

import asyncio

import aiohttp


async def get_text(session: aiohttp.ClientSession, url: str) -> str:
    """GET ``url`` and return its body as text (the response is closed after)."""
    async with session.get(url) as resp:
        return await resp.text()


async def get_body(session: aiohttp.ClientSession, url: str) -> bytes:
    """GET ``url`` and return its body as bytes (the response is closed after)."""
    async with session.get(url) as resp:
        return await resp.read()


async def get_bodies(session: aiohttp.ClientSession, url: str, count: int) -> list[bytes]:
    """``count`` GETs of ``url`` at once; their bodies in order."""
    return list(await asyncio.gather(*(get_body(session, url) for _ in range(count))))
