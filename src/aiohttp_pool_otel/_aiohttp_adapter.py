"""The one module that touches aiohttp's private internals.

aiohttp has no signal for releases and no public pool state, so this module
overrides a few private ``BaseConnector`` methods and injects a ``ClientResponse``
subclass. It passes plain facts to :class:`~aiohttp_pool_otel._pool.PoolInstrumentation`
and never lets telemetry change what aiohttp does:

* every override calls ``super()`` with the same arguments and returns its result;
* nothing is awaited between aiohttp handing back a connection and our ``return``
  (a cancellation there would drop the connection);
* classification reads flags only, and emission happens after ``super()._release``.

Names used, all present from aiohttp 3.9 to 3.14 (see the README's compatibility
table): ``BaseConnector.connect / _create_connection / _release / _close / _cleanup /
_wait_for_available_connection (3.10.11+) / _available_connections / _acquired /
_conns / _waiters / _limit / _limit_per_host / _force_close / _closed``,
``Connection._key / _protocol``, ``ClientResponse.start / __del__ / _closed /
_released / status`` (and ``release / close`` on aiohttp < 3.10.11).

One attribute is added to aiohttp's objects: ``ResponseHandler._pool_otel_record``,
our record of that connection. It lives and dies with the protocol, so the
bookkeeping is bounded by the pool, and the reuse path needs no lookup.
"""

from __future__ import annotations

import asyncio
import inspect
import warnings
import weakref
from collections.abc import Coroutine
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Optional

import aiohttp
from aiohttp import BaseConnector, ClientResponse

from ._pool import (
    Acquisition,
    HostId,
    Lease,
    PoolInstrumentation,
    TrackedConnection,
    report_internal_error,
)
from .semconv import (
    BODY_PHASE,
    CLOSE_REASON,
    CLOSED,
    EOF_REASON,
    ERROR_REASON,
    GC_REASON,
    HEADERS_PHASE,
    POOLED,
    RELEASE_REASON_RELEASE,
    ReleasePhase,
    ReleaseReason,
)

if TYPE_CHECKING:
    from aiohttp.client_proto import ResponseHandler
    from aiohttp.client_reqrep import ClientRequest, ConnectionKey
    from aiohttp.connector import Connection
    from aiohttp.tracing import Trace

AIOHTTP_VERSION: tuple[int, ...] = tuple(
    int(p) for p in aiohttp.__version__.split(".")[:3] if p.isdigit()
)
# 3.10.11+ queues in a method of its own; 3.9 queues inline in connect().
HAS_WAIT_METHOD = hasattr(BaseConnector, "_wait_for_available_connection")



def missing_internals() -> list[str]:
    """The private aiohttp names this adapter needs and does not find (empty: supported)."""
    from aiohttp.connector import Connection

    expected = {
        (BaseConnector, "connect"): ("req", "traces", "timeout"),
        (BaseConnector, "_create_connection"): ("req", "traces", "timeout"),
        (BaseConnector, "_release"): ("key", "protocol", "should_close"),
        (BaseConnector, "_close"): (),
        (BaseConnector, "_cleanup"): (),
        (BaseConnector, "_available_connections"): ("key",),
        (ClientResponse, "start"): ("connection",),
        (ClientResponse, "release"): (),
        (ClientResponse, "close"): (),
        (Connection, "release"): (),
    }
    missing = []
    for (cls, name), params in expected.items():
        method = getattr(cls, name, None)
        try:
            found = inspect.signature(method).parameters if callable(method) else {}
        except (TypeError, ValueError):
            found = {}
        if not callable(method) or not set(params) <= set(found):
            missing.append(f"{cls.__name__}.{name}({', '.join(params)})")
    for cls, attr in ((ClientResponse, "_closed"), (ClientResponse, "status")):
        if not hasattr(cls, attr):
            missing.append(f"{cls.__name__}.{attr}")
    return missing


MISSING_INTERNALS = missing_internals()

# The acquisition in progress in this task, once it left the fast path. Set by the
# queueing and dialling overrides, read and cleared by connect(): they all run in
# the request's task, so they share its context.
_ACQUISITION: ContextVar[Optional[Acquisition]] = ContextVar(
    "aiohttp_pool_otel_acquisition", default=None
)


_RECORD = "_pool_otel_record"


def record_of(protocol: Any) -> Optional[TrackedConnection]:
    """Our record of an aiohttp protocol, if it was dialled by an instrumented connector."""
    return getattr(protocol, _RECORD, None)


def identify(key: Any) -> HostId:
    """``(host, port, scheme)`` of an aiohttp ``ConnectionKey``: never its repr, which
    holds proxy credentials."""
    return (str(key.host), key.port, "https" if key.is_ssl else "http")


# --- the injected response class --------------------------------------------


class _TrackedResponse(ClientResponse):
    """Binds the response to its connection's record; marks garbage collection."""

    _pool_otel_tracked = True
    _pool_otel_explicit: Optional[ReleaseReason] = None
    _pool_otel_gc = False

    def start(self, connection: Connection) -> Coroutine[Any, Any, ClientResponse]:
        record = getattr(connection._protocol, _RECORD, None)
        if record is not None:
            record.response = weakref.ref(self)
        return super().start(connection)

    def __del__(self, *args: Any) -> None:
        self._pool_otel_gc = True
        super().__del__(*args)


class _LegacyTrackedResponse(_TrackedResponse):
    """aiohttp < 3.10.11 passes ``should_close=protocol.should_close`` from
    ``Connection.release()``, so release and close cannot be told apart at ``_release``:
    record which the response called first."""

    def release(self) -> Any:
        if self._pool_otel_explicit is None:
            self._pool_otel_explicit = RELEASE_REASON_RELEASE
        return super().release()

    def close(self) -> None:
        if self._pool_otel_explicit is None:
            self._pool_otel_explicit = CLOSE_REASON
        super().close()


_BASE_TRACKED: type[_TrackedResponse] = (
    _TrackedResponse if AIOHTTP_VERSION >= (3, 10, 11) else _LegacyTrackedResponse
)


_TRACKED: dict[type[ClientResponse], type[ClientResponse]] = {ClientResponse: _BASE_TRACKED}


def tracked_response_class(cls: type[ClientResponse]) -> type[ClientResponse]:
    """The tracked subclass of a session's response class (one per class, cached)."""
    tracked = _TRACKED.get(cls)
    if tracked is None:
        if issubclass(cls, _TrackedResponse):
            tracked = cls
        else:
            tracked = type(cls.__name__, (_BASE_TRACKED, cls), {"__module__": cls.__module__})
        _TRACKED[cls] = tracked
    return tracked


def classify(
    lease: Lease, should_close: bool
) -> tuple[ReleaseReason, Optional[ReleasePhase]]:
    """Why the connection of ``lease`` is being released, read from its response's flags."""
    ref = lease.response
    if ref is None:  # no response was started: send failed, or direct connector use
        return (ERROR_REASON if should_close else RELEASE_REASON_RELEASE), None
    resp = ref()
    # A cleared weak reference means the cycle collector took the response.
    if resp is None or resp._pool_otel_gc:
        return GC_REASON, None
    if resp._pool_otel_explicit is not None:  # aiohttp < 3.10.11
        return resp._pool_otel_explicit, None
    if resp._released:  # release() or close(), directly or by aiohttp for the caller
        return (CLOSE_REASON if should_close else RELEASE_REASON_RELEASE), None
    if resp._closed:
        # status is assigned after start() registers the EOF callback, so None here
        # means EOF came with the headers, before session.request() returned.
        phase = HEADERS_PHASE if resp.status is None else BODY_PHASE
        return EOF_REASON, phase
    return ERROR_REASON, None


# --- the connector mixin ----------------------------------------------------


class InstrumentedConnectorMixin(BaseConnector):
    """Overrides of ``BaseConnector`` that report to ``self._pool_otel``."""

    _pool_otel: PoolInstrumentation
    _pool_otel_method: Optional[str] = None  # of the latest connect(): see there

    def _pool_otel_read_state(
        self,
    ) -> tuple[int, dict[Any, int], dict[Any, int], int, int]:
        """(acquired incl. dialling, idle per key, waiting per key, limit, limit_per_host).

        Called from the metric reader's thread: dict copies are atomic under the GIL,
        iteration of a dict the loop is changing is not.
        """
        for _ in range(5):
            try:
                idle = {k: len(v) for k, v in self._conns.copy().items()}
                waiting = {k: len(v) for k, v in self._waiters.copy().items()}
                return len(self._acquired), idle, waiting, self._limit, self._limit_per_host
            except RuntimeError:
                continue
            except AttributeError:  # an aiohttp whose internals moved: limits only
                break
        return 0, {}, {}, self.limit, self.limit_per_host

    def _pool_otel_blocking_limit(self) -> str:
        if self._limit and len(self._acquired) >= self._limit:
            return "limit"
        return "limit_per_host"

    def _pool_otel_start_wait(self, key: ConnectionKey) -> Optional[Acquisition]:
        pool = self._pool_otel
        acq = pool.new_acquisition(key, self._pool_otel_method)
        if acq is not None:
            _ACQUISITION.set(acq)
            pool.wait_started(
                acq, len(self._waiters.get(key, ())), self._pool_otel_blocking_limit()
            )
        return acq

    async def connect(
        self, req: ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> Connection:
        pool = self._pool_otel
        method: Optional[str] = None
        try:
            cls = req.response_class
            req.response_class = _TRACKED.get(cls) or tracked_response_class(cls)
            # For _wait_for_available_connection, which is not given the request: aiohttp
            # calls it before connect() first suspends, so no other task can overwrite
            # this in between (a ContextVar would be exact too, at 5x the cost).
            self._pool_otel_method = method = req.method
            if not HAS_WAIT_METHOD:
                # aiohttp 3.9 decides to queue synchronously, with exactly this test.
                key = req.connection_key
                if self._available_connections(key) <= 0 or key in self._waiters:
                    self._pool_otel_start_wait(key)
        except Exception:
            report_internal_error("connect")
        try:
            conn = await super().connect(req, traces, timeout)
        except BaseException as exc:
            acq = _ACQUISITION.get()
            if acq is not None:
                _ACQUISITION.set(None)
                pool.acquire_failed(acq, exc, isinstance(exc, asyncio.TimeoutError))
            raise
        # No await from here on: the connection must reach the caller.
        acq = _ACQUISITION.get()
        if acq is not None:
            _ACQUISITION.set(None)
            pool.wait_finished(acq)  # aiohttp 3.9: the wait ends when a pooled one is handed out
        proto = conn._protocol
        known = getattr(proto, _RECORD, None)
        record = pool.acquired(conn._key, proto, known, acq, method)
        if record is not known and record is not None:
            setattr(proto, _RECORD, record)
        return conn

    async def _wait_for_available_connection(
        self, key: ConnectionKey, traces: list[Trace]
    ) -> None:
        acq = _ACQUISITION.get()
        if acq is None:
            acq = self._pool_otel_start_wait(key)
        await super()._wait_for_available_connection(key, traces)
        if acq is not None:
            self._pool_otel.wait_finished(acq)

    async def _create_connection(
        self, req: ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> ResponseHandler:
        pool = self._pool_otel
        acq = _ACQUISITION.get()
        if acq is None:
            acq = pool.new_acquisition(req.connection_key, req.method)
            if acq is None:
                return await super()._create_connection(req, traces, timeout)
            _ACQUISITION.set(acq)
        elif acq.waiting:  # aiohttp 3.9: queueing ended where dialling begins
            pool.wait_finished(acq)
        token = pool.create_started(acq)
        try:
            proto = await super()._create_connection(req, traces, timeout)
        finally:
            pool.create_detach(acq, token)
        peer = None
        try:
            transport = proto.transport
            raw = transport.get_extra_info("peername") if transport is not None else None
            if isinstance(raw, tuple) and len(raw) >= 2:
                peer = (str(raw[0]), int(raw[1]))
        except Exception:
            report_internal_error("peername")
        record = pool.create_finished(acq, peer)
        if record is not None:
            setattr(proto, _RECORD, record)
        return proto

    def _release(
        self,
        key: ConnectionKey,
        protocol: ResponseHandler,
        *,
        should_close: bool = False,
    ) -> None:
        # Not ours: a proxy CONNECT tunnel, a second release of one protocol in a GC
        # pass, or a release after the connector closed.
        lease = self._pool_otel.leases.pop(protocol, None)
        if lease is None:
            return super()._release(key, protocol, should_close=should_close)
        reason, phase = ERROR_REASON, None
        try:
            reason, phase = classify(lease, should_close)
        except Exception:
            report_internal_error("classify")
        try:
            super()._release(key, protocol, should_close=should_close)
        finally:
            # What aiohttp did, not what it would do: every version pools a connection
            # by appending it to _conns[key], so it was pooled iff it is last there.
            outcome = CLOSED
            try:
                conns = self._conns.get(key)
                if conns and conns[-1][0] is protocol:
                    outcome = POOLED
            except Exception:
                report_internal_error("outcome")
            self._pool_otel.released(lease, reason, phase, outcome)

    def _close(self, *args: Any, **kwargs: Any) -> Any:
        pool: Optional[PoolInstrumentation] = getattr(self, "_pool_otel", None)
        if pool is None or self._closed:
            return super()._close(*args, **kwargs)
        leases: dict[Any, Lease] = {}
        idle: list[tuple[Any, Optional[TrackedConnection]]] = []
        try:
            leases, pool.leases = pool.leases, {}
            idle = [
                (key, record_of(proto)) for key, conns in self._conns.items() for proto, _ in conns
            ]
        except Exception:
            report_internal_error("close")
        try:
            return super()._close(*args, **kwargs)
        finally:
            pool.connector_closed(leases, idle)

    def _cleanup(self) -> None:
        before: list[tuple[Any, Any]] = []
        try:
            before = [(key, proto) for key, conns in self._conns.items() for proto, _ in conns]
        except Exception:
            report_internal_error("cleanup")
        super()._cleanup()
        if before:
            try:
                alive = {id(proto) for conns in self._conns.values() for proto, _ in conns}
                gone = [
                    (key, record_of(proto)) for key, proto in before if id(proto) not in alive
                ]
                if gone:
                    self._pool_otel.idle_closed(gone)
            except Exception:
                report_internal_error("cleanup")


class PublicOnlyConnectorMixin(BaseConnector):
    """Stand-in for :class:`InstrumentedConnectorMixin` on an aiohttp whose internals
    this package does not know: no overrides, so aiohttp runs untouched, and the
    metrics report the limits, which are public."""

    _pool_otel: PoolInstrumentation

    def _pool_otel_read_state(
        self,
    ) -> tuple[int, dict[Any, int], dict[Any, int], int, int]:
        return 0, {}, {}, self.limit, self.limit_per_host


def connector_mixin() -> type[BaseConnector]:
    """The mixin for this aiohttp: full instrumentation, or limits only with a warning."""
    if not MISSING_INTERNALS:
        return InstrumentedConnectorMixin
    warnings.warn(
        f"aiohttp-pool-otel does not support aiohttp {aiohttp.__version__}: "
        f"{', '.join(MISSING_INTERNALS)} not found. Pool spans and per-request metrics "
        "are disabled; only the connector limits are reported.",
        RuntimeWarning,
        stacklevel=2,
    )
    return PublicOnlyConnectorMixin
