"""What connectors that are gone counted: the part of every counter they leave behind.

A counter must never go down and must sum every connector that ever reported to
it, short-lived ones included (a session per request, a library that builds and
drops its own connector). The counters are observed from each live connector's
plain ints, so a connector that is garbage-collected would take its counts with
it; its final values are folded here instead, per attribute set, and every later
collection adds them to the live ones.

Folding happens on the loop thread (when a new connector registers) or in the
metric reader's thread (at collection), under :class:`~._meters.PoolMeters`'
lock, never in a finalizer: a finalizer only queues the dead reference. A fold
costs the retired connector's own series, not every series folded so far: a
session per request folds one small book per session.

The folded series are bounded like a connector's own: at most ``max_hosts`` host
series per pool name, later hosts into ``server.address="_OTHER"``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Callable

from . import semconv as sc
from ._records import Attributes, HostRecord

SeriesKey = frozenset[tuple[str, object]]

CountObserve = Callable[[HostRecord], Iterable[tuple[Attributes, int]]]
"""A counter's values for one host record: (attributes beyond the host's, value)."""


def _plain(name: str) -> CountObserve:
    def observe(record: HostRecord) -> Iterable[tuple[Attributes, int]]:
        return (({}, getattr(record, name)),)

    return observe


def _queued(record: HostRecord) -> Iterable[tuple[Attributes, int]]:
    return [({sc.POOL_BLOCKING_LIMIT: limit}, n) for limit, n in record.queued.copy().items()]


def _releases(record: HostRecord) -> Iterable[tuple[Attributes, int]]:
    return [
        ({sc.RELEASE_REASON: reason.value, sc.RELEASE_OUTCOME: outcome.value}, n)
        for (reason, outcome), n in record.release_counts().items()
    ]


# Every counter instrument: (name, unit, description, values per host record).
COUNTERS: tuple[tuple[str, str, str, CountObserve], ...] = (
    (sc.METRIC_CREATED, "{connection}", "Connections dialled successfully.", _plain("created")),
    (sc.METRIC_REUSED, "{connection}",
     "Acquisitions served by an idle pooled connection.", _plain("reused")),
    (sc.METRIC_CLOSED, "{connection}", "Connections closed, by any path.", _plain("closed")),
    (sc.METRIC_TIMEOUTS, "{connection}",
     "Acquisitions that timed out waiting for a slot.", _plain("timeouts")),
    (sc.METRIC_QUEUED, "{request}",
     "Acquisitions that found no free slot, by the limit that blocked them.", _queued),
    (sc.METRIC_RELEASES, "{connection}",
     "Connections given back by requests, by release reason and outcome.", _releases),
)  # fmt: skip


def series_key(attributes: Mapping[str, object]) -> SeriesKey:
    """The identity of one series: its attribute set."""
    return frozenset(attributes.items())


class RetiredCounts:
    """Final counts of retired sources, per counter and attribute set.

    Changed only under :class:`~._meters.PoolMeters`' lock; a collection reads a
    :meth:`copy` taken under that lock, so it keeps reading the same numbers while
    another thread folds.
    """

    __slots__ = ("_hosts", "_values")

    def __init__(self) -> None:
        # counter name -> series -> (value, attributes)
        self._values: dict[str, dict[SeriesKey, tuple[int, Attributes]]] = {
            name: {} for name, *_ in COUNTERS
        }
        # pool attributes -> the host series folded for that pool (the budget)
        self._hosts: dict[SeriesKey, set[SeriesKey]] = {}

    def copy(self) -> RetiredCounts:
        """A snapshot for one collection."""
        other = RetiredCounts()
        other._values = {name: dict(series) for name, series in self._values.items()}
        return other

    def of(self, counter: str) -> Mapping[SeriesKey, tuple[int, Attributes]]:
        """The folded series of one counter."""
        return self._values[counter]

    def fold(self, book: RetiredBook) -> None:
        """Add the final counts of ``book``'s source."""
        for record in book.records():
            host = self._host_attributes(book, record)
            for name, _, _, observe in COUNTERS:
                series = self._values[name]
                # Zeros too: a series a live connector reported never vanishes.
                for extra, n in observe(record):
                    attributes = {**host, **extra} if extra else host
                    key = series_key(attributes)
                    seen = series.get(key)
                    series[key] = (n + seen[0] if seen else n, attributes)

    def _host_attributes(self, book: RetiredBook, record: HostRecord) -> Attributes:
        """``record``'s host attributes, or the pool's overflow series past the budget."""
        if record.identity[0] == sc.OTHER_HOST:
            return record.attributes
        known = self._hosts.setdefault(series_key(book.pool_attributes), set())
        key = series_key(record.attributes)
        if key in known:
            return record.attributes
        if len(known) >= book.max_hosts:
            return {sc.SERVER_ADDRESS: sc.OTHER_HOST, **book.pool_attributes}
        known.add(key)
        return record.attributes


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
