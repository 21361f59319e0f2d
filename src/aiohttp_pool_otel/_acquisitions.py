"""The slow path of an acquisition: queueing for a slot, dialling, per-lease work.

Called by the aiohttp hooks on the loop thread, inside the request's task, where
calling the SDK is safe. Each event swallows its own errors: telemetry never
changes what aiohttp does.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Optional

from opentelemetry import context as otel_context
from opentelemetry import trace

from . import semconv as sc
from ._aiohttp.classify import cancel_requests, request_origin, timer_at_start
from ._errors import report_internal_error
from ._meters import NO_EXEMPLAR
from ._records import Acquisition, Attributes, ConnectionRecord
from ._spans import SpanEmitter

if TYPE_CHECKING:
    from ._state import PoolState

_monotonic = time.monotonic

class AcquisitionEvents:
    """What one connector's hooks report about acquisitions that queue or dial."""

    def __init__(self, state: PoolState) -> None:
        self._state = state
        self._spans: SpanEmitter = state.spans

    def begin(self, key: Any, method: Optional[str], now: float) -> Optional[Acquisition]:
        """An acquisition leaves the fast path (it queues or dials)."""
        try:
            host = self._state.hosts.for_key(key)
            acq = Acquisition(host, self._spans.parent(), method, now)
            acq.cancels = cancel_requests()
            acq.timer = timer_at_start()
            return acq
        except Exception:
            report_internal_error("begin")
            return None

    # --- queueing ------------------------------------------------------------

    def wait_started(self, acq: Acquisition, queue_depth: int, blocking_limit: str) -> None:
        """The acquisition found no free slot and joined the queue."""
        try:
            acq.queued = acq.waiting = True
            queued = acq.host.queued
            queued[blocking_limit] = queued.get(blocking_limit, 0) + 1
            attributes: Attributes = {
                **acq.host.attributes,
                sc.POOL_QUEUE_DEPTH: queue_depth,
                sc.POOL_BLOCKING_LIMIT: blocking_limit,
            }
            acq.wait_span = self._spans.start(sc.SPAN_WAIT, acq.parent, attributes, acq.method)
        except Exception:
            report_internal_error("wait_started")

    def wait_finished(self, acq: Acquisition) -> None:
        """A slot became free for the queued acquisition."""
        if not acq.waiting:
            return
        acq.waiting = False
        span, acq.wait_span = acq.wait_span, None
        try:
            if span is not None:
                span.end()
        finally:
            self._record(self._state.meters.wait_time, _monotonic() - acq.started, acq)

    def failed(self, acq: Acquisition, exc: BaseException, timed_out: bool) -> None:
        """``connect()`` raised while queued or dialling: spans end with the error."""
        try:
            if acq.waiting:
                acq.waiting = False
                if timed_out:
                    acq.host.timeouts += 1
                    span = acq.wait_span
                    if span is not None and span.is_recording():
                        self._describe_pool(span)
                span, acq.wait_span = acq.wait_span, None
                self._spans.fail(span, exc, "pool_wait_timeout" if timed_out else None)
            span, acq.create_span = acq.create_span, None
            self._spans.fail(span, exc, "connect_timeout" if timed_out else None)
        except Exception:
            report_internal_error("acquire_failed")

    # --- dialling ------------------------------------------------------------

    def dial_started(self, acq: Acquisition) -> Optional[object]:
        """A new connection is being dialled; returns a context token to detach."""
        try:
            self._state.reconcile()  # a dial often follows aiohttp discarding a stale one
            acq.host.connecting += 1
            span = self._spans.start(sc.SPAN_CREATE, acq.parent, acq.host.attributes, acq.method)
            acq.create_span = span
            if span is not None:
                # Current while dialling, so the DNS span nests under it.
                return otel_context.attach(trace.set_span_in_context(span, acq.parent))
        except Exception:
            report_internal_error("dial_started")
        return None

    def dial_ended(self, acq: Acquisition, token: Optional[object]) -> None:
        """The dial returned or raised: restore the context, free the connecting slot."""
        acq.host.connecting -= 1
        if token is not None:
            try:
                otel_context.detach(token)  # type: ignore[arg-type]
            except Exception:
                report_internal_error("dial_ended")

    def dial_finished(
        self, acq: Acquisition, protocol: Any, key: Any, peer: Optional[tuple[str, int]]
    ) -> None:
        """A connection is open and about to be handed to its first request."""
        state = self._state
        now = _monotonic()
        record = state.new_record(protocol, key, now)
        record.lease_started_at = now  # the first lease starts with the connection
        span, acq.create_span = acq.create_span, None
        try:
            if span is not None:
                if peer is not None and span.is_recording():
                    span.set_attribute(sc.NETWORK_PEER_ADDRESS, peer[0])
                    span.set_attribute(sc.NETWORK_PEER_PORT, peer[1])
                if record.local_port is not None:
                    span.set_attribute(sc.NETWORK_LOCAL_PORT, record.local_port)
                span.end()
            if acq.parent is not None:
                record.span = self._lease_span(record, acq, now)
        except Exception:
            report_internal_error("dial_finished")
        self._record(state.meters.create_time, now - acq.started, acq)

    def dial_discarded(self, acq: Acquisition, protocol: Any, key: Any) -> None:
        """A dial returned after the connector closed: aiohttp closes it unused, and the
        caller gets ``ClientConnectionError``. Opened and closed; no lease."""
        state = self._state
        state.new_record(protocol, key, _monotonic())
        span, acq.create_span = acq.create_span, None
        self._spans.fail(span, ConnectionError("connector closed"), "connector_closed")
        state.closed_unused(protocol)

    # --- per-lease work (only with options that need every acquisition) ------------

    def acquired(
        self, protocol: Any, key: Any, acq: Optional[Acquisition], method: Optional[str]
    ) -> None:
        """``connect()`` handed out a connection (per-lease mode and aiohttp < 3.10.11)."""
        state = self._state
        try:
            record = state.ledger.record_of(protocol) or state.adopt(protocol, key)
            now = _monotonic()
            if record.uses:  # a reuse; a dialled connection's first lease began at the dial
                record.lease_started_at = now
            options = state.options
            if options.capture_request_location:
                record.origin = request_origin()
            if state.watchdog is not None:
                state.watchdog.arm()
            if options.trace_all_leases and record.span is None:
                if acq is None:
                    acq = Acquisition(record.host, self._spans.parent(), method, now)
                if acq.parent is not None:
                    record.span = self._lease_span(record, acq, now)
        except Exception:
            report_internal_error("acquired")

    def _lease_span(self, record: ConnectionRecord, acq: Acquisition, now: float) -> Any:
        reused = record.uses > 0
        attributes: Attributes = {
            **record.host.attributes,
            sc.CONNECTION_REUSED: reused,
            sc.CONNECTION_QUEUED: acq.queued,
        }
        if reused and record.released_at is not None:
            attributes[sc.CONNECTION_IDLE_TIME] = max(0.0, now - record.released_at)
        if record.local_port is not None:
            attributes[sc.NETWORK_LOCAL_PORT] = record.local_port
        return self._spans.start(sc.SPAN_LEASE, acq.parent, attributes, acq.method)

    @staticmethod
    def _record(histogram: Any, value: float, acq: Acquisition) -> None:
        try:
            histogram.record(value, acq.host.attributes, NO_EXEMPLAR)
        except Exception:
            report_internal_error("histogram")

    def _describe_pool(self, span: Any) -> None:
        """A bounded picture of the pool on a wait span that timed out."""
        from ._snapshot import oldest_lease_ages, take_snapshot

        snap = take_snapshot(self._state)
        oldest = oldest_lease_ages(snap, _monotonic())
        attributes: Attributes = {
            sc.POOL_ACTIVE: sum(h.active for h in snap.hosts),
            sc.POOL_IDLE: sum(h.idle for h in snap.hosts),
            sc.POOL_WAITING: sum(h.waiting or 0 for h in snap.hosts),
        }
        if oldest and None not in oldest.values():
            attributes[sc.POOL_OLDEST_LEASE_AGE] = max(v for v in oldest.values() if v is not None)
        span.set_attributes(attributes)
        busy = [h for h in snap.hosts if h.active or h.idle or h.waiting]
        for h in sorted(busy, key=lambda h: -h.active)[:10]:
            event: Attributes = {
                **h.record.attributes,
                sc.POOL_ACTIVE: h.active,
                sc.POOL_IDLE: h.idle,
                sc.POOL_WAITING: h.waiting or 0,  # queue visible: a wait timed out
            }
            age = oldest.get(h.record.identity)
            if age is not None:
                event[sc.POOL_OLDEST_LEASE_AGE] = age
            span.add_event(sc.EVENT_POOL_KEY, event)
