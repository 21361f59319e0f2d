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

from . import semconv as sc
from ._acquisitions import AcquisitionEvents
from ._errors import report_internal_error
from ._hosts import HostBook
from ._meters import SCOPE, meters_for
from ._options import PoolOptions
from ._records import (
    CLOSE,
    CLOSED,
    CONNECTOR_CLOSED,
    EOF,
    POOLED,
    Attributes,
    ConnectionRecord,
)
from ._release_facts import ReleaseFact, emit_release
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
        self.hosts = HostBook(options.max_hosts, self.pool_attributes, view.identify)
        tracer = trace.get_tracer(SCOPE, __version__, options.tracer_provider)
        self.spans = SpanEmitter(tracer, options.root_spans)
        self.meters = meters_for(options.meter_provider)
        threshold = options.watchdog_threshold
        self.watchdog = Watchdog(float(threshold), self.held) if threshold else None
        # Records of the connections open now, by aiohttp protocol: nothing is stored
        # on aiohttp's objects.
        self.records: dict[Any, ConnectionRecord] = {}
        self.pending: deque[ReleaseFact] = deque()
        self._drain_scheduled = False
        # A request that queued, until the dial that may follow in the same connect().
        self.queued: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        self.acquisitions = AcquisitionEvents(self)
        self.meters.register(self)

    # --- records ------------------------------------------------------------

    def new_record(self, protocol: Any, key: Any, now: float) -> ConnectionRecord:
        """A record for a connection opened now (loop thread)."""
        host = self.hosts.for_key(key)
        record = self.records[protocol] = ConnectionRecord(host, now)
        record.local_port = self.view.local_port(protocol)
        host.created += 1
        return record

    def adopt(self, protocol: Any, key: Any) -> ConnectionRecord:
        """A record for a connection we did not see dialled (it predates the plugin, or
        a subclass dialled it by itself): counted from its first release on."""
        return self.new_record(protocol, key, _monotonic())

    def held(self) -> list[ConnectionRecord]:
        """Records of the connections requests hold now (loop thread)."""
        records = self.records
        return [r for p in self.view.held_protocols() if (r := records.get(p)) is not None]

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
            if (
                reason is EOF
                and outcome is POOLED
                and record.uses
                and record.lease_started_at is None
                and record.span is None
                and not self.per_lease_work
            ):
                # Almost every request: a reuse back to the pool at EOF, with nothing
                # more to say. _count() inlined: a call is ~10 % of the plugin's cost.
                host = record.host
                host.eof_pooled += 1
                host.reused += 1
                record.uses += 1
                return
            self._count(protocol, record, reason, outcome)
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

    def _count(
        self, protocol: Any, record: ConnectionRecord, reason: ReleaseReason,
        outcome: ReleaseOutcome,
    ) -> None:  # fmt: skip
        host = record.host
        if reason is EOF and outcome is POOLED:
            host.eof_pooled += 1
        else:
            pair = (reason, outcome)
            host.releases[pair] = host.releases.get(pair, 0) + 1
        if record.uses:
            host.reused += 1
        record.uses += 1
        if outcome is CLOSED and self.records.pop(protocol, None) is not None:
            host.closed += 1

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
                    self._count(fact.protocol, record, fact.reason, fact.outcome)
                    fact.take_lease(record)
                    record.gc_pending = False
                emit_release(self, fact)
            except Exception:
                report_internal_error("release")

    # --- closes aiohttp makes by itself -------------------------------------------

    def reconcile(self, threadsafe: bool = False) -> None:
        """Count the connections aiohttp closed without a release (loop thread)."""
        try:
            records = self.records
            if len(records) <= self.view.open_count():
                return  # nothing was closed behind our back (the usual case, cheap)
            alive = self.view.open_protocols()
            lost = [
                (p, r)
                for p, r in list(records.items())
                if p not in alive and not r.gc_pending and not self.view.is_connected(p)
            ]
            if not lost:
                return
            closed = CONNECTOR_CLOSED if self.view.closed else CLOSE
            for protocol, record in lost:
                if record.lease_started_at is not None:  # a lease no release will end
                    self._count(protocol, record, closed, CLOSED)
                elif records.pop(protocol, None) is not None:
                    record.host.closed += 1
                self.pending.append(ReleaseFact.of(protocol, record, closed, None, CLOSED))
            self.schedule_drain(threadsafe)
        except Exception:
            if not threadsafe:
                report_internal_error("reconcile")

    def closed_unused(self, protocol: Any) -> None:
        """A connection closes before any request held it (its lifetime is recorded)."""
        record = self.records.pop(protocol, None)
        if record is not None:
            record.host.closed += 1
            self._emit(ReleaseFact.of(protocol, record, CONNECTOR_CLOSED, None, CLOSED))

    def connector_closed(self, held: list[Any], in_finalizer: bool) -> None:
        """The connector closed: held leases end, and every connection is closed."""
        try:
            if self.watchdog is not None and not in_finalizer:
                self.watchdog.stop()
            for protocol in held:
                record = self.records.get(protocol)
                if record is not None:
                    self._count(protocol, record, CONNECTOR_CLOSED, CLOSED)
                    self.pending.append(
                        ReleaseFact.of(protocol, record, CONNECTOR_CLOSED, None, CLOSED)
                    )
            self.reconcile(threadsafe=in_finalizer)
            if not in_finalizer:
                self.drain()  # spans end before close() returns
        except Exception:
            if not in_finalizer:
                report_internal_error("connector_closed")

    # --- state, for statistics() and the metric callbacks ---------------------

    def snapshot_for_collection(self) -> PoolSnapshot:
        """One collection's snapshot (reader thread); asks the loop to reconcile when
        our books hold more connections than aiohttp's pool."""
        snap = take_snapshot(self)
        if len(self.records) > len(snap.held or ()) + sum(h.idle for h in snap.hosts):
            self.reconcile_soon()
        if self.view.closed:
            # A closed pool has no state to report: only its final counts, until the
            # connector is garbage-collected (a last export then shows created == closed).
            snap.held = None
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
