"""Which aiohttp this is, and whether it has every internal the adapter uses."""

from __future__ import annotations

import inspect

import aiohttp
from aiohttp import BaseConnector, ClientResponse
from aiohttp.connector import Connection
from aiohttp.streams import StreamReader

AIOHTTP_VERSION: tuple[int, ...] = tuple(
    int(p) for p in aiohttp.__version__.split(".")[:3] if p.isdigit()
)
# 3.10.11+ queues in a method of its own; older versions queue inline in connect(),
# which must then be hooked to see a wait.
HAS_WAIT_METHOD = hasattr(BaseConnector, "_wait_for_available_connection")
# 3.10.11+ passes should_close=True only from Connection.close(); older versions pass
# the protocol's own should_close from Connection.release() too.
EXPLICIT_SHOULD_CLOSE = AIOHTTP_VERSION >= (3, 10, 11)

# From 3.10.11 aiohttp's request timer lets a cancellation of the caller's own through
# after it fired (it compares the task's cancellation count); 3.9 turns any into
# TimeoutError.
TIMER_COUNTS_CANCELS = "_cancelling" in getattr(
    getattr(aiohttp.helpers, "TimerContext", None), "__slots__", ()
)

_EXPECTED = {
    (BaseConnector, "connect"): ("req", "traces", "timeout"),
    (BaseConnector, "_release"): ("key", "protocol", "should_close"),
    (BaseConnector, "_close"): (),
    (BaseConnector, "_cleanup"): (),
    (BaseConnector, "_available_connections"): ("key",),
    (aiohttp.TCPConnector, "_create_connection"): ("req", "traces", "timeout"),
    (aiohttp.TCPConnector, "_resolve_host"): ("host", "port"),
    (ClientResponse, "_response_eof"): (),
    (ClientResponse, "release"): (),
    (ClientResponse, "close"): (),
    (ClientResponse, "__del__"): (),
    (Connection, "release"): (),
    (Connection, "close"): (),
    (Connection, "__del__"): (),
    (StreamReader, "is_eof"): (),
}


def missing_internals() -> list[str]:
    """The private aiohttp names the adapter needs and does not find (empty: supported)."""
    missing = []
    for (cls, name), params in _EXPECTED.items():
        method = getattr(cls, name, None)
        try:
            found = inspect.signature(method).parameters if callable(method) else {}
        except (TypeError, ValueError):
            found = {}
        if not callable(method) or not set(params) <= set(found):
            missing.append(f"{cls.__name__}.{name}({', '.join(params)})")
    return missing


MISSING_INTERNALS = missing_internals()
