"""Read-only access to one connector's private pool state.

Called from the loop thread and from the metric reader's thread. On the reader's
thread only atomic copies are taken (a set or dict copy is atomic under the GIL;
iterating a dict the loop is changing is not), and a read that races a change is
retried.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, NamedTuple, Optional

from aiohttp import BaseConnector

from .._records import HostId
from .internals import Support, on_resolved

# aiohttp's stand-in for a connection being dialled, found at first use.
_placeholders: list[type] = []
# Whether aiohttp's queue can be read (resolved at first use too).
_queue_visible: list[bool] = [False]


def _learn(support: Support) -> None:
    placeholder = support.found.get("aiohttp.connector._TransportPlaceholder")
    if placeholder is not None:
        _placeholders[:] = [placeholder]
    _queue_visible[0] = support.wait


on_resolved(_learn)


def pooled_last(connector: Any, key: Any, protocol: Any) -> bool:
    """Whether aiohttp just pooled ``protocol``: what it did, not what it would do. Every
    version pools a connection by appending it to ``_conns[key]``, so it was pooled iff it
    is last there."""
    conns = connector._conns.get(key)
    if conns:  # not bool(conns): a builtin call on every request
        return conns[-1][0] is protocol
    return False


class PoolRead(NamedTuple):
    """aiohttp's pool at one moment."""

    acquired: list[Any]  # aiohttp's _acquired: protocols requests hold, dial placeholders
    idle: dict[Any, int]  # pooled connections per key
    waiting: Optional[dict[Any, int]]  # queued acquisitions per key; None: not visible
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
    """What the plugin reads of one ``BaseConnector``.

    It holds the connector weakly: the connector holds the plugin's state, which
    holds this view, and a strong reference back would make every connector a
    reference cycle that only the cyclic GC frees (a session per request would then
    leave its connector and state behind until the next collection). A view whose
    connector is gone reads as a closed, empty pool.
    """

    __slots__ = ("_connector", "identify", "loop", "sees_waits")

    def __init__(self, connector: BaseConnector) -> None:
        self._connector = weakref.ref(connector)
        self.identify = identify
        # Whether this aiohttp lets the plugin see acquisitions queue.
        self.sees_waits = _queue_visible[0]
        # The connector's loop never changes: kept here, read on every release.
        self.loop: asyncio.AbstractEventLoop = connector._loop

    @property
    def connector(self) -> Optional[BaseConnector]:
        """The connector read, ``None`` once it is garbage-collected."""
        return self._connector()

    @property
    def closed(self) -> bool:
        """Whether the connector is closed (or gone)."""
        connector = self._connector()
        return connector is None or bool(connector._closed)

    def held_protocols(self) -> list[Any]:
        """Protocols held by requests now (a copy; placeholders of dials included)."""
        connector = self._connector()
        return [] if connector is None else list(connector._acquired.copy())

    def is_held(self, protocol: Any) -> bool:
        """Whether a request holds ``protocol`` now (loop thread)."""
        connector = self._connector()
        return connector is not None and protocol in connector._acquired

    def open_protocols(self) -> set[Any]:
        """Every protocol aiohttp holds or pools now (loop thread)."""
        connector = self._connector()
        if connector is None:
            return set()
        alive = set(connector._acquired)
        for conns in connector._conns.values():
            alive.update(proto for proto, _ in conns)
        return alive

    def open_count(self) -> int:
        """How many connections aiohttp holds or pools now (loop thread)."""
        connector = self._connector()
        if connector is None:
            return 0
        placeholder = tuple(_placeholders)
        held = sum(1 for p in connector._acquired if not isinstance(p, placeholder))
        return held + sum(len(c) for c in connector._conns.values())

    @staticmethod
    def is_connected(protocol: Any) -> bool:
        """Whether ``protocol``'s transport is still open (aiohttp drops it on close)."""
        return getattr(protocol, "transport", None) is not None

    def read(self) -> PoolRead:
        """The pool now (any thread)."""
        connector = self._connector()
        if connector is None:
            return PoolRead([], {}, {}, 0, 0)
        for _ in range(5):
            try:
                idle = {k: len(v) for k, v in connector._conns.copy().items()}
                waiting = self._waiting(connector)
                acquired = list(connector._acquired.copy())
                limits = connector.limit, connector.limit_per_host
                return PoolRead(acquired, idle, waiting, *limits)
            except RuntimeError:  # a deque or OrderedDict changed while copied
                continue
        return PoolRead([], {}, {}, connector.limit, connector.limit_per_host)

    def _waiting(self, connector: Any) -> Optional[dict[Any, int]]:
        if not self.sees_waits:
            return None
        return {k: len(v) for k, v in connector._waiters.copy().items()}

    def blocking_limit(self) -> str:
        """Which limit makes an acquisition queue now (loop thread, connector alive)."""
        connector: Any = self._connector()
        limit = connector.limit
        if limit and len(connector._acquired) >= limit:
            return "limit"
        return "limit_per_host"

    def queue_depth(self, key: Any) -> int:
        """Acquisitions already queued for ``key``."""
        connector: Any = self._connector()
        return len(connector._waiters.get(key, ())) if connector is not None else 0

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
