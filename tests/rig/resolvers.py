"""Real aiohttp resolvers (its ``AbstractResolver`` interface) that answer 127.0.0.1 for
any name: many distinct host keys, or names only a test knows, reach one local server."""

from __future__ import annotations

import socket
from typing import Any

from aiohttp.abc import AbstractResolver


def loopback_answer(host: str, port: int) -> list[dict[str, Any]]:
    """What a resolver returns for ``host`` at 127.0.0.1 (aiohttp's ResolveResult, 3.10+:
    a dict)."""
    return [
        {"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET,
         "proto": 0, "flags": socket.AI_NUMERICHOST}
    ]  # fmt: skip


class LoopbackResolver(AbstractResolver):
    """Every name resolves to 127.0.0.1 at once."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[dict[str, Any]]:
        return loopback_answer(host, port)

    async def close(self) -> None:
        pass
