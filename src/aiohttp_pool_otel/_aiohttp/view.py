"""Read-only access to one connector's private pool state.

Called from the loop thread and from the metric reader's thread. On the reader's
thread only atomic copies are taken (a set or dict copy is atomic under the GIL;
iterating a dict the loop is changing is not), and a read that races a change is
retried.
"""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple, Optional

from aiohttp import BaseConnector
from aiohttp.connector import _TransportPlaceholder

from .._records import HostId


class PoolRead(NamedTuple):
    """aiohttp's pool at one moment."""

    held: list[Any]  # protocols requests hold (dial placeholders excluded)
    idle: dict[Any, int]  # pooled connections per key
    waiting: dict[Any, int]  # queued acquisitions per key
    limit: int
    limit_per_host: int


def identify(key: Any) -> HostId:
    """``(host, port, scheme)`` of an aiohttp ``ConnectionKey``: never its repr, which
    holds proxy credentials. Anything else (a test's stand-in) is nobody we can name."""
    host = getattr(key, "host", None)
    if host is None:
        return ("_UNKNOWN", None, "")
    port = getattr(key, "port", None)
    scheme = "https" if getattr(key, "is_ssl", False) else "http"
    return (str(host), port if isinstance(port, int) else None, scheme)


class PoolView:
    """What the plugin reads of one ``BaseConnector``."""

    __slots__ = ("_connector", "identify")

    def __init__(self, connector: BaseConnector) -> None:
        self._connector = connector
        self.identify = identify

    @property
    def connector(self) -> BaseConnector:
        """The connector read."""
        return self._connector

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The connector's event loop."""
        loop: asyncio.AbstractEventLoop = self._connector._loop
        return loop

    @property
    def closed(self) -> bool:
        """Whether the connector is closed."""
        return bool(self._connector._closed)

    def held_protocols(self) -> list[Any]:
        """Protocols held by requests now (a copy; placeholders of dials included)."""
        return list(self._connector._acquired.copy())

    def open_protocols(self) -> set[Any]:
        """Every protocol aiohttp holds or pools now (loop thread)."""
        connector = self._connector
        alive = set(connector._acquired)
        for conns in connector._conns.values():
            alive.update(proto for proto, _ in conns)
        return alive

    def open_count(self) -> int:
        """How many connections aiohttp holds or pools now (loop thread)."""
        connector = self._connector
        held = sum(1 for p in connector._acquired if not isinstance(p, _TransportPlaceholder))
        return held + sum(len(c) for c in connector._conns.values())

    @staticmethod
    def is_connected(protocol: Any) -> bool:
        """Whether ``protocol``'s transport is still open (aiohttp drops it on close)."""
        return getattr(protocol, "transport", None) is not None

    def read(self) -> PoolRead:
        """The pool now (any thread)."""
        connector = self._connector
        for _ in range(5):
            try:
                idle = {k: len(v) for k, v in connector._conns.copy().items()}
                waiting = {k: len(v) for k, v in connector._waiters.copy().items()}
                held = list(connector._acquired.copy())
                return PoolRead(held, idle, waiting, connector._limit, connector._limit_per_host)
            except RuntimeError:  # a deque or OrderedDict changed while copied
                continue
        return PoolRead([], {}, {}, connector.limit, connector.limit_per_host)

    def blocking_limit(self) -> str:
        """Which limit makes an acquisition queue now."""
        connector = self._connector
        if connector._limit and len(connector._acquired) >= connector._limit:
            return "limit"
        return "limit_per_host"

    def queue_depth(self, key: Any) -> int:
        """Acquisitions already queued for ``key``."""
        return len(self._connector._waiters.get(key, ()))

    def is_pooled_last(self, key: Any, protocol: Any) -> bool:
        """Whether ``protocol`` is the newest idle entry of ``key``: every version pools
        a connection by appending it to ``_conns[key]``."""
        conns = self._connector._conns.get(key)
        return bool(conns) and conns[-1][0] is protocol  # type: ignore[index]

    @staticmethod
    def peer(protocol: Any) -> Optional[tuple[str, int]]:
        """The address a new connection was dialled to, if the transport says."""
        transport = getattr(protocol, "transport", None)
        raw = transport.get_extra_info("peername") if transport is not None else None
        if isinstance(raw, tuple) and len(raw) >= 2:
            return (str(raw[0]), int(raw[1]))
        return None

    @staticmethod
    def local_port(protocol: Any) -> Optional[int]:
        """The connection's own local port (TCP), if the transport says: it tells one
        connection from another on the spans, as ``ss`` and the server's logs do."""
        transport = getattr(protocol, "transport", None)
        raw = transport.get_extra_info("sockname") if transport is not None else None
        if isinstance(raw, tuple) and len(raw) >= 2 and isinstance(raw[1], int):
            return raw[1]
        return None
