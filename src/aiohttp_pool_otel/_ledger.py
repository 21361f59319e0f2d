"""The pool's books: the connections open now and what each host counted.

Only the methods of :class:`PoolLedger` move the books, one method per event of
the pool, so the invariant is kept in one place: per host and in total,

    created - closed == connections with a record (open now)

which, at a moment when no dial is in progress, is aiohttp's ``active + idle``.
A dial in progress has no record yet; it is counted in ``HostRecord.connecting``
by whoever watches the dial.

Loop thread only: a finalizer never calls these (its facts wait for the loop).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Optional

from ._records import CLOSED, EOF, POOLED, ConnectionRecord, HostRecord
from .semconv import ReleaseOutcome, ReleaseReason


class PoolLedger:
    """Open connections by aiohttp protocol, and the counts of their hosts."""

    __slots__ = ("_open",)

    def __init__(self) -> None:
        # By aiohttp protocol: nothing is stored on aiohttp's objects.
        self._open: dict[Any, ConnectionRecord] = {}

    def __len__(self) -> int:
        return len(self._open)

    def __contains__(self, protocol: object) -> bool:
        return protocol in self._open

    def record_of(self, protocol: Any) -> Optional[ConnectionRecord]:
        """The record of an open connection, if it has one."""
        return self._open.get(protocol)

    def open_connections(self) -> Iterator[tuple[Any, ConnectionRecord]]:
        """(protocol, record) of every open connection (a copy: safe to close while
        iterating)."""
        return iter(list(self._open.items()))

    # --- events ------------------------------------------------------------------

    def opened(self, protocol: Any, host: HostRecord, at: float) -> ConnectionRecord:
        """A connection was dialled (or first seen at its release): it is open."""
        record = self._open[protocol] = ConnectionRecord(host, at)
        host.created += 1
        return record

    def lease_ended(
        self,
        protocol: Any,
        record: ConnectionRecord,
        reason: ReleaseReason,
        outcome: ReleaseOutcome,
    ) -> None:
        """A request's lease ended (a release, or a close that ended it): counted once
        under its reason and outcome; a closed connection leaves the books."""
        host = record.host
        if reason is EOF and outcome is POOLED:
            host.eof_pooled += 1  # almost every request: a plain int, not the dict
        else:
            pair = (reason, outcome)
            host.releases[pair] = host.releases.get(pair, 0) + 1
        if record.uses:
            host.reused += 1
        record.uses += 1
        if outcome is CLOSED:
            self.closed(protocol)

    def closed(self, protocol: Any) -> Optional[ConnectionRecord]:
        """A connection closed: it leaves the books, counted once (a second close of
        the same connection changes nothing). Its record, if it was open."""
        record = self._open.pop(protocol, None)
        if record is not None:
            record.host.closed += 1
        return record
