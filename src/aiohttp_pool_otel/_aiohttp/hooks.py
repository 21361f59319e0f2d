"""The hooked ``BaseConnector`` methods, and where they are installed.

Each hook is built for a ``base``, the class whose method it calls on: the
instrumentor installs them on aiohttp's own classes (``base`` then holds aiohttp's
original functions), and :func:`explicit_hooks` defines them on the package's
connector subclasses (``base`` is the aiohttp class they extend, looked up at call
time, so a ``mock.patch`` of that class is honoured). A hook works for a connector
whose state matches its kind and passes everything else straight to ``base``: the
subclass's hooks handle its connectors, the class-level ones every other, and
nothing is counted twice. Nothing is stored on aiohttp's objects but one instance
attribute on the connector, which shadows no class attribute, and on each connection
the plugin dials, a ``set_parser`` that reports a WebSocket upgrade (:mod:`.upgrade`).

Every hook calls ``base`` with the same arguments and returns its result, never
awaits between aiohttp handing back a connection and its own return, and keeps
telemetry errors to itself.
"""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Any, Callable, Optional

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from .. import semconv as sc
from .._errors import report_internal_error
from .._meters import NO_EXEMPLAR
from .._records import CLOSE, CLOSED, EOF, ERROR, GC, POOLED, Acquisition, Attributes
from .._release_facts import ReleaseFact
from .._spans import error_type
from .._state import PoolState
from ..semconv import ReleasePhase, ReleaseReason
from .attach import STATE_ATTR, state_of
from .classify import (
    caller_request,
    classify_by_caller,
    connect_deadline,
    connect_limit,
    eof_phase,
    in_connector_finalizer,
    timed_out,
)
from .internals import Support, on_resolved
from .upgrade import UPGRADE, is_detached, watch_upgrade
from .view import pooled_last

__all__ = ["STATE_ATTR", "AutoState", "make_hooks", "state_of"]

AutoState = Callable[[Any], Optional[PoolState]]

_monotonic = time.monotonic

# What this aiohttp lets the hooks see, set once the internals are resolved (no hook
# has a state before that, so none reads these earlier). Module globals: the release
# hook reads one on every request.
_EOF_TEST = False
_WAIT = False
_DNS = False
_QUEUE_METHOD = True


def _learn(support: Support) -> None:
    global _EOF_TEST, _WAIT, _DNS, _QUEUE_METHOD
    _EOF_TEST, _WAIT, _DNS = support.eof_test, support.wait, support.dns
    _QUEUE_METHOD = support.queue_method


on_resolved(_learn)


def _queued_acquisition(state: PoolState, req: Any) -> Optional[Acquisition]:
    try:
        acq: Optional[Acquisition] = state.queued.pop(req, None)
        return acq
    except TypeError:  # not a ClientRequest (direct connector use): nothing queued
        return None


def _remember_queued(state: PoolState, req: Any, acq: Acquisition) -> None:
    with contextlib.suppress(TypeError):
        state.queued[req] = acq


def _find_deadline(loop: Any, timeout: Any) -> Any:
    try:
        return connect_deadline(loop, timeout)
    except Exception:
        report_internal_error("connect_deadline")
        return None


def make_hooks(base: Any, explicit: bool, auto: Optional[AutoState]) -> dict[str, Any]:
    """The hook functions for connectors whose state is ``explicit`` (or not).

    ``auto`` creates the state of a connector seen for the first time (instrumentor
    only); it is not called from ``_release``, which may run in a finalizer.
    """

    def own_state(connector: Any, create: bool) -> Optional[PoolState]:
        state = state_of(connector)
        if state is None and create and auto is not None:
            state = auto(connector)
        if state is None or state.explicit is not explicit:
            return None
        return state

    def _release(
        self: Any, key: Any, protocol: Any, *, should_close: bool = False
    ) -> None:
        try:
            # The attribute named by STATE_ATTR, read directly: on every request, a
            # specialised attribute read is several times cheaper than __dict__.get().
            state = self._aiohttp_pool_otel
        except AttributeError:  # a connector the plugin has not met
            return base._release(self, key, protocol, should_close=should_close)  # type: ignore[no-any-return]
        if state.explicit is not explicit or protocol not in self._acquired:
            # Not a lease: no state, a second release in a GC pass, or a release
            # after the connector closed (which ended every lease).
            return base._release(self, key, protocol, should_close=should_close)  # type: ignore[no-any-return]
        record = state.ledger.record_of(protocol)
        reason: ReleaseReason = ERROR
        phase: Optional[ReleasePhase] = None
        try:
            if _EOF_TEST and not should_close:
                try:  # no cost unless raised (cheaper than getattr() on every request)
                    at_eof = protocol._payload.is_eof()
                except AttributeError:  # no body reader (None), or a test's stand-in
                    at_eof = False
                if at_eof:
                    reason = EOF
                    if record is not None and record.span is not None:
                        phase = eof_phase(self._loop)  # only a span shows it
            if reason is not EOF:
                reason, phase = classify_by_caller(should_close, self._loop)
                if reason is CLOSE and protocol.upgraded:
                    reason = UPGRADE  # a WebSocket's close whose upgrade was not seen
        except Exception:
            pass  # no logging: this may be a finalizer
        if reason is GC:
            return _release_in_finalizer(state, self, key, protocol, should_close, record)
        if record is None:
            record = state.adopt(protocol, key)
        try:
            base._release(self, key, protocol, should_close=should_close)
        finally:
            outcome = POOLED if pooled_last(self, key, protocol) else CLOSED
            if outcome is CLOSED and record.detached:
                state.closed_unused(protocol)  # its lease ended at the upgrade: a close only
            else:
                state.released(protocol, record, reason, phase, outcome)

    def _release_in_finalizer(
        state: PoolState, connector: Any, key: Any, protocol: Any, should_close: bool,
        record: Any,
    ) -> None:  # fmt: skip
        # A garbage collection released the connection, maybe in another thread, maybe
        # inside the SDK holding a lock: plain facts only, applied later by the loop.
        if record is not None and record.detached:
            # A WebSocket dropped unclosed: no lease to end; the loop counts the close.
            try:
                return base._release(connector, key, protocol, should_close=should_close)  # type: ignore[no-any-return]
            finally:
                state.reconcile_soon()
        if record is not None:
            record.gc_pending = True
        try:
            base._release(connector, key, protocol, should_close=should_close)
        finally:
            try:
                outcome = POOLED if pooled_last(connector, key, protocol) else CLOSED
                fact = ReleaseFact(protocol, key, record, GC, None, outcome, counted=False)
                state.released_in_finalizer(fact)
            except Exception:
                pass

    async def _wait_for_available_connection(self: Any, key: Any, traces: Any) -> None:
        started = _monotonic()  # first: aiohttp's connect deadline started just before
        state = own_state(self, create=True) if _WAIT else None
        if state is None:
            return await base._wait_for_available_connection(self, key, traces)  # type: ignore[no-any-return]
        req, method, timeout = caller_request(1)
        events = state.acquisitions
        acq = events.begin(key, method, started)
        if acq is None:
            return await base._wait_for_available_connection(self, key, traces)  # type: ignore[no-any-return]
        deadline = _find_deadline(self._loop, timeout)  # before any await: see there
        events.wait_started(acq, state.view.queue_depth(key), state.view.blocking_limit())
        try:
            await base._wait_for_available_connection(self, key, traces)
        except BaseException as exc:
            events.failed(acq, exc, timed_out(exc, acq, connect_limit(timeout), deadline))
            raise
        events.wait_finished(acq)
        if req is not None:
            _remember_queued(state, req, acq)  # for the dial that may follow
        return None

    async def _create_connection(self: Any, req: Any, traces: Any, timeout: Any) -> Any:
        started = _monotonic()
        state = own_state(self, create=True)
        if state is None:
            return await base._create_connection(self, req, traces, timeout)
        events = state.acquisitions
        # getattr: a test may dial with a stand-in request; aiohttp itself never reads more.
        key = getattr(req, "connection_key", None)
        method = getattr(req, "method", None)
        acq = _queued_acquisition(state, req) or events.begin(key, method, started)
        if acq is None:
            return await base._create_connection(self, req, traces, timeout)
        if acq.waiting:  # aiohttp < 3.10.11: queueing ends where dialling begins
            events.wait_finished(acq)
        token = events.dial_started(acq)
        try:
            protocol = await base._create_connection(self, req, traces, timeout)
        except BaseException as exc:
            events.failed(acq, exc, timed_out(exc, acq, connect_limit(timeout)))
            raise
        finally:
            events.dial_ended(acq, token)
        try:
            if self._closed:  # aiohttp closes it as soon as we return: no request gets it
                events.dial_discarded(acq, protocol, key)
            else:
                events.dial_finished(acq, protocol, key, state.view.peer(protocol))
                watch_upgrade(state, protocol)
        except Exception:
            report_internal_error("dial_finished")
        return protocol

    async def connect(self: Any, req: Any, traces: Any, timeout: Any) -> Any:
        started = _monotonic()
        state = own_state(self, create=True)
        if state is None:
            return await base.connect(self, req, traces, timeout)
        events = state.acquisitions
        deadline = None
        if _WAIT and not _QUEUE_METHOD:
            try:
                # aiohttp < 3.10.11 decides to queue synchronously, with exactly this test.
                key = req.connection_key
                if self._available_connections(key) <= 0 or key in self._waiters:
                    acq = events.begin(key, req.method, started)
                    if acq is not None:
                        # _request entered the connect deadline just before calling us.
                        deadline = _find_deadline(self._loop, timeout)
                        events.wait_started(
                            acq, state.view.queue_depth(key), state.view.blocking_limit()
                        )
                        _remember_queued(state, req, acq)
            except Exception:
                report_internal_error("connect")
        try:
            conn = await base.connect(self, req, traces, timeout)
        except BaseException as exc:
            acq = _queued_acquisition(state, req)
            if acq is not None:  # failed while queued (a failed dial reported itself)
                verdict = timed_out(exc, acq, connect_limit(timeout), deadline)
                events.failed(acq, exc, verdict)
            raise
        # No await from here on: the connection must reach the caller.
        acq = _queued_acquisition(state, req)
        if acq is not None:
            events.wait_finished(acq)  # the wait ended with a pooled connection
        if state.per_lease_work:
            events.acquired(conn.protocol, req.connection_key, acq, req.method)
        return conn

    def _close(self: Any, *args: Any, **kwargs: Any) -> Any:
        state = own_state(self, create=False)
        if state is None or self._closed:
            return base._close(self, *args, **kwargs)
        in_finalizer = in_connector_finalizer()
        leased: list[Any] = []
        with contextlib.suppress(Exception):
            # A WebSocket's lease ended at its upgrade: its close is counted, no release.
            leased = [p for p in self._acquired if not is_detached(state, p)]
        try:
            return base._close(self, *args, **kwargs)
        finally:
            state.connector_closed(leased, in_finalizer)

    def _cleanup(self: Any) -> None:
        base._cleanup(self)
        state = own_state(self, create=False)
        if state is not None:
            state.reconcile()  # keep-alive expiry closed idle connections

    async def _resolve_host(self: Any, host: str, port: int, traces: Any = None) -> Any:
        state = own_state(self, create=False) if _DNS else None
        if state is None:
            return await base._resolve_host(self, host, port, traces=traces)
        lookup = _DnsLookup.start(state, self, host, port)
        try:
            result = await base._resolve_host(self, host, port, traces=traces)
        except BaseException as exc:
            if lookup is not None:
                lookup.finish(exc)
            raise
        if lookup is not None:
            lookup.finish(None)
        return result

    return {
        "_release": _release,
        "_wait_for_available_connection": _wait_for_available_connection,
        "_create_connection": _create_connection,
        "connect": connect,
        "_close": _close,
        "_cleanup": _cleanup,
        "_resolve_host": _resolve_host,
    }


class _DnsLookup:
    """One name resolution of a dial: its span and its duration."""

    __slots__ = ("_span", "_started", "_state")

    def __init__(self, state: PoolState, span: Any) -> None:
        self._state = state
        self._span = span
        self._started = _monotonic()

    @classmethod
    def start(cls, state: PoolState, connector: Any, host: str, port: int) -> Optional[_DnsLookup]:
        """A lookup if aiohttp will really resolve ``host`` (not a literal, not cached)."""
        try:
            hit = _cache_hit(connector, host, port)
            dial = trace.get_current_span()
            if dial.is_recording():
                dial.set_attribute(sc.DNS_CACHE_HIT, hit)
            if hit or _is_ip_literal(host):
                return None
            spans = state.spans
            attributes: Attributes = {sc.SERVER_ADDRESS: str(host)}
            span = spans.start(sc.SPAN_DNS, spans.parent(), attributes, None, SpanKind.CLIENT)
            return cls(state, span)
        except Exception:
            report_internal_error("dns_start")
            return None

    def finish(self, exc: Optional[BaseException]) -> None:
        """The lookup returned (``exc`` None) or raised."""
        attributes = {} if exc is None else {sc.ERROR_TYPE: error_type(exc)}
        span = self._span
        try:
            if span is not None:
                if exc is None:
                    span.end()
                else:
                    self._state.spans.fail(span, exc)
        finally:
            try:
                duration = _monotonic() - self._started
                self._state.meters.dns_duration.record(duration, attributes, NO_EXEMPLAR)
            except Exception:
                report_internal_error("dns_duration")


def _cache_hit(connector: Any, host: str, port: int) -> bool:
    if not getattr(connector, "_use_dns_cache", False):
        return False
    cached = connector._cached_hosts
    key = (host, port)
    return key in cached and not cached.expired(key)


def _is_ip_literal(host: str) -> bool:
    # inet_pton, not ipaddress.ip_address: a tenth of the cost, on every dial.
    host = host.strip("[]").split("%", 1)[0]  # an IPv6 scope id is no name to resolve
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
        return True
    return False
