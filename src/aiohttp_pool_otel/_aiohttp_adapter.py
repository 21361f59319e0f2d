"""The one module that touches aiohttp's private internals.

aiohttp has no signal for releases and no public pool state, so this module
overrides a few private ``BaseConnector`` methods. It passes plain facts to
:class:`~aiohttp_pool_otel._pool.PoolInstrumentation` and never lets telemetry
change what aiohttp does:

* every override calls ``super()`` with the same arguments and returns its result;
* nothing is awaited between aiohttp handing back a connection and our ``return``
  (a cancellation there would drop the connection);
* classification only reads state, and emission happens after ``super()._release``.

The reuse path is kept lean on purpose: on aiohttp 3.10.11+ and without per-lease
options, ``connect()`` is aiohttp's own (no wrapper coroutine per request) and the
only work per request is in ``_release``. Who holds a connection is read from
aiohttp's ``_acquired`` when someone asks (statistics, metric collection).

Names used, all present from aiohttp 3.9 to 3.14 (see the README's compatibility
table): ``BaseConnector.connect / _create_connection / _release / _close / _cleanup /
_wait_for_available_connection (3.10.11+) / _available_connections / _acquired /
_conns / _waiters / _limit / _limit_per_host / _closed / _loop``,
``Connection._key / _protocol / release / close / __del__``,
``ClientResponse._response_eof / release / close / __del__``,
``ResponseHandler._payload`` and ``StreamReader.is_eof``.

One attribute is added to aiohttp's objects: ``ResponseHandler._pool_otel_record``,
our record of that connection. It lives and dies with the protocol, so the
bookkeeping is bounded by the pool, and the release path needs no lookup.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import sys
import warnings
import weakref
from contextvars import ContextVar
from types import CodeType
from typing import TYPE_CHECKING, Any, Optional

import aiohttp
from aiohttp import BaseConnector, ClientResponse
from aiohttp.connector import Connection
from aiohttp.streams import StreamReader

from ._pool import (
    Acquisition,
    HostId,
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
    from aiohttp.tracing import Trace

AIOHTTP_VERSION: tuple[int, ...] = tuple(
    int(p) for p in aiohttp.__version__.split(".")[:3] if p.isdigit()
)
# 3.10.11+ queues in a method of its own; 3.9 queues inline in connect().
HAS_WAIT_METHOD = hasattr(BaseConnector, "_wait_for_available_connection")
# 3.10.11+ passes should_close=True only from Connection.close(); older versions pass
# the protocol's own should_close from Connection.release() too.
EXPLICIT_SHOULD_CLOSE = AIOHTTP_VERSION >= (3, 10, 11)


def missing_internals() -> list[str]:
    """The private aiohttp names this adapter needs and does not find (empty: supported)."""
    expected = {
        (BaseConnector, "connect"): ("req", "traces", "timeout"),
        (BaseConnector, "_create_connection"): ("req", "traces", "timeout"),
        (BaseConnector, "_release"): ("key", "protocol", "should_close"),
        (BaseConnector, "_close"): (),
        (BaseConnector, "_cleanup"): (),
        (BaseConnector, "_available_connections"): ("key",),
        (ClientResponse, "_response_eof"): (),
        (ClientResponse, "release"): (),
        (ClientResponse, "close"): (),
        (ClientResponse, "__del__"): (),
        (Connection, "release"): (),
        (Connection, "close"): (),
        (Connection, "__del__"): (),
        (StreamReader, "is_eof"): (),
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
    return missing


MISSING_INTERNALS = missing_internals()

# An acquisition that queued, with a weak reference to its request: a dial that
# follows the wait in the same connect() continues it, and a stale one (the wait
# ended with a pooled connection) is never mistaken for a later request's, not even
# a redirect's, which runs in the same task with a request of its own.
_ACQUISITION: ContextVar[Optional[tuple[weakref.ReferenceType[Any], Acquisition]]] = (
    ContextVar("aiohttp_pool_otel_acquisition", default=None)
)


def _set_pending(req: Any, acq: Acquisition) -> None:
    # Not a ClientRequest (direct connector use): nothing to continue.
    with contextlib.suppress(TypeError):
        _ACQUISITION.set((weakref.ref(req), acq))


def _pending_acquisition(req: Any) -> Optional[Acquisition]:
    """Take the queued acquisition of ``req``, if any."""
    pending = _ACQUISITION.get()
    if pending is None:
        return None
    _ACQUISITION.set(None)
    return pending[1] if pending[0]() is req else None


_RECORD = "_pool_otel_record"


def record_of(protocol: Any) -> Optional[TrackedConnection]:
    """Our record of an aiohttp protocol, if it was dialled by an instrumented connector."""
    return getattr(protocol, _RECORD, None)


def identify(key: Any) -> HostId:
    """``(host, port, scheme)`` of an aiohttp ``ConnectionKey``: never its repr, which
    holds proxy credentials."""
    return (str(key.host), key.port, "https" if key.is_ssl else "http")


# --- release classification -------------------------------------------------

# Who asked for a release, by the code object of the aiohttp method on the stack.
_REASON_OF_CALLER: dict[CodeType, ReleaseReason] = {
    ClientResponse._response_eof.__code__: EOF_REASON,
    ClientResponse.release.__code__: RELEASE_REASON_RELEASE,
    ClientResponse.close.__code__: CLOSE_REASON,
    ClientResponse.__del__.__code__: GC_REASON,
    Connection.__del__.__code__: GC_REASON,
}
# From _release to the response method: Connection.release, _release_connection and
# the writer's done-callback lie between; a user's subclass override may add one.
_CALLER_DEPTH = 6
_current_task = asyncio.current_task


def eof_phase(loop: asyncio.AbstractEventLoop) -> ReleasePhase:
    """When the body of an EOF release ended: with the headers, or later."""
    # EOF that came with the headers is seen inside resp.start(), in the request's
    # task; EOF that came later is fed by the transport's read callback, in no task.
    return HEADERS_PHASE if _current_task(loop) is not None else BODY_PHASE


def classify_by_caller(
    should_close: bool, loop: asyncio.AbstractEventLoop
) -> tuple[ReleaseReason, Optional[ReleasePhase]]:
    """Every other release, told by the aiohttp method that asked for it, found on the
    stack above the ``_release`` that called this."""
    frame = sys._getframe(2)
    for _ in range(_CALLER_DEPTH):
        if frame is None:
            break
        reason = _REASON_OF_CALLER.get(frame.f_code)
        if reason is not None:
            return reason, (eof_phase(loop) if reason is EOF_REASON else None)
        frame = frame.f_back  # type: ignore[assignment]
    # No response asked: the send failed, or the connector is used directly.
    return (ERROR_REASON if should_close else RELEASE_REASON_RELEASE), None


def _caller_request() -> tuple[Any, Optional[str], Optional[float]]:
    """(request, its method, its connect timeout) of the connect() awaiting the caller.

    For the queueing override, which aiohttp does not give the request: read from the
    awaiting frame, on the slow path only.
    """
    try:
        local = sys._getframe(2).f_locals
        req, timeout = local.get("req"), local.get("timeout")
        method = getattr(req, "method", None)
        limit = getattr(timeout, "connect", None)
        return (
            req,
            method if isinstance(method, str) else None,
            float(limit) if isinstance(limit, (int, float)) else None,
        )
    except Exception:
        return None, None, None


def _timed_out(exc: BaseException, started: float, limit: Optional[float], now: float) -> bool:
    """Whether ``exc`` ended an acquisition because its connect timeout expired.

    Inside connect() the timeout arrives as a cancellation (aiohttp turns it into a
    TimeoutError further out): a cancellation at or past the deadline is the timeout.
    """
    if isinstance(exc, asyncio.TimeoutError):
        return True
    return isinstance(exc, asyncio.CancelledError) and limit is not None and now - started >= limit


# --- the connector mixin ----------------------------------------------------


class InstrumentedConnectorMixin(BaseConnector):
    """Overrides of ``BaseConnector`` that report to ``self._pool_otel``."""

    _pool_otel: PoolInstrumentation
    _pool_otel_release: Any

    def _pool_otel_install(self, pool: PoolInstrumentation) -> None:
        """Attach ``pool``; skip the connect() hook when nothing needs it."""
        self._pool_otel = pool
        # aiohttp's _release, bound once: a zero-argument super() per release is a
        # measurable share of the plugin's cost on Python < 3.12.
        self._pool_otel_release = super()._release
        # connect() is only hooked for per-lease options and for aiohttp < 3.10.11
        # (which queues inside connect()): the hook is a coroutine per request, about
        # a third of what the plugin would otherwise cost on the reuse path. A
        # subclass's own connect() is never bypassed.
        if (
            HAS_WAIT_METHOD
            and not pool.per_lease_work
            and type(self).connect is InstrumentedConnectorMixin.connect
        ):
            self.connect = super().connect  # type: ignore[method-assign]

    def _pool_otel_held(self) -> list[TrackedConnection]:
        """Records of the connections requests hold now (any thread: a copy is atomic)."""
        held = []
        for proto in self._acquired.copy():
            record = getattr(proto, _RECORD, None)
            if record is not None:  # placeholders of dials in progress have none
                held.append(record)
        return held

    def _pool_otel_read_state(
        self,
    ) -> tuple[list[TrackedConnection], dict[Any, int], dict[Any, int], int, int]:
        """(held records, idle per key, waiting per key, limit, limit_per_host).

        Called from the metric reader's thread: set and dict copies are atomic under
        the GIL, iteration of a dict the loop is changing is not.
        """
        for _ in range(5):
            try:
                idle = {k: len(v) for k, v in self._conns.copy().items()}
                waiting = {k: len(v) for k, v in self._waiters.copy().items()}
                held = self._pool_otel_held()
                return held, idle, waiting, self._limit, self._limit_per_host
            except RuntimeError:
                continue
            except AttributeError:  # an aiohttp whose internals moved: limits only
                break
        return [], {}, {}, self.limit, self.limit_per_host

    def _pool_otel_adopt(self, key: Any, protocol: Any) -> Optional[TrackedConnection]:
        """A record for a connection our _create_connection did not dial (a subclass's
        own dialling, a pre-filled pool): tracked from its first release on."""
        try:
            record = self._pool_otel.adopted(key)
            setattr(protocol, _RECORD, record)
            return record
        except Exception:
            report_internal_error("adopt")
            return None

    def _pool_otel_blocking_limit(self) -> str:
        if self._limit and len(self._acquired) >= self._limit:
            return "limit"
        return "limit_per_host"

    def _pool_otel_start_wait(
        self, key: ConnectionKey, method: Optional[str]
    ) -> Optional[Acquisition]:
        pool = self._pool_otel
        acq = pool.new_acquisition(key, method)
        if acq is not None:
            pool.wait_started(
                acq, len(self._waiters.get(key, ())), self._pool_otel_blocking_limit()
            )
        return acq

    async def connect(
        self, req: ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> Connection:
        pool = self._pool_otel
        if not HAS_WAIT_METHOD:
            try:
                # aiohttp 3.9 decides to queue synchronously, with exactly this test.
                key = req.connection_key
                if self._available_connections(key) <= 0 or key in self._waiters:
                    acq = self._pool_otel_start_wait(key, req.method)
                    if acq is not None:
                        _set_pending(req, acq)
            except Exception:
                report_internal_error("connect")
        try:
            conn = await super().connect(req, traces, timeout)
        except BaseException as exc:
            acq = _pending_acquisition(req)
            if acq is not None:  # failed while queued (a failed dial ended it already)
                timed_out = _timed_out(exc, acq.wait_started, timeout.connect, pool.now())
                pool.acquire_failed(acq, exc, timed_out)
            raise
        # No await from here on: the connection must reach the caller.
        acq = _pending_acquisition(req)
        if acq is not None:
            pool.wait_finished(acq)  # aiohttp 3.9: the wait ends when a pooled one is handed out
        proto = conn._protocol
        record = getattr(proto, _RECORD, None) or self._pool_otel_adopt(conn._key, proto)
        if record is not None:
            pool.acquired(conn._key, record, acq, req.method)
        return conn

    async def _wait_for_available_connection(
        self, key: ConnectionKey, traces: list[Trace]
    ) -> None:
        pool = self._pool_otel
        req, method, limit = _caller_request()
        acq = _pending_acquisition(req) if req is not None else None
        if acq is None:
            acq = self._pool_otel_start_wait(key, method)
        else:  # queued again within one connect(): one acquisition, one wait span
            pool.wait_restarted(acq)
        started = pool.now()
        try:
            await super()._wait_for_available_connection(key, traces)
        except BaseException as exc:
            if acq is not None:
                _ACQUISITION.set(None)
                pool.acquire_failed(acq, exc, _timed_out(exc, started, limit, pool.now()))
            raise
        if acq is not None:
            pool.wait_finished(acq)
            if req is not None:
                _set_pending(req, acq)  # for the dial that may follow

    async def _create_connection(
        self, req: ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> ResponseHandler:
        pool = self._pool_otel
        acq = _pending_acquisition(req)
        if acq is None:
            acq = pool.new_acquisition(req.connection_key, req.method)
            if acq is None:
                return await super()._create_connection(req, traces, timeout)
        elif acq.waiting:  # aiohttp 3.9: queueing ended where dialling begins
            pool.wait_finished(acq)
        token = pool.create_started(acq)
        try:
            proto = await super()._create_connection(req, traces, timeout)
        except BaseException as exc:
            limit = timeout.connect
            pool.acquire_failed(
                acq, exc, _timed_out(exc, acq.create_started, limit, pool.now())
            )
            raise
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
        # Not a lease: a second release of one protocol in a GC pass, or a release
        # after the connector closed (which ended every lease).
        if protocol not in self._acquired:
            return super()._release(key, protocol, should_close=should_close)
        record: Optional[TrackedConnection] = getattr(protocol, _RECORD, None)
        if record is None:
            record = self._pool_otel_adopt(key, protocol)
            if record is None:
                return super()._release(key, protocol, should_close=should_close)
        reason: ReleaseReason = ERROR_REASON
        phase: Optional[ReleasePhase] = None
        try:
            # The common case, in two attribute reads: a release (not a close) of a
            # protocol whose body is complete can only come from the EOF callback,
            # because aiohttp runs that callback synchronously when the body completes.
            if EXPLICIT_SHOULD_CLOSE and not should_close:
                payload = getattr(protocol, "_payload", None)
                if payload is not None and payload.is_eof():
                    reason = EOF_REASON
                    if record.span is not None:  # the phase is only shown on a span
                        phase = eof_phase(self._loop)
            if reason is not EOF_REASON:
                reason, phase = classify_by_caller(should_close, self._loop)
        except Exception:
            report_internal_error("classify")
        try:
            self._pool_otel_release(key, protocol, should_close=should_close)
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
            self._pool_otel.released(record, reason, phase, outcome)

    def _close(self, *args: Any, **kwargs: Any) -> Any:
        pool: Optional[PoolInstrumentation] = getattr(self, "_pool_otel", None)
        if pool is None or self._closed:
            return super()._close(*args, **kwargs)
        held: list[TrackedConnection] = []
        idle: list[tuple[Any, Optional[TrackedConnection]]] = []
        try:
            # The bound methods are reference cycles; a release after the close is
            # not a lease, and goes to aiohttp through super().
            self.__dict__.pop("connect", None)
            self.__dict__.pop("_pool_otel_release", None)
            held = self._pool_otel_held()
            idle = [
                (key, record_of(proto)) for key, conns in self._conns.items() for proto, _ in conns
            ]
        except Exception:
            report_internal_error("close")
        try:
            return super()._close(*args, **kwargs)
        finally:
            pool.connector_closed(held, idle)

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

    def _pool_otel_install(self, pool: PoolInstrumentation) -> None:
        self._pool_otel = pool

    def _pool_otel_held(self) -> list[TrackedConnection]:
        return []

    def _pool_otel_read_state(
        self,
    ) -> tuple[list[TrackedConnection], dict[Any, int], dict[Any, int], int, int]:
        return [], {}, {}, self.limit, self.limit_per_host


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
