"""Every private aiohttp name the package touches, in one table, resolved once.

Nothing here reads aiohttp at import time: :func:`support` looks each name up the
first time the plugin is used (the first instrumented connector, ``instrument()``),
warns once per process about those it does not find, and says which telemetry is
off. A missing internal never breaks a request: the hooks pass straight to aiohttp
for what they cannot see, and what they cannot see is not reported at all, rather
than reported wrong.

Instance attributes are found without an instance: aiohttp assigns them in its
``__init__``, so their names are in that function's ``co_names``.
"""

from __future__ import annotations

import warnings
from types import CodeType
from typing import Any, Callable, NamedTuple, Optional

import aiohttp

AIOHTTP_VERSION: tuple[int, ...] = tuple(
    int(p) for p in aiohttp.__version__.split(".")[:3] if p.isdigit()
)
# aiohttp 3.10.11 moved queueing into a method of its own and made Connection.release()
# stop passing the protocol's own should_close.
QUEUE_METHOD_SINCE = (3, 10, 11)

# The telemetry each internal feeds; a missing internal switches its feature off.
HOOKS = "hooks"
WAIT = "wait"
DNS = "dns"
EOF_TEST = "eof_test"
EXPIRY = "expiry"
FEATURES: dict[str, str] = {
    HOOKS: "all pool telemetry of the instrumented connectors and the instrumentor "
    "(no hook is installed; create_pool_trace_config() still works)",
    WAIT: "pool-wait telemetry (aiohttp.connection.wait spans, wait_time, the queued and "
    "timeouts counters, the pending_requests gauge)",
    DNS: "DNS telemetry (aiohttp.dns.resolve spans, dns.lookup.duration)",
    EOF_TEST: "the two-read EOF test (EOF releases are named by the stack walk instead: "
    "the same reasons, a few microseconds more each)",
    EXPIRY: "prompt counting of keep-alive expiry (those closes are counted at the next "
    "dial, collection or statistics() instead)",
}


def _conn() -> Any:
    return aiohttp.BaseConnector


def _tcp() -> Any:
    return aiohttp.TCPConnector


def _response() -> Any:
    return aiohttp.ClientResponse


def _connection() -> Any:
    return aiohttp.connector.Connection


def _proto() -> Any:
    from aiohttp.client_proto import ResponseHandler

    return ResponseHandler


def _timer() -> Any:
    return getattr(aiohttp.helpers, "TimerContext", None)


def _method(owner: Callable[[], Any], name: str) -> Callable[[], Any]:
    return lambda: getattr(owner(), name, None) if callable(getattr(owner(), name, None)) else None


def _code(owner: Callable[[], Any], name: str) -> Callable[[], Any]:
    def find() -> Optional[CodeType]:
        code = getattr(getattr(owner(), name, None), "__code__", None)
        return code if isinstance(code, CodeType) else None

    return find


def _assigned(owner: Callable[[], Any], name: str) -> Callable[[], Any]:
    def find() -> Optional[str]:
        code = getattr(getattr(owner(), "__init__", None), "__code__", None)
        return name if code is not None and name in code.co_names else None

    return find


def _local(owner: Callable[[], Any], method: str, *names: str) -> Callable[[], Any]:
    def find() -> Optional[CodeType]:
        code: Optional[CodeType] = _code(owner, method)()
        if code is None or not set(names) <= set(code.co_varnames + code.co_cellvars):
            return None
        return code

    return find


def _module_class(name: str) -> Callable[[], Any]:
    return lambda: getattr(aiohttp.connector, name, None)


class Internal(NamedTuple):
    """One private aiohttp name: where it is, which aiohttp has it, what needs it."""

    name: str
    versions: tuple[tuple[int, ...], Optional[tuple[int, ...]]]  # [since, before)
    feature: str
    find: Callable[[], Any]  # its value (a code object, a class...), None when missing

    def used_here(self, version: tuple[int, ...] = AIOHTTP_VERSION) -> bool:
        """Whether the adapter uses it on aiohttp ``version``."""
        since, before = self.versions
        return since <= version and (before is None or version < before)


ANY = ((3, 9), None)
NEW = (QUEUE_METHOD_SINCE, None)
OLD = ((3, 9), QUEUE_METHOD_SINCE)

TABLE: tuple[Internal, ...] = (
    # The pool itself: the release hook and the books it keeps.
    Internal("BaseConnector._release", ANY, HOOKS, _method(_conn, "_release")),
    Internal("BaseConnector._acquired", ANY, HOOKS, _assigned(_conn, "_acquired")),
    Internal("BaseConnector._conns", ANY, HOOKS, _assigned(_conn, "_conns")),
    Internal("BaseConnector._closed", ANY, HOOKS, _assigned(_conn, "_closed")),
    Internal("BaseConnector._loop", ANY, HOOKS, _assigned(_conn, "_loop")),
    Internal("BaseConnector._close", ANY, HOOKS, _method(_conn, "_close")),
    Internal("BaseConnector._create_connection", ANY, HOOKS, _method(_tcp, "_create_connection")),
    Internal("aiohttp.connector._TransportPlaceholder", ANY, HOOKS,
             _module_class("_TransportPlaceholder")),
    # Release reasons: the aiohttp method that asked, found on the stack.
    Internal("ClientResponse._response_eof", ANY, HOOKS, _code(_response, "_response_eof")),
    Internal("ClientResponse.release", ANY, HOOKS, _code(_response, "release")),
    Internal("ClientResponse.close", ANY, HOOKS, _code(_response, "close")),
    Internal("ClientResponse.__del__", ANY, HOOKS, _code(_response, "__del__")),
    Internal("Connection.__del__", ANY, HOOKS, _code(_connection, "__del__")),
    Internal("BaseConnector.__del__", ANY, HOOKS, _code(_conn, "__del__")),
    Internal("ResponseHandler._payload", NEW, EOF_TEST, _assigned(_proto, "_payload")),
    # Queueing, and whether a failed wait timed out.
    Internal("BaseConnector._waiters", ANY, WAIT, _assigned(_conn, "_waiters")),
    Internal("BaseConnector._wait_for_available_connection", NEW, WAIT,
             _method(_conn, "_wait_for_available_connection")),
    Internal("BaseConnector._available_connections", OLD, WAIT,
             _method(_conn, "_available_connections")),
    Internal("BaseConnector.connect: frame locals req, timeout", ANY, WAIT,
             _local(_conn, "connect", "req", "timeout")),
    Internal("ClientSession._request: frame local timer", ANY, WAIT,
             _local(lambda: aiohttp.ClientSession, "_request", "timer")),
    Internal("TimerContext._cancelled", ANY, WAIT, _assigned(_timer, "_cancelled")),
    Internal("TimerContext._cancelling", NEW, WAIT, _assigned(_timer, "_cancelling")),
    # DNS.
    Internal("TCPConnector._resolve_host", ANY, DNS, _method(_tcp, "_resolve_host")),
    Internal("TCPConnector._use_dns_cache", ANY, DNS, _assigned(_tcp, "_use_dns_cache")),
    Internal("TCPConnector._cached_hosts", ANY, DNS, _assigned(_tcp, "_cached_hosts")),
    # Keep-alive expiry.
    Internal("BaseConnector._cleanup", ANY, EXPIRY, _method(_conn, "_cleanup")),
)  # fmt: skip

BY_NAME = {internal.name: internal for internal in TABLE}


class Support:
    """What this aiohttp lets the plugin do, and the internals it found."""

    def __init__(self, found: dict[str, Any], missing: list[Internal]) -> None:
        self.found = found
        self.missing = missing
        off = {internal.feature for internal in missing}
        self.hooks = HOOKS not in off
        self.wait = self.hooks and WAIT not in off
        self.dns = self.hooks and DNS not in off
        # aiohttp < 3.10.11 queues inside connect(), which must then be hooked to see it;
        # it also passes a protocol's own should_close from Connection.release(), so the
        # two-read EOF test cannot tell an EOF release from an explicit one there.
        self.queue_method = AIOHTTP_VERSION >= QUEUE_METHOD_SINCE
        self.eof_test = self.hooks and EOF_TEST not in off and self.queue_method
        self.expiry = self.hooks and EXPIRY not in off

    def warning(self) -> Optional[str]:
        """The one warning about what is missing, or ``None``."""
        if not self.missing:
            return None
        names = ", ".join(i.name for i in self.missing)
        features = sorted({i.feature for i in self.missing}, key=list(FEATURES).index)
        off = "; ".join(FEATURES[f] for f in features)
        return (
            f"aiohttp-pool-otel: aiohttp {aiohttp.__version__} has no {names}. "
            f"Switched off: {off}. Requests are not affected."
        )


def resolve() -> Support:
    """Look every internal up now (no warning; see :func:`support`)."""
    found: dict[str, Any] = {}
    missing: list[Internal] = []
    for internal in TABLE:
        if not internal.used_here():
            continue
        try:
            value = internal.find()
        except Exception:
            value = None
        if value is None:
            missing.append(internal)
        else:
            found[internal.name] = value
    return Support(found, missing)


_resolved: list[Support] = []
_listeners: list[Callable[[Support], None]] = []


def support() -> Support:
    """This aiohttp's support, resolved (and warned about) once per process."""
    if not _resolved:
        resolved = resolve()
        message = resolved.warning()
        if message is not None:
            warnings.warn(message, RuntimeWarning, stacklevel=3)
        _resolved.append(resolved)
        for listener in _listeners:
            listener(resolved)
    return _resolved[0]


def on_resolved(listener: Callable[[Support], None]) -> None:
    """Have ``listener`` called with the support once it is resolved (at once if it is)."""
    _listeners.append(listener)
    if _resolved:
        listener(_resolved[0])


def forget() -> None:
    """Resolve again at next use (tests that take an internal away)."""
    _resolved.clear()
