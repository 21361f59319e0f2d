"""Plain records of the pool: a host's counters, a connection, an acquisition.

They hold facts only (ints, floats, spans) and no logic, so the loop thread can
update them cheaply and the metric reader's thread can read them at any time:
reading an int attribute is atomic under the GIL. Every field means the same thing
whatever options are on; a value nobody could know is ``None``, never a guess.
"""

from __future__ import annotations

from typing import Optional, Union

from opentelemetry.context import Context
from opentelemetry.trace import Span

from .semconv import ReleaseOutcome, ReleasePhase, ReleaseReason

HostId = tuple[str, Optional[int], str]
"""(host, port, scheme): the part of aiohttp's pool key that telemetry may show."""

Attributes = dict[str, Union[str, int, bool, float]]

# Enum members as module constants, for the modules on the release path to import: each
# is read on every release, and a class attribute lookup of an enum member costs ~70 ns.
EOF = ReleaseReason.EOF
RELEASE = ReleaseReason.RELEASE
CLOSE = ReleaseReason.CLOSE
GC = ReleaseReason.GC
ERROR = ReleaseReason.ERROR
CONNECTOR_CLOSED = ReleaseReason.CONNECTOR_CLOSED
HEADERS = ReleasePhase.HEADERS
BODY = ReleasePhase.BODY
POOLED = ReleaseOutcome.POOLED
CLOSED = ReleaseOutcome.CLOSED


class HostRecord:
    """Cumulative counters of one host series (a pool key, or ``_OTHER``).

    Mutated on the loop thread only; finalizers never touch it (their facts wait in
    :attr:`PoolState.pending` until the loop applies them).
    """

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
        "waits_seen",
    )

    def __init__(self, identity: HostId, attributes: Attributes, waits_seen: bool = True) -> None:
        self.identity = identity
        self.attributes = attributes
        # Whether its source can see acquisitions queue (and so time out): when not (an
        # aiohttp whose queue internals moved), its timeouts are unknown, not 0.
        self.waits_seen = waits_seen
        self.connecting = 0  # dials in progress
        self.created = 0  # dials that returned a connection
        self.reused = 0  # leases of a pooled connection, counted when they end
        self.closed = 0  # connections of ``created`` that closed, by any path
        self.timeouts = 0  # acquisitions that timed out while queued
        # The release of almost every request, (eof, pooled), is a plain int; every
        # other (reason, outcome) pair is counted in the dict.
        self.eof_pooled = 0
        self.releases: dict[tuple[ReleaseReason, ReleaseOutcome], int] = {}
        self.queued: dict[str, int] = {}  # by the limit that blocked

    def absorb(self, other: HostRecord) -> None:
        """Add ``other``'s counts to these (a retired connector's, into the totals)."""
        self.created += other.created
        self.reused += other.reused
        self.closed += other.closed
        self.timeouts += other.timeouts
        self.waits_seen = self.waits_seen and other.waits_seen
        self.eof_pooled += other.eof_pooled
        for pair, n in other.releases.copy().items():
            self.releases[pair] = self.releases.get(pair, 0) + n
        for limit, n in other.queued.copy().items():
            self.queued[limit] = self.queued.get(limit, 0) + n

    def copy(self) -> HostRecord:
        """The counts as they are now, in a record of their own."""
        copy = HostRecord(self.identity, self.attributes)
        copy.absorb(self)
        return copy

    def release_counts(self) -> dict[tuple[ReleaseReason, ReleaseOutcome], int]:
        """Releases so far by (reason, outcome) (any thread: a copy)."""
        counts = self.releases.copy()
        if self.eof_pooled:
            counts[(EOF, POOLED)] = counts.get((EOF, POOLED), 0) + self.eof_pooled
        return counts


class ConnectionRecord:
    """One connection dialled (or first seen) by an instrumented connector.

    ``lease_started_at`` is when the current lease began, or ``None`` when no lease
    is in progress or its start was not seen (a reuse without per-lease options:
    the reuse path runs aiohttp's own code).
    """

    __slots__ = (
        "created_at",
        "detached",
        "gc_pending",
        "held_too_long",
        "host",
        "lease_started_at",
        "local_port",
        "origin",
        "released_at",
        "span",
        "uses",
    )

    def __init__(self, host: HostRecord, created_at: float) -> None:
        self.host = host
        self.created_at = created_at
        self.lease_started_at: Optional[float] = None
        self.released_at: Optional[float] = None  # end of the last lease, per-lease mode
        self.uses = 0  # leases that ended
        self.local_port: Optional[int] = None  # identifies the connection on its spans
        self.span: Optional[Span] = None  # the lease span, while one is open
        self.held_too_long = False
        self.origin: Optional[tuple[str, int, str]] = None  # request line, for gc reports
        # Set by a finalizer that released this connection, until the loop applies
        # the fact: reconciliation must not count that close a second time.
        self.gc_pending = False
        # Upgraded (a WebSocket): its last lease ended, its close is still to count.
        self.detached = False


class Acquisition:
    """An acquisition that left the fast path: it queued, or it dials.

    Created by the hook that saw it first and handed, with the request, to the dial
    that may follow in the same ``connect()``.
    """

    __slots__ = (
        "cancels",
        "create_span",
        "host",
        "method",
        "parent",
        "queued",
        "started",
        "timer",
        "wait_span",
        "waiting",
    )

    def __init__(
        self, host: HostRecord, parent: Optional[Context], method: Optional[str], now: float
    ) -> None:
        self.host = host
        self.parent = parent  # where spans go; None: no span
        self.method = method
        self.started = now  # the acquisition's clock: wait and dial timeouts count from it
        self.cancels: Optional[int] = None  # the task's cancellation requests at the start
        self.timer: object = None  # aiohttp's request timer (Python < 3.11 only)
        self.queued = False
        self.waiting = False
        self.wait_span: Optional[Span] = None
        self.create_span: Optional[Span] = None
