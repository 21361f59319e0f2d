"""Snapshots of a connector's pool and the statistics built from them.

A snapshot is read once and then only read: one metric collection takes one
snapshot per connector and every instrument of that collection observes it, so the
numbers of one collection always agree with each other. Safe on any thread: it
reads aiohttp's state through atomic copies and the records' plain ints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from ._records import Attributes, ConnectionRecord, HostId, HostRecord
from .semconv import ReleaseReason
from .statistics import HostPoolStatistics, PoolStatistics

if TYPE_CHECKING:
    from ._state import PoolState


class HostSnapshot:
    """One host series' state at one moment."""

    __slots__ = ("active", "available", "held_too_long", "idle", "record", "waiting")

    def __init__(
        self,
        record: HostRecord,
        active: int,
        idle: int,
        waiting: Optional[int],
        available: Optional[int],
        held_too_long: int,
    ) -> None:
        self.record = record
        self.active = active
        self.idle = idle
        self.waiting = waiting  # None: this aiohttp's queue is not visible
        self.available = available
        self.held_too_long = held_too_long


class PoolSnapshot:
    """A connector's state at one moment: one :class:`HostSnapshot` per host series."""

    __slots__ = ("attributes", "hosts", "leases", "limit", "limit_per_host", "state", "watchdog")

    def __init__(
        self,
        hosts: list[HostSnapshot],
        leases: list[ConnectionRecord],
        limit: int,
        limit_per_host: int,
        attributes: Attributes,
        watchdog: bool,
        state: bool = True,
    ) -> None:
        self.hosts = hosts
        self.leases = leases  # records of the connections requests hold
        # Whether the snapshot reports pool state (gauges): not a trace config, which
        # does not see aiohttp's pool, nor a closed connector, which has none left.
        self.state = state
        self.limit = limit
        self.limit_per_host = limit_per_host
        self.attributes = attributes
        self.watchdog = watchdog


def _per_record(state: PoolState, counts: dict[Any, int]) -> dict[HostRecord, int]:
    out: dict[HostRecord, int] = {}
    for key, n in counts.items():
        record = state.hosts.peek(key)
        if record is not None and n:
            out[record] = out.get(record, 0) + n
    return out


def take_snapshot(state: PoolState) -> PoolSnapshot:
    """Read ``state``'s pool now."""
    view = state.view.read()
    record_of = state.ledger.record_of
    leases: list[ConnectionRecord] = []
    active: dict[HostRecord, int] = {}
    for protocol in view.acquired:
        conn = record_of(protocol)
        if conn is not None:  # dials in progress have a placeholder and no record
            leases.append(conn)
            active[conn.host] = active.get(conn.host, 0) + 1
    idle = _per_record(state, view.idle)
    waiting = None if view.waiting is None else _per_record(state, view.waiting)
    too_long: dict[HostId, int] = state.watchdog.count(leases) if state.watchdog else {}
    limit, per_host = view.limit, view.limit_per_host
    hosts = []
    # aiohttp's own count of what is taken: it includes dials in progress.
    host_records = state.hosts.records()
    total_free = limit - len(leases) - sum(r.connecting for r in host_records) if limit else None
    for record in host_records:
        n_active = active.get(record, 0)
        available: Optional[int] = None
        if record is not state.hosts.other:  # a sum of many hosts has no single limit
            if per_host:
                available = per_host - n_active - record.connecting
            if total_free is not None:
                available = total_free if available is None else min(available, total_free)
            if available is not None:
                available = max(available, 0)
        hosts.append(
            HostSnapshot(
                record,
                n_active,
                idle.get(record, 0),
                None if waiting is None else waiting.get(record, 0),
                available,
                too_long.get(record.identity, 0),
            )
        )
    return PoolSnapshot(
        hosts, leases, limit, per_host, state.pool_attributes, state.watchdog is not None,
        state=not state.view.closed,
    )


def oldest_lease_ages(snap: PoolSnapshot, now: float) -> dict[HostId, Optional[float]]:
    """Per host, the age of its oldest lease held in ``snap``; ``None`` where a held
    lease's start was not seen (a reuse without per-lease options): no age rather than
    a wrong one."""
    oldest: dict[HostId, Optional[float]] = {}
    for record in snap.leases:
        identity, started = record.host.identity, record.lease_started_at
        if started is None:
            oldest[identity] = None
        elif identity not in oldest or oldest[identity] is not None:
            oldest[identity] = max(oldest.get(identity) or 0.0, now - started)
    return oldest


def statistics_of(snap: PoolSnapshot) -> PoolStatistics:
    """The public, frozen statistics of a snapshot."""
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
            waiting=h.waiting or 0,
            available=h.available,
            limit=snap.limit,
            limit_per_host=snap.limit_per_host,
            created=r.created,
            reused=r.reused,
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
