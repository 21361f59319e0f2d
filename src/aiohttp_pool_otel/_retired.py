"""What connectors that are gone counted: the part of every counter they leave behind.

A counter must never go down and must sum every connector that ever reported to
it, short-lived ones included (a session per request, a library that builds and
drops its own connector). The counters are observed from each live connector's
plain ints, so a connector that is garbage-collected would take its counts with
it; its final values are folded here instead, per attribute set, and every later
collection adds them to the live ones.

Folding happens on the loop thread (when a new connector registers) or in the
metric reader's thread (at collection), under :class:`~._meters.PoolMeters`'
lock, never in a finalizer: a finalizer only queues the dead reference. A fold adds
a few ints per host of the retired connector: a session per request folds one
small book per session.

The folded series are bounded like a connector's own: at most ``max_hosts`` host
series per pool name, later hosts into ``server.address="_OTHER"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Callable

from . import semconv as sc
from ._records import Attributes, HostRecord

SeriesKey = frozenset[tuple[str, object]]


def series_key(attributes: Mapping[str, object]) -> SeriesKey:
    """The identity of one series: its attribute set."""
    return frozenset(attributes.items())


class RetiredCounts:
    """The final counts of retired sources: one :class:`HostRecord` per host series.

    Changed only under :class:`~._meters.PoolMeters`' lock; a collection reads a
    :meth:`copy` taken under that lock, so it keeps reading the same numbers while
    another thread folds. Counters observe these records exactly as they observe a
    live connector's.
    """

    __slots__ = ("_budgets", "_records")

    def __init__(self) -> None:
        self._records: dict[SeriesKey, HostRecord] = {}  # host attributes -> totals
        # pool attributes -> the host series kept for that pool (the max_hosts budget)
        self._budgets: dict[SeriesKey, set[SeriesKey]] = {}

    def copy(self) -> list[HostRecord]:
        """The totals now, for one collection."""
        return [record.copy() for record in self._records.values()]

    def fold(self, book: RetiredBook) -> None:
        """Add the final counts of ``book``'s source: a few int additions per host."""
        for record in book.records():
            key = series_key(record.attributes)
            total = self._records.get(key)
            if total is None:
                total = self._new_total(book, record, key)
            total.absorb(record)

    def _new_total(self, book: RetiredBook, record: HostRecord, key: SeriesKey) -> HostRecord:
        """The totals of a host series not folded before, or of the pool's overflow
        series once the pool's budget of host series is spent."""
        budget = self._budgets.setdefault(series_key(book.pool_attributes), set())
        if record.identity[0] != sc.OTHER_HOST and len(budget) >= book.max_hosts:
            other: Attributes = {sc.SERVER_ADDRESS: sc.OTHER_HOST, **book.pool_attributes}
            key = series_key(other)
            total = self._records.get(key)
            if total is None:
                total = self._records[key] = HostRecord((sc.OTHER_HOST, None, ""), other)
            return total
        if record.identity[0] != sc.OTHER_HOST:
            budget.add(key)
        total = self._records[key] = HostRecord(record.identity, record.attributes)
        return total


class RetiredBook:
    """What a source leaves behind: its host records, its pool and its budget."""

    __slots__ = ("_records", "max_hosts", "pool_attributes")

    def __init__(
        self,
        records: Callable[[], list[HostRecord]],
        pool_attributes: Attributes,
        max_hosts: int,
    ) -> None:
        self._records = records
        self.pool_attributes = pool_attributes
        self.max_hosts = max_hosts

    def records(self) -> list[HostRecord]:
        """The source's host records as they are now."""
        return self._records()
