"""One connector's books: its connections, its host series, and the release path.

Threads and contexts, because exactness depends on them:

* Counters are changed on the loop thread only, and never from a finalizer. A
  release that a garbage collection caused (``gc``) may run in any thread, in the
  middle of any bytecode, even inside the SDK while it holds a lock: it only
  appends a plain fact to :attr:`PoolState.pending` and asks the loop to apply it.
* SDK work for a release (ending a lease span, a histogram record) is never done
  where the release happens, which is often aiohttp's transport callback: it is a
  fact in ``pending`` too, turned into telemetry by :meth:`PoolState.drain` on the
  loop, right after.
* The metric reader's thread only reads (:func:`~._snapshot.take_snapshot`).

A connection aiohttp closes without telling anyone (a stale keep-alive connection
it discards, a dial it drops because the connector closed) is found by
:meth:`PoolState.reconcile`, which compares our open records with aiohttp's pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any, Optional

from opentelemetry import trace
from opentelemetry.trace import Tracer, TracerProvider

from . import semconv as sc
from ._acquisitions import AcquisitionEvents
from ._errors import report_internal_error
from ._hosts import HostBook
from ._ledger import PoolLedger
from ._meters import SCOPE, meters_for
from ._options import PoolOptions
from ._records import (
    CLOSE,
    CLOSED,
    CONNECTOR_CLOSED,
    Attributes,
    ConnectionRecord,
)
from ._release_facts import ReleaseFact, emit_release
from ._retired import RetiredBook
from ._snapshot import PoolSnapshot, statistics_of, take_snapshot
from ._spans import SpanEmitter
from ._version import __version__
from ._watchdog import Watchdog
from .semconv import ReleaseOutcome, ReleasePhase, ReleaseReason
from .statistics import PoolStatistics

if TYPE_CHECKING:
    from ._aiohttp.view import PoolView

_monotonic = time.monotonic
_current_task = asyncio.current_task

# One tracer per provider, not per connector: get_tracer builds a new Tracer each call
# (~12 µs), which a session per request would pay on every request. The global
# provider is looked up each time, so a provider set (or reset, in tests) later is
# followed.
_tracers: weakref.WeakKeyDictionary[Any, Tracer] = weakref.WeakKeyDictionary()


def _tracer_of(provider: Optional[TracerProvider]) -> Tracer:
    """The package's tracer of ``provider`` (``None``: the global one)."""
    if provider is None:
        provider = trace.get_tracer_provider()
    try:
        tracer = _tracers.get(provider)
        if tracer is None:
            tracer = _tracers[provider] = trace.get_tracer(SCOPE, __version__, provider)
    except TypeError:  # a provider that cannot be weakly referenced: not cached
        tracer = trace.get_tracer(SCOPE, __version__, provider)
    return tracer


class PoolState:
    """Everything the plugin knows about one connector."""

    def __init__(self, options: PoolOptions, view: PoolView, *, explicit: bool) -> None:
        self.options = options
        self.view = view
        # An OpenTelemetryTCPConnector's own state, which the instrumentor's class-level
        # hooks leave to the subclass's hooks: nothing is counted twice.
        self.explicit = explicit
        self.per_lease_work = options.per_lease_work
        name = options.pool_name
        self.pool_attributes: Attributes = {sc.POOL_NAME: name} if name else {}
        self.hosts = HostBook(
            options.max_hosts, self.pool_attributes, view.identify, view.sees_waits
        )
        self.spans = SpanEmitter(_tracer_of(options.tracer_provider), options.root_spans)
        self.meters = meters_for(options.meter_provider)
        threshold = options.watchdog_threshold
        self.watchdog = Watchdog(float(threshold), self.leased_records) if threshold else None
        # The connections open now and their hosts' counts: moved by pool events only.
        self.ledger = PoolLedger()
        self.pending: deque[ReleaseFact] = deque()
        self._drain_scheduled = False
        # A request that queued, until the dial that may follow in the same connect().
        self.queued: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        # Through a proxy: a strong reference back would make every state a reference
        # cycle, left for the cyclic GC instead of freed with its connector.
        self.acquisitions = AcquisitionEvents(weakref.proxy(self))
        self.meters.register(
            self, RetiredBook(self.hosts.records, self.pool_attributes, options.max_hosts)
        )

    # --- records ------------------------------------------------------------

    def new_record(self, protocol: Any, key: Any, now: float) -> ConnectionRecord:
        """A record for a connection opened now (loop thread)."""
        record = self.ledger.opened(protocol, self.hosts.for_key(key), now)
        record.local_port = self.view.local_port(protocol)  # names its row in a timeline
        return record

    def adopt(self, protocol: Any, key: Any) -> ConnectionRecord:
        """A record for a connection we did not see dialled (it predates the plugin, or
        a subclass dialled it by itself): counted from its first release on."""
        return self.new_record(protocol, key, _monotonic())

    def leased_records(self) -> list[ConnectionRecord]:
        """Records of the connections requests hold now (loop thread)."""
        record_of = self.ledger.record_of
        return [r for p in self.view.held_protocols() if (r := record_of(p)) is not None]

    # --- the release path (hot) -------------------------------------------------

    def released(
        self,
        protocol: Any,
        record: ConnectionRecord,
        reason: ReleaseReason,
        phase: Optional[ReleasePhase],
        outcome: ReleaseOutcome,
    ) -> None:
        """aiohttp gave a held connection back (loop thread, never a finalizer)."""
        try:
            self.ledger.lease_ended(protocol, record, reason, outcome)
            if outcome is CLOSED or record.span is not None or self.per_lease_work:
                self._emit(ReleaseFact.of(protocol, record, reason, phase, outcome))
            elif record.lease_started_at is not None:  # a first lease: nothing to emit
                record.lease_started_at = None
        except Exception:
            report_internal_error("released")

    def _emit(self, fact: ReleaseFact) -> None:
        """Emit now in a task (the caller's own code path), else from a loop callback:
        a release in aiohttp's transport callback calls no SDK."""
        if _current_task(self.view.loop) is not None and not self.pending:
            emit_release(self, fact)
        else:
            self.pending.append(fact)
            self.schedule_drain(threadsafe=False)

    def released_in_finalizer(self, fact: ReleaseFact) -> None:
        """A garbage collection released a connection: keep the fact for the loop.

        No lock, no SDK, no logging, no counter: a deque append is atomic.
        """
        self.pending.append(fact)
        self.schedule_drain(threadsafe=True)

    def schedule_drain(self, threadsafe: bool) -> None:
        """Have the loop turn pending facts into telemetry soon (once per batch)."""
        if self._drain_scheduled:
            return
        self._drain_scheduled = True
        try:
            loop = self.view.loop
            if threadsafe:
                loop.call_soon_threadsafe(self.drain)
            else:
                loop.call_soon(self.drain)
        except RuntimeError:  # the loop is closed: nothing will run any more
            self._drain_scheduled = False

    def drain(self) -> None:
        """Apply pending facts: count those a finalizer left, emit every one (loop)."""
        self._drain_scheduled = False
        pending = self.pending
        while pending:
            fact = pending.popleft()
            try:
                if not fact.counted:
                    record = fact.record or self.adopt(fact.protocol, fact.key)
                    fact.record = record
                    self.ledger.lease_ended(fact.protocol, record, fact.reason, fact.outcome)
                    fact.take_lease(record)
                    record.gc_pending = False
                emit_release(self, fact)
            except Exception:
                report_internal_error("release")

    # --- closes aiohttp makes by itself -------------------------------------------

    def reconcile(self, threadsafe: bool = False, drain: bool = True) -> None:
        """Count the connections aiohttp closed without a release (loop thread);
        ``drain=False``: the caller drains right after (no loop callback needed)."""
        try:
            ledger = self.ledger
            if len(ledger) <= self.view.open_count():
                return  # nothing was closed behind our back (the usual case, cheap)
            alive = self.view.open_protocols()
            lost = [
                (p, r)
                for p, r in ledger.open_connections()
                if p not in alive and not r.gc_pending and not self.view.is_connected(p)
            ]
            if not lost:
                return
            closed = CONNECTOR_CLOSED if self.view.closed else CLOSE
            for protocol, record in lost:
                if record.lease_started_at is not None:  # a lease no release will end
                    ledger.lease_ended(protocol, record, closed, CLOSED)
                else:
                    ledger.closed(protocol)
                self.pending.append(ReleaseFact.of(protocol, record, closed, None, CLOSED))
            if drain:
                self.schedule_drain(threadsafe)
        except Exception:
            if not threadsafe:
                report_internal_error("reconcile")

    def closed_unused(self, protocol: Any) -> None:
        """A connection closes before any request held it (its lifetime is recorded)."""
        record = self.ledger.closed(protocol)
        if record is not None:
            self._emit(ReleaseFact.of(protocol, record, CONNECTOR_CLOSED, None, CLOSED))

    def connector_closed(self, leased: list[Any], in_finalizer: bool) -> None:
        """The connector closed: held leases end, and every connection is closed."""
        try:
            if self.watchdog is not None and not in_finalizer:
                self.watchdog.stop()
            for protocol in leased:
                record = self.ledger.record_of(protocol)
                if record is not None:
                    self.ledger.lease_ended(protocol, record, CONNECTOR_CLOSED, CLOSED)
                    self.pending.append(
                        ReleaseFact.of(protocol, record, CONNECTOR_CLOSED, None, CLOSED)
                    )
            # Out of a finalizer the facts are applied here, before close() returns (so
            # spans end by then); a finalizer leaves them to a loop callback.
            self.reconcile(threadsafe=in_finalizer, drain=in_finalizer)
            if not in_finalizer:
                self.drain()
        except Exception:
            if not in_finalizer:
                report_internal_error("connector_closed")

    # --- state, for statistics() and the metric callbacks ---------------------

    def snapshot_for_collection(self) -> PoolSnapshot:
        """One collection's snapshot (reader thread); asks the loop to reconcile when
        our books hold more connections than aiohttp's pool."""
        snap = take_snapshot(self)
        if len(self.ledger) > len(snap.leases) + sum(h.idle for h in snap.hosts):
            self.reconcile_soon()
        return snap

    def reconcile_soon(self) -> None:
        """Reconcile on the loop, from any thread."""
        with contextlib.suppress(RuntimeError):  # the loop is closed
            self.view.loop.call_soon_threadsafe(self.reconcile)

    def statistics(self) -> PoolStatistics:
        """Exact statistics: on the loop thread, pending facts are applied and aiohttp's
        pool reconciled first; from another thread, what the books say now."""
        if self.on_loop_thread():
            self.drain()
            self.reconcile()
            self.drain()
        return statistics_of(take_snapshot(self))

    def on_loop_thread(self) -> bool:
        """Whether the caller runs in a task or callback of the connector's loop."""
        try:
            return asyncio.get_running_loop() is self.view.loop
        except RuntimeError:
            return False
