"""The instruments, created once per MeterProvider and shared by every connector on it.

Pool state and counts are never pushed per request: observable instruments read
each connector's plain ints when the reader collects, from one snapshot per
collection (the first callback of a collection takes it, the others reuse it, per
thread, so two readers never mix their collections). Gauges report live
connectors; counters add what retired connectors left behind (:mod:`._retired`),
so they never go down. Histograms are recorded on the loop thread only, from the
slow paths or from deferred release facts.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol

from opentelemetry import context as otel_context
from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Histogram, MeterProvider, Observation

from . import semconv as sc
from ._records import Attributes, HostRecord
from ._retired import RetiredBook, RetiredCounts, SeriesKey, series_key
from ._version import __version__

if TYPE_CHECKING:
    from ._snapshot import HostSnapshot, PoolSnapshot

SCOPE = "aiohttp_pool_otel"

# Histograms are recorded in this context, not the current one: under a sampled
# span the SDK's default exemplar filter would build an exemplar for every record
# (~4 µs each). Non-empty on purpose: the SDK treats an empty context as "current".
NO_EXEMPLAR = otel_context.Context({"aiohttp_pool_otel.no_exemplar": True})

# A snapshot older than this is not reused by a later callback: a collection runs
# its callbacks within milliseconds, so anything older belongs to another one.
_SNAPSHOT_REUSE_SECONDS = 0.5


class Source(Protocol):
    """What reports to the instruments: an instrumented connector or a trace config."""

    def snapshot_for_collection(self) -> Optional[PoolSnapshot]: ...


Observe = Callable[["PoolSnapshot", "HostSnapshot"], Iterable[Observation]]


def _waiting(snap: PoolSnapshot, h: HostSnapshot) -> Iterable[Observation]:
    # Not reported where the queue is not visible: a 0 there would be a false "none".
    return () if h.waiting is None else (Observation(h.waiting, h.record.attributes),)


def _held_too_long(snap: PoolSnapshot, h: HostSnapshot) -> Iterable[Observation]:
    # Reported only by connectors with a watchdog: elsewhere 0 would be a false "fine".
    return (Observation(h.held_too_long, h.record.attributes),) if snap.watchdog else ()


def _open(snap: PoolSnapshot, h: HostSnapshot) -> Iterable[Observation]:
    attrs = h.record.attributes
    return (
        Observation(h.active, {**attrs, sc.HTTP_CONNECTION_STATE: "active"}),
        Observation(h.idle, {**attrs, sc.HTTP_CONNECTION_STATE: "idle"}),
    )


def _available(snap: PoolSnapshot, h: HostSnapshot) -> Iterable[Observation]:
    return () if h.available is None else (Observation(h.available, h.record.attributes),)


def _max_per_host(snap: PoolSnapshot, h: HostSnapshot) -> Iterable[Observation]:
    return (Observation(snap.limit_per_host, h.record.attributes),)


CountObserve = Callable[[HostRecord], Iterable[tuple[Attributes, int]]]
"""A counter's values for one host record: (attributes beyond the host's, value)."""


def _plain(name: str) -> CountObserve:
    def observe(record: HostRecord) -> Iterable[tuple[Attributes, int]]:
        return (({}, getattr(record, name)),)

    return observe


def _timeouts(record: HostRecord) -> Iterable[tuple[Attributes, int]]:
    # Not reported where queueing is not visible: a 0 there would be a false "none".
    return (({}, record.timeouts),) if record.waits_seen else ()


def _queued(record: HostRecord) -> Iterable[tuple[Attributes, int]]:
    return [({sc.POOL_BLOCKING_LIMIT: limit}, n) for limit, n in record.queued.copy().items()]


def _releases(record: HostRecord) -> Iterable[tuple[Attributes, int]]:
    return [
        ({sc.RELEASE_REASON: reason.value, sc.RELEASE_OUTCOME: outcome.value}, n)
        for (reason, outcome), n in record.release_counts().items()
    ]


# The counters: (name, unit, description, values per host record). They report live
# connectors and what retired ones left behind (:mod:`._retired`).
COUNTERS: tuple[tuple[str, str, str, CountObserve], ...] = (
    (sc.METRIC_CREATED, "{connection}", "Connections dialled successfully.", _plain("created")),
    (sc.METRIC_REUSED, "{connection}",
     "Acquisitions served by an idle pooled connection.", _plain("reused")),
    (sc.METRIC_CLOSED, "{connection}", "Connections closed, by any path.", _plain("closed")),
    (sc.METRIC_TIMEOUTS, "{connection}",
     "Acquisitions that timed out waiting for a slot.", _timeouts),
    (sc.METRIC_QUEUED, "{request}",
     "Acquisitions that found no free slot, by the limit that blocked them.", _queued),
    (sc.METRIC_RELEASES, "{connection}",
     "Connections given back by requests, by release reason and outcome.", _releases),
)  # fmt: skip


# The gauges: (create method, name, unit, description, per-host observation). They
# report live connectors only; a closed one's state drops out.
_GAUGE, _UP_DOWN = "gauge", "up_down"
_GAUGES: tuple[tuple[str, str, str, str, Observe], ...] = (
    (_UP_DOWN, sc.METRIC_OPEN_CONNECTIONS, "{connection}",
     "Connections in the pool, by state: active (held by a request) or idle.", _open),
    (_GAUGE, sc.METRIC_AVAILABLE, "{connection}",
     "Connections this host key may still acquire without waiting.", _available),
    (_GAUGE, sc.METRIC_MAX_PER_HOST, "{connection}",
     "The connector's per-host limit (0 means no limit).", _max_per_host),
    (_UP_DOWN, sc.METRIC_PENDING, "{request}",
     "Requests queued for a free connection slot.", _waiting),
    (_UP_DOWN, sc.METRIC_HELD_TOO_LONG, "{connection}",
     "Connections held longer than the watchdog threshold right now.", _held_too_long),
)  # fmt: skip


class _Collection:
    """What one collection reads: the live snapshots and the retired counts, taken
    together so that each source is in exactly one of them."""

    __slots__ = ("retired", "snapshots", "taken_at")

    def __init__(self, snapshots: list[PoolSnapshot], retired: list[HostRecord], at: float) -> None:
        self.snapshots = snapshots
        self.retired = retired
        self.taken_at = at


class PoolMeters:
    """Every instrument of one MeterProvider, and the sources that report to it.

    A source reports while it lives; when it is garbage-collected (or retired by
    ``uninstrument()``), its final counts are folded into :class:`RetiredCounts`,
    so counters keep what every connector ever counted. A finalizer only queues the
    dead reference (a deque append); the loop or the reader folds it, under the lock.
    """

    def __init__(self, meter_provider: Optional[MeterProvider]) -> None:
        meter = metrics.get_meter(SCOPE, __version__, meter_provider)
        self._lock = threading.Lock()  # registration and folding, never a request path
        self._sources: dict[weakref.ReferenceType[Any], RetiredBook] = {}
        self._dead: deque[weakref.ReferenceType[Any]] = deque()  # appended by the GC
        self._retired = RetiredCounts()
        self._local = threading.local()
        create = {
            _GAUGE: meter.create_observable_gauge,
            _UP_DOWN: meter.create_observable_up_down_counter,
        }
        for kind, name, unit, description, observe in _GAUGES:
            create[kind](name, [self._gauge(observe)], unit=unit, description=description)
        for name, unit, description, count in COUNTERS:
            meter.create_observable_counter(
                name, [self._counter(name, count)], unit=unit, description=description
            )
        meter.create_observable_gauge(
            sc.METRIC_MAX,
            [self._observe_max],
            unit="{connection}",
            description="The connector's total limit (0 means no limit).",
        )

        def histogram(name: str, description: str) -> Histogram:
            return meter.create_histogram(
                name,
                unit="s",
                description=description,
                explicit_bucket_boundaries_advisory=list(sc.SECONDS_BUCKETS),
            )

        self.wait_time = histogram(
            sc.METRIC_WAIT_TIME, "Time acquisitions spent queued for a free slot."
        )
        self.create_time = histogram(
            sc.METRIC_CREATE_TIME, "Time to dial a new connection (DNS, TCP, TLS, proxy)."
        )
        self.use_time = histogram(
            sc.METRIC_USE_TIME, "Time a request held its connection, acquisition to release."
        )
        self.connection_duration = histogram(
            sc.METRIC_CONNECTION_DURATION, "Lifetime of connections, from dial to close."
        )
        self.dns_duration = histogram(sc.METRIC_DNS_DURATION, "Duration of DNS lookups.")

    # --- sources -----------------------------------------------------------------

    def register(self, source: Source, book: RetiredBook) -> None:
        """Report ``source`` from now on; when it is gone, keep ``book``'s counts."""
        ref = weakref.ref(source, self._dead.append)
        with self._lock:
            self._fold_dead()
            self._sources[ref] = book

    def retire(self, source: Source) -> None:
        """Stop reporting ``source`` now, keeping its counts (``uninstrument()``)."""
        with self._lock:
            book = self._sources.pop(weakref.ref(source), None)
            if book is not None:
                self._retired.fold(book)

    def _fold_dead(self) -> None:
        """Fold the sources the GC took since the last time (under the lock)."""
        dead = self._dead
        while dead:
            book = self._sources.pop(dead.popleft(), None)
            if book is not None:  # None: already folded by a collection
                self._retired.fold(book)

    def _collection(self) -> _Collection:
        """This collection's snapshots and retired counts: taken by its first callback,
        reused by the rest (per thread, so two readers never mix)."""
        local = self._local
        now = time.monotonic()
        taken: Optional[_Collection] = getattr(local, "taken", None)
        if taken is not None and now - taken.taken_at < _SNAPSHOT_REUSE_SECONDS:
            return taken
        with self._lock:
            self._fold_dead()
            live: list[Source] = []
            for ref, book in list(self._sources.items()):
                source = ref()
                if source is None:  # dead, its callback not run yet: fold it here
                    del self._sources[ref]
                    self._retired.fold(book)
                else:
                    live.append(source)
            retired = self._retired.copy()
        # Each source is now either live (held here, so it cannot die and be folded
        # during this collection) or in ``retired``: never both, never neither.
        snaps = []
        for source in live:
            try:
                snap = source.snapshot_for_collection()
            except Exception:
                continue  # a source mid-teardown: reported again next time
            if snap is not None:
                snaps.append(snap)
        del live
        local.taken = taken = _Collection(snaps, retired, now)
        return taken

    # --- callbacks -------------------------------------------------------------------

    def _gauge(self, observe: Observe) -> Callable[[CallbackOptions], Iterable[Observation]]:
        first = observe is _open  # the first instrument created starts a collection

        def callback(_: CallbackOptions) -> Iterable[Observation]:
            if first:
                self._local.taken = None
            sums: dict[SeriesKey, Observation] = {}
            for snap in self._collection().snapshots:
                if not snap.state:
                    continue  # a trace config, or a closed connector: no pool state
                for h in snap.hosts:
                    for o in observe(snap, h):
                        _add(sums, o.value, o.attributes or {})
            return list(sums.values())

        return callback

    def _counter(
        self, name: str, count: CountObserve
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(_: CallbackOptions) -> Iterable[Observation]:
            collection = self._collection()
            records = collection.retired + [h.record for s in collection.snapshots for h in s.hosts]
            # Connectors without distinct pool names share series (and retired ones
            # share with live ones): their values add up (the SDK would keep only the
            # last observation of one attribute set).
            sums: dict[SeriesKey, Observation] = {}
            for record in records:
                host = record.attributes
                for extra, n in count(record):
                    _add(sums, n, {**host, **extra} if extra else host)
            return list(sums.values())

        return callback

    def _observe_max(self, _: CallbackOptions) -> Iterable[Observation]:
        sums: dict[SeriesKey, Observation] = {}
        for s in self._collection().snapshots:
            if s.state:
                _add(sums, s.limit, s.attributes)
        return list(sums.values())


def _add(sums: dict[SeriesKey, Observation], value: float, attributes: Any) -> None:
    key = series_key(attributes)
    seen = sums.get(key)
    sums[key] = Observation(value if seen is None else seen.value + value, attributes)


_meters: weakref.WeakKeyDictionary[MeterProvider, PoolMeters] = weakref.WeakKeyDictionary()
_global_meters: list[PoolMeters] = []
_meters_lock = threading.Lock()


def meters_for(meter_provider: Optional[MeterProvider]) -> PoolMeters:
    """The shared :class:`PoolMeters` of ``meter_provider`` (``None``: the global one)."""
    with _meters_lock:
        if meter_provider is None:
            if not _global_meters:
                _global_meters.append(PoolMeters(None))
            return _global_meters[0]
        meters = _meters.get(meter_provider)
        if meters is None:
            meters = _meters[meter_provider] = PoolMeters(meter_provider)
        return meters
