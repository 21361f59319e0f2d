"""Per-connector bookkeeping and span emission, fed by the aiohttp adapter.

Everything here runs on the event-loop thread except ``snapshot()``, which the
metric reader calls from its own thread: it only reads plain ints and takes
atomic copies of dicts. Every entry point swallows its own exceptions, because
it is called from inside aiohttp's request path, ``__del__`` methods and
transport callbacks, where an exception would break the user's request.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from . import semconv as sc
from .semconv import (
    CLOSED,
    EOF_REASON,
    GC_REASON,
    POOLED,
    ReleaseOutcome,
    ReleasePhase,
    ReleaseReason,
)
from .statistics import HostPoolStatistics, PoolStatistics

if TYPE_CHECKING:
    from ._telemetry import PoolMeters

_log = logging.getLogger("aiohttp_pool_otel")

HostId = tuple[str, Optional[int], str]
"""(host, port, scheme): the part of aiohttp's pool key that telemetry may show."""

Attributes = dict[str, Union[str, int, bool, float]]

_monotonic = time.monotonic

# Histograms are recorded in this context, not the current one: under a sampled
# span the SDK's default exemplar filter would build an exemplar for every record
# (~4 µs each, on the queued and dialling paths). Non-empty on purpose: the SDK
# treats an empty context as "use the current one".
NO_EXEMPLAR = otel_context.Context({"aiohttp_pool_otel.no_exemplar": True})

_warned: set[str] = set()

# Frames from these directories are aiohttp's, asyncio's or ours: the request's
# origin is the first frame outside them.
_INTERNAL_DIRS = tuple(
    os.path.dirname(m.__file__) + os.sep
    for m in (sys.modules["aiohttp"], asyncio, sys.modules[__package__ or "aiohttp_pool_otel"])
    if m is not None and m.__file__
)
_OPENTELEMETRY_DIR = os.sep + "opentelemetry" + os.sep


def request_origin() -> Optional[tuple[str, int, str]]:
    """(file, line, function) of the code that awaited the request, outside aiohttp."""
    frame = sys._getframe(2)
    for _ in range(64):
        if frame is None:
            return None
        filename = frame.f_code.co_filename
        if not filename.startswith(_INTERNAL_DIRS) and _OPENTELEMETRY_DIR not in filename:
            return (filename, frame.f_lineno, frame.f_code.co_name)
        frame = frame.f_back  # type: ignore[assignment]
    return None


def report_internal_error(where: str) -> None:
    """Log a telemetry failure once per call site; never raise."""
    try:
        if where not in _warned:
            _warned.add(where)
            _log.exception("aiohttp-pool-otel: telemetry failed in %s (ignored)", where)
    except Exception:  # pragma: no cover - logging itself failed
        pass


class HostRecord:
    """Counters of one pool key (host, port, scheme), mutated on the loop thread only."""

    __slots__ = (
        "attributes",
        "closed",
        "connecting",
        "created",
        "eof_pooled",
        "identity",
        "queued",
        "releases",
        "reused",
        "timeouts",
    )

    def __init__(self, identity: HostId, attributes: Attributes) -> None:
        self.identity = identity
        self.attributes = attributes
        self.connecting = 0
        # First leases (created) and later ones (reused) that ended; the ones in
        # progress are added at collection. A dial that never reached a request (the
        # connector closed meanwhile) is no acquisition, and is not counted.
        self.created = 0
        self.reused = 0
        self.closed = 0
        self.timeouts = 0
        # The release of almost every request (EOF, pooled) is a plain int; every
        # other (reason, outcome) pair is counted in the dict. See release_counts().
        self.eof_pooled = 0
        self.releases: dict[tuple[ReleaseReason, ReleaseOutcome], int] = {}
        # Acquisitions that found no free slot, by the limit that blocked them.
        self.queued: dict[str, int] = {}

    def release_counts(self) -> dict[tuple[ReleaseReason, ReleaseOutcome], int]:
        """Releases so far by (reason, outcome) (any thread: a copy)."""
        counts = self.releases.copy()
        if self.eof_pooled:
            counts[(EOF_REASON, POOLED)] = counts.get((EOF_REASON, POOLED), 0) + self.eof_pooled
        return counts


class TrackedConnection:
    """One connection (an aiohttp protocol) across its life, and its current lease.

    A connection is held by at most one request at a time, so the lease fields are
    simply reset at each acquisition: no allocation on the reuse path. ``acquired_at``,
    ``released_at`` and ``reused`` are kept up to date for the first lease and, when an
    option needs per-lease work, for every lease.
    """

    __slots__ = (
        "acquired_at",
        "created_at",
        "held_too_long",
        "host",
        "origin",
        "released_at",
        "reused",
        "span",
        "uses",
    )

    def __init__(self, host: HostRecord, created_at: float) -> None:
        self.host = host
        self.created_at = created_at
        self.released_at = created_at
        self.uses = 0
        self.acquired_at = created_at
        self.reused = False
        self.span: Optional[Span] = None
        self.held_too_long = False
        self.origin: Optional[tuple[str, int, str]] = None


# The lease of a connection is its record while a request holds it.
Lease = TrackedConnection


class Acquisition:
    """State of an acquisition that queued or dialled (the slow path)."""

    __slots__ = (
        "create_span",
        "create_started",
        "dialled",
        "host",
        "method",
        "parent",
        "queued",
        "wait_span",
        "wait_started",
        "waiting",
    )

    def __init__(
        self, host: HostRecord, parent: Optional[otel_context.Context], method: Optional[str]
    ) -> None:
        self.host = host
        self.parent = parent
        self.method = method
        self.queued = False
        self.waiting = False
        self.wait_started = 0.0
        self.wait_span: Optional[Span] = None
        self.dialled = False
        self.create_started = 0.0
        self.create_span: Optional[Span] = None


def _error_type(exc: BaseException) -> str:
    cls = type(exc)
    module = cls.__module__
    if module in ("builtins", "asyncio.exceptions", "concurrent.futures._base"):
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


class PoolInstrumentation:
    """Bookkeeping and spans of one instrumented connector."""

    def __init__(
        self,
        *,
        tracer: Tracer,
        meters: PoolMeters,
        pool_name: Optional[str],
        max_hosts: int,
        trace_all_leases: bool,
        record_hold_time: bool,
        watchdog_threshold: Optional[float] = None,
        capture_request_location: bool = False,
        read_state: Callable[
            [], tuple[list[TrackedConnection], dict[Any, int], dict[Any, int], int, int]
        ],
        identify: Callable[[Any], HostId],
        read_held: Callable[[], list[TrackedConnection]] = list,
    ) -> None:
        self.tracer = tracer
        # An explicit no-op provider: no span is built, and no parent is looked up.
        self._tracing = not isinstance(tracer, trace.NoOpTracer)
        self.meters = meters
        self.pool_name = pool_name
        self.max_hosts = max_hosts
        self.trace_all_leases = trace_all_leases
        self.record_hold_time = record_hold_time
        self.watchdog_threshold = watchdog_threshold
        self.capture_request_location = capture_request_location
        self._watchdog: Optional[asyncio.TimerHandle] = None
        # Options that need every acquisition seen (the connector then hooks
        # connect()) and every release timed: one test on the release path.
        self.per_lease_work = (
            trace_all_leases
            or capture_request_location
            or watchdog_threshold is not None
            or record_hold_time
        )
        self._read_state = read_state
        self._read_held = read_held  # the held records alone, for the loop thread
        self._identify = identify
        self._hosts: dict[HostId, HostRecord] = {}
        self._by_key: dict[Any, HostRecord] = {}
        self._other: Optional[HostRecord] = None
        self.pool_attributes: Attributes = {sc.POOL_NAME: pool_name} if pool_name else {}
        self.last_snapshot: Optional[PoolSnapshot] = None

    # --- host records ------------------------------------------------------

    def host_for(self, key: Any) -> HostRecord:
        """The record of aiohttp pool key ``key`` (cached; bounded by ``max_hosts``)."""
        record = self._by_key.get(key)
        if record is not None:
            return record
        identity = self._identify(key)
        record = self._hosts.get(identity)
        if record is None:
            if len(self._hosts) >= self.max_hosts:
                self._forget_empty_hosts()
            if len(self._hosts) >= self.max_hosts:
                record = self._other_record()
            else:
                record = HostRecord(identity, self._host_attributes(identity))
                self._hosts[identity] = record
        if len(self._by_key) >= 4 * self.max_hosts:
            self._by_key.clear()
        self._by_key[key] = record
        return record

    def _host_attributes(self, identity: HostId) -> Attributes:
        host, port, scheme = identity
        attributes: Attributes = {sc.SERVER_ADDRESS: host, sc.URL_SCHEME: scheme}
        if port is not None:
            attributes[sc.SERVER_PORT] = port
        attributes.update(self.pool_attributes)
        return attributes

    def _other_record(self) -> HostRecord:
        if self._other is None:
            identity: HostId = (sc.OTHER_HOST, None, "")
            attributes: Attributes = {sc.SERVER_ADDRESS: sc.OTHER_HOST}
            attributes.update(self.pool_attributes)
            self._other = HostRecord(identity, attributes)
        return self._other

    def _forget_empty_hosts(self) -> None:
        held, idle, waiting, _, _ = self._read_state()
        busy = {self._identify(k) for k, n in idle.items() if n}
        busy.update(self._identify(k) for k, n in waiting.items() if n)
        busy.update(lease.host.identity for lease in held)
        for identity, record in list(self._hosts.items()):
            if not (record.connecting or identity in busy):
                del self._hosts[identity]
        self._by_key.clear()

    # --- slow path: queueing and dialling ----------------------------------

    @staticmethod
    def now() -> float:
        """The clock of every duration here."""
        return _monotonic()

    def _start_span(self, name: str, acq: Acquisition, attributes: Attributes) -> Optional[Span]:
        if acq.parent is None:
            return None
        attributes = dict(attributes)
        if acq.method is not None:
            attributes[sc.HTTP_REQUEST_METHOD] = acq.method
        return self.tracer.start_span(
            name, context=acq.parent, kind=SpanKind.INTERNAL, attributes=attributes
        )

    def new_acquisition(self, key: Any, method: Optional[str]) -> Optional[Acquisition]:
        """Begin tracking an acquisition (of a ``method`` request) that left the fast path."""
        try:
            parent: Optional[otel_context.Context] = None
            if self._tracing:
                parent = otel_context.get_current()
                span_context = trace.get_current_span(parent).get_span_context()
                # Follow the parent's sampling decision: an unsampled request builds no spans.
                if span_context.is_valid and not span_context.trace_flags.sampled:
                    parent = None
            return Acquisition(self.host_for(key), parent, method)
        except Exception:
            report_internal_error("new_acquisition")
            return None

    def wait_started(
        self, acq: Acquisition, queue_depth: int, blocking_limit: str
    ) -> None:
        """The acquisition found no free slot and joined the queue."""
        try:
            acq.queued = acq.waiting = True
            acq.wait_started = _monotonic()
            queued = acq.host.queued
            queued[blocking_limit] = queued.get(blocking_limit, 0) + 1
            if acq.parent is not None:
                acq.wait_span = self._start_span(
                    sc.SPAN_WAIT,
                    acq,
                    {
                        **acq.host.attributes,
                        sc.POOL_QUEUE_DEPTH: queue_depth,
                        sc.POOL_BLOCKING_LIMIT: blocking_limit,
                    },
                )
        except Exception:
            report_internal_error("wait_started")

    @staticmethod
    def wait_restarted(acq: Acquisition) -> None:
        """The acquisition lost its free slot to another and queues again: its wait
        goes on (measured from the first start; its span has ended)."""
        acq.waiting = True

    def wait_finished(self, acq: Acquisition) -> None:
        """A slot became free for a queued acquisition."""
        try:
            if not acq.waiting:
                return
            acq.waiting = False
            self.meters.wait_time.record(
                _monotonic() - acq.wait_started, acq.host.attributes, NO_EXEMPLAR
            )
            span, acq.wait_span = acq.wait_span, None
            if span is not None:
                span.end()
        except Exception:
            report_internal_error("wait_finished")

    def create_started(self, acq: Acquisition) -> Optional[object]:
        """A new connection is being dialled; returns a context token to detach."""
        try:
            acq.dialled = True
            acq.create_started = _monotonic()
            acq.host.connecting += 1
            span = self._start_span(sc.SPAN_CREATE, acq, acq.host.attributes)
            acq.create_span = span
            if span is not None:
                # Current while dialling, so the trace config's DNS span nests under it.
                return otel_context.attach(trace.set_span_in_context(span, acq.parent))
        except Exception:
            report_internal_error("create_started")
        return None

    def create_detach(self, acq: Acquisition, token: Optional[object]) -> None:
        """The dial returned or raised: restore the context, free the connecting slot."""
        try:
            acq.host.connecting -= 1
            if token is not None:
                otel_context.detach(token)  # type: ignore[arg-type]
        except Exception:
            report_internal_error("create_detach")

    def create_finished(
        self, acq: Acquisition, peer: Optional[tuple[str, int]]
    ) -> Optional[TrackedConnection]:
        """A new connection is open and about to be handed to its first request:
        returns its record, for the adapter to keep with the protocol."""
        now = _monotonic()
        host = acq.host
        record = TrackedConnection(host, now)
        try:
            self.meters.create_time.record(now - acq.create_started, host.attributes, NO_EXEMPLAR)
        except Exception:
            report_internal_error("create_finished")
        try:
            span = acq.create_span
            if span is not None:
                acq.create_span = None
                if peer is not None and span.is_recording():
                    span.set_attribute(sc.NETWORK_PEER_ADDRESS, str(peer[0]))
                    span.set_attribute(sc.NETWORK_PEER_PORT, int(peer[1]))
                span.end()
            # The first lease begins here; by default it is the only one traced.
            if acq.parent is not None:
                self._start_lease_span(record, acq, now)
        except Exception:
            report_internal_error("create_finished")
        return record

    def adopted(self, key: Any) -> TrackedConnection:
        """A record for a connection dialled elsewhere, seen for the first time."""
        return TrackedConnection(self.host_for(key), _monotonic())

    def acquire_failed(self, acq: Acquisition, exc: BaseException, timed_out: bool) -> None:
        """``connect()`` raised: end open spans with the error; nothing was acquired."""
        try:
            if acq.waiting:
                acq.waiting = False
                if timed_out:
                    acq.host.timeouts += 1
                    if acq.wait_span is not None and acq.wait_span.is_recording():
                        self._describe_pool(acq.wait_span)
                self._fail(acq.wait_span, exc, "pool_wait_timeout" if timed_out else None)
            self._fail(acq.create_span, exc, "connect_timeout" if timed_out else None)
            acq.create_span = None
        except Exception:
            report_internal_error("acquire_failed")

    def _describe_pool(self, span: Span) -> None:
        """Put a bounded picture of the pool on ``span``: why did the wait time out?"""
        now = _monotonic()
        oldest: dict[HostId, float] = {}
        for lease in self._read_held():
            identity = lease.host.identity
            oldest[identity] = max(oldest.get(identity, 0.0), now - lease.acquired_at)
        hosts = self.snapshot().hosts
        span.set_attributes(
            {
                sc.POOL_ACTIVE: sum(h.active for h in hosts),
                sc.POOL_IDLE: sum(h.idle for h in hosts),
                sc.POOL_WAITING: sum(h.waiting for h in hosts),
                sc.POOL_OLDEST_LEASE_AGE: max(oldest.values(), default=0.0),
            }
        )
        busiest = sorted((h for h in hosts if h.in_use), key=lambda h: -h.active)[:10]
        for h in busiest:
            span.add_event(
                sc.EVENT_POOL_KEY,
                {
                    **h.record.attributes,
                    sc.POOL_ACTIVE: h.active,
                    sc.POOL_IDLE: h.idle,
                    sc.POOL_WAITING: h.waiting,
                    sc.POOL_OLDEST_LEASE_AGE: oldest.get(h.record.identity, 0.0),
                },
            )

    @staticmethod
    def _fail(span: Optional[Span], exc: BaseException, error_type: Optional[str]) -> None:
        if span is None:
            return
        kind = error_type or _error_type(exc)
        span.set_attribute(sc.ERROR_TYPE, kind)
        span.set_status(Status(StatusCode.ERROR, kind))
        span.end()

    # --- the hot path: acquisition and release -----------------------------

    def acquired(
        self,
        key: Any,
        lease: TrackedConnection,
        acq: Optional[Acquisition],
        method: Optional[str],
    ) -> None:
        """``connect()`` of a ``method`` request handed out the connection of ``lease``.

        Only called when an option needs per-lease work (or on aiohttp < 3.10.11):
        counting needs no acquisition hook.
        """
        try:
            now = _monotonic()
            if lease.uses:  # a dialled connection's first lease began in create_finished
                lease.acquired_at = now
                lease.reused = True
            # span and held_too_long were reset when the last lease ended.
            if self.per_lease_work:
                self._lease_extras(key, lease, acq, now, method)
        except Exception:
            report_internal_error("acquired")

    def _lease_extras(
        self,
        key: Any,
        lease: TrackedConnection,
        acq: Optional[Acquisition],
        now: float,
        method: Optional[str],
    ) -> None:
        """What only some options need: origin, watchdog, a span for every lease."""
        if self.capture_request_location:
            lease.origin = request_origin()
        if self.watchdog_threshold is not None and self._watchdog is None:
            self._arm_watchdog()
        if self.trace_all_leases and lease.span is None:
            if acq is None:
                acq = self.new_acquisition(key, method)
            if acq is not None and acq.parent is not None:
                self._start_lease_span(lease, acq, now)

    def _start_lease_span(self, lease: Lease, acq: Acquisition, now: float) -> None:
        attributes: Attributes = {
            **lease.host.attributes,
            sc.CONNECTION_REUSED: lease.reused,
            sc.CONNECTION_QUEUED: acq.queued,
        }
        if lease.reused:
            attributes[sc.CONNECTION_IDLE_TIME] = max(0.0, now - lease.released_at)
        lease.span = self._start_span(sc.SPAN_LEASE, acq, attributes)

    def released(
        self,
        lease: Lease,
        reason: ReleaseReason,
        phase: Optional[ReleasePhase],
        outcome: ReleaseOutcome,
    ) -> None:
        """aiohttp gave the connection of ``lease`` back (pooled or closed)."""
        try:
            host = lease.host
            if reason is EOF_REASON and outcome is POOLED:
                host.eof_pooled += 1
            else:
                pair = (reason, outcome)
                host.releases[pair] = host.releases.get(pair, 0) + 1
            if lease.uses:
                host.reused += 1
            else:
                host.created += 1
            lease.uses += 1
            if outcome is CLOSED:
                host.closed += 1
                self.meters.connection_duration.record(
                    _monotonic() - lease.created_at, host.attributes, NO_EXEMPLAR
                )
            if self.per_lease_work or lease.span is not None:
                self._lease_ended(lease, reason, phase, outcome)
        except Exception:
            report_internal_error("released")

    def _lease_ended(
        self,
        lease: Lease,
        reason: ReleaseReason,
        phase: Optional[ReleasePhase],
        outcome: ReleaseOutcome,
    ) -> None:
        """The timed part of a release: hold time, GC report, the lease span."""
        now = _monotonic()
        held = now - lease.acquired_at
        lease.released_at = now
        if self.record_hold_time:
            self.meters.use_time.record(held, lease.host.attributes, NO_EXEMPLAR)
        if lease.origin is not None and reason is GC_REASON:
            self._report_gc(lease, held)
        span, lease.span = lease.span, None
        lease.held_too_long = False
        if span is not None:
            self._end_lease_span(span, reason, phase, outcome, held)

    @staticmethod
    def _report_gc(lease: Lease, held: float) -> None:
        assert lease.origin is not None
        filename, lineno, function = lease.origin
        where = f"{filename}:{lineno}"
        if where not in _warned:
            _warned.add(where)
            _log.warning(
                "aiohttp-pool-otel: the response of the request made at %s (in %s) was "
                "garbage-collected without being read, released or closed; it held its "
                "connection for %.3fs. Use 'async with session.get(...)' or resp.release().",
                where,
                function,
                held,
            )
        if lease.span is not None and lease.span.is_recording():
            lease.span.set_attributes(
                {sc.CODE_FILEPATH: filename, sc.CODE_LINENO: lineno, sc.CODE_FUNCTION: function}
            )

    # --- the held-connection watchdog ---------------------------------------

    def _arm_watchdog(self) -> None:
        assert self.watchdog_threshold is not None
        interval = max(self.watchdog_threshold / 2, 0.05)
        self._watchdog = asyncio.get_running_loop().call_later(interval, self._watch)

    def _watch(self) -> None:
        """Flag leases held past the threshold; re-arms itself while leases exist."""
        self._watchdog = None
        try:
            threshold = self.watchdog_threshold
            leases = self._read_held()
            if threshold is None or not leases:
                return
            now = _monotonic()
            for lease in leases:
                held = now - lease.acquired_at
                if not lease.held_too_long and held >= threshold:
                    lease.held_too_long = True
                    if lease.span is not None and lease.span.is_recording():
                        lease.span.add_event(
                            sc.EVENT_HELD_TOO_LONG, {sc.CONNECTION_HOLD_TIME: held}
                        )
            self._arm_watchdog()
        except Exception:
            report_internal_error("watchdog")

    def stop_watchdog(self) -> None:
        """Cancel the watchdog timer (the connector closed)."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def held_too_long(self, leases: list[Lease]) -> dict[HostId, int]:
        """How many of ``leases`` are held at least the watchdog threshold, per host."""
        threshold = self.watchdog_threshold
        out: dict[HostId, int] = {}
        if threshold is None:
            return out
        deadline = _monotonic() - threshold
        for lease in leases:
            if lease.acquired_at <= deadline:
                out[lease.host.identity] = out.get(lease.host.identity, 0) + 1
        return out

    @staticmethod
    def _end_lease_span(
        span: Span,
        reason: ReleaseReason,
        phase: Optional[ReleasePhase],
        outcome: ReleaseOutcome,
        held: float,
    ) -> None:
        if not span.is_recording():
            span.end()
            return
        attributes: Attributes = {
            sc.RELEASE_REASON: reason.value,
            sc.RELEASE_OUTCOME: outcome.value,
            sc.CONNECTION_HOLD_TIME: held,
        }
        if phase is not None:
            attributes[sc.RELEASE_PHASE] = phase.value
            span.add_event(sc.EVENT_EOF, {sc.RELEASE_PHASE: phase.value})
        span.set_attributes(attributes)
        event = sc.EVENT_RELEASED if outcome is ReleaseOutcome.POOLED else sc.EVENT_CLOSED
        span.add_event(event, {sc.RELEASE_REASON: reason.value})
        if reason is ReleaseReason.GC:
            span.set_status(
                Status(
                    StatusCode.ERROR,
                    "response was garbage-collected without being read, released or closed; "
                    "use 'async with session.get(...)' or call resp.release()",
                )
            )
        elif reason is ReleaseReason.ERROR:
            span.set_status(Status(StatusCode.ERROR, "connection closed before a response"))
        span.end()

    # --- closes the connector performs by itself ---------------------------

    def connector_closed(
        self,
        leases: list[Lease],
        idle: list[tuple[Any, Optional[TrackedConnection]]],
    ) -> None:
        """The connector closed: every held lease ends, every idle connection closes."""
        try:
            self.stop_watchdog()
            for lease in leases:
                self.released(
                    lease, ReleaseReason.CONNECTOR_CLOSED, None, ReleaseOutcome.CLOSED
                )
            self.idle_closed(idle)
        except Exception:
            report_internal_error("connector_closed")

    def idle_closed(self, idle: list[tuple[Any, Optional[TrackedConnection]]]) -> None:
        """Idle connections were closed (keep-alive expiry, peer gone, connector close)."""
        try:
            now = _monotonic()
            for key, record in idle:
                host = record.host if record is not None else self.host_for(key)
                host.closed += 1
                if record is not None:
                    self.meters.connection_duration.record(
                        now - record.created_at, host.attributes, NO_EXEMPLAR
                    )
        except Exception:
            report_internal_error("idle_closed")

    # --- state, for statistics() and the metric callbacks ------------------

    def snapshot(self) -> PoolSnapshot:
        """Read the pool's state; safe to call from the metric reader's thread."""
        held, idle_by_key, waiting_by_key, limit, limit_per_host = self._read_state()
        idle: dict[HostId, int] = {}
        waiting: dict[HostId, int] = {}
        for key, n in idle_by_key.items():
            identity = self._identify(key)
            idle[identity] = idle.get(identity, 0) + n
        for key, n in waiting_by_key.items():
            identity = self._identify(key)
            waiting[identity] = waiting.get(identity, 0) + n
        held_too_long = self.held_too_long(held)
        # Who holds a connection is aiohttp's to know: counted here, not per request.
        active: dict[HostRecord, int] = {}
        first: dict[HostRecord, int] = {}  # first leases in progress
        for lease in held:
            host = lease.host
            active[host] = active.get(host, 0) + 1
            if not lease.uses:
                first[host] = first.get(host, 0) + 1
        records = list(self._hosts.values())
        if self._other is not None:
            records.append(self._other)
        hosts = []
        # aiohttp's own count: it includes dials in progress.
        total_free = limit - len(held) - sum(r.connecting for r in records) if limit else None
        for record in records:
            identity = record.identity
            if record is self._other:
                n_idle = sum(n for i, n in idle.items() if i not in self._hosts)
                n_waiting = sum(n for i, n in waiting.items() if i not in self._hosts)
            else:
                n_idle = idle.get(identity, 0)
                n_waiting = waiting.get(identity, 0)
            n_active = active.get(record, 0)
            available: Optional[int] = None
            if limit_per_host:
                available = limit_per_host - n_active - record.connecting
            if total_free is not None:
                available = total_free if available is None else min(available, total_free)
            if available is not None:
                available = max(available, 0)
            hosts.append(
                HostSnapshot(
                    record,
                    n_active,
                    n_idle,
                    n_waiting,
                    available,
                    held_too_long.get(identity, 0),
                    record.created + first.get(record, 0),
                    record.reused + n_active - first.get(record, 0),
                )
            )
        snap = PoolSnapshot(
            hosts,
            limit,
            limit_per_host,
            self.pool_attributes,
            watchdog=self.watchdog_threshold is not None,
        )
        self.last_snapshot = snap
        return snap

    def statistics(self) -> PoolStatistics:
        """A frozen :class:`PoolStatistics` of this connector."""
        snap = self.snapshot()
        per_host: dict[HostId, HostPoolStatistics] = {}
        totals: dict[ReleaseReason, int] = {}
        for h in snap.hosts:
            r = h.record
            releases: dict[ReleaseReason, int] = {}
            for (reason, _), n in r.release_counts().items():
                releases[reason] = releases.get(reason, 0) + n
                totals[reason] = totals.get(reason, 0) + n
            per_host[r.identity] = HostPoolStatistics(
                host=r.identity[0],
                port=r.identity[1],
                scheme=r.identity[2],
                active=h.active,
                idle=h.idle,
                connecting=r.connecting,
                waiting=h.waiting,
                available=h.available,
                limit=snap.limit,
                limit_per_host=snap.limit_per_host,
                created=h.created,
                reused=h.reused,
                closed=r.closed,
                timeouts=r.timeouts,
                releases=releases,
            )
        stats = list(per_host.values())
        return PoolStatistics(
            active=sum(s.active for s in stats),
            idle=sum(s.idle for s in stats),
            connecting=sum(s.connecting for s in stats),
            waiting=sum(s.waiting for s in stats),
            limit=snap.limit,
            limit_per_host=snap.limit_per_host,
            created=sum(s.created for s in stats),
            reused=sum(s.reused for s in stats),
            closed=sum(s.closed for s in stats),
            timeouts=sum(s.timeouts for s in stats),
            releases=totals,
            hosts=per_host,
        )


class HostSnapshot:
    """One pool key's state at one collection."""

    __slots__ = (
        "active",
        "available",
        "created",
        "held_too_long",
        "idle",
        "record",
        "reused",
        "waiting",
    )

    def __init__(
        self,
        record: HostRecord,
        active: int,
        idle: int,
        waiting: int,
        available: Optional[int],
        held_too_long: int = 0,
        created: int = 0,
        reused: int = 0,
    ) -> None:
        self.record = record
        self.created = created
        self.reused = reused
        self.held_too_long = held_too_long
        self.active = active
        self.idle = idle
        self.waiting = waiting
        self.available = available

    @property
    def in_use(self) -> bool:
        """Whether this key has anything open or pending (else its gauges are not reported)."""
        return bool(self.active or self.idle or self.waiting or self.record.connecting)


class PoolSnapshot:
    """A connector's state at one collection."""

    __slots__ = ("attributes", "hosts", "limit", "limit_per_host", "watchdog")

    def __init__(
        self,
        hosts: list[HostSnapshot],
        limit: int,
        limit_per_host: int,
        attributes: Attributes,
        watchdog: bool = False,
    ) -> None:
        self.watchdog = watchdog
        self.hosts = hosts
        self.limit = limit
        self.limit_per_host = limit_per_host
        self.attributes = attributes
