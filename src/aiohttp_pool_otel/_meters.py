"""The instruments, created once per MeterProvider and shared by every connector on it.

Pool state and counts are never pushed per request: observable instruments read
each connector's plain ints when the reader collects, from one snapshot per
collection (the first callback of a collection takes it, the others reuse it, per
thread, so two readers never mix their collections). Histograms are recorded on
the loop thread only, from the slow paths or from deferred release facts.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol

from opentelemetry import context as otel_context
from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Histogram, MeterProvider, Observation

from . import semconv as sc
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
    return (Observation(h.waiting, h.record.attributes),)


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


def _count(name: str) -> Observe:
    def observe(snap: PoolSnapshot, h: HostSnapshot) -> Iterable[Observation]:
        return (Observation(getattr(h.record, name), h.record.attributes),)

    return observe


def _queued(snap: PoolSnapshot, h: HostSnapshot) -> Iterable[Observation]:
    return [
        Observation(n, {**h.record.attributes, sc.POOL_BLOCKING_LIMIT: limit})
        for limit, n in h.record.queued.copy().items()
    ]


def _releases(snap: PoolSnapshot, h: HostSnapshot) -> Iterable[Observation]:
    return [
        Observation(
            n,
            {
                **h.record.attributes,
                sc.RELEASE_REASON: reason.value,
                sc.RELEASE_OUTCOME: outcome.value,
            },
        )
        for (reason, outcome), n in h.record.release_counts().items()
    ]


# (create method, name, unit, description, per-host observation, needs pool state)
_GAUGE, _UP_DOWN, _COUNTER = "gauge", "up_down", "counter"
_OBSERVED: tuple[tuple[str, str, str, str, Observe, bool], ...] = (
    (_UP_DOWN, sc.METRIC_OPEN_CONNECTIONS, "{connection}",
     "Connections in the pool, by state: active (held by a request) or idle.", _open, True),
    (_GAUGE, sc.METRIC_AVAILABLE, "{connection}",
     "Connections this host key may still acquire without waiting.", _available, True),
    (_GAUGE, sc.METRIC_MAX_PER_HOST, "{connection}",
     "The connector's per-host limit (0 means no limit).", _max_per_host, True),
    (_UP_DOWN, sc.METRIC_PENDING, "{request}",
     "Requests queued for a free connection slot.", _waiting, True),
    (_UP_DOWN, sc.METRIC_HELD_TOO_LONG, "{connection}",
     "Connections held longer than the watchdog threshold right now.", _held_too_long, True),
    (_COUNTER, sc.METRIC_CREATED, "{connection}",
     "Connections dialled successfully.", _count("created"), False),
    (_COUNTER, sc.METRIC_REUSED, "{connection}",
     "Acquisitions served by an idle pooled connection.", _count("reused"), False),
    (_COUNTER, sc.METRIC_CLOSED, "{connection}",
     "Connections closed, by any path.", _count("closed"), False),
    (_COUNTER, sc.METRIC_TIMEOUTS, "{connection}",
     "Acquisitions that timed out waiting for a slot.", _count("timeouts"), False),
    (_COUNTER, sc.METRIC_QUEUED, "{request}",
     "Acquisitions that found no free slot, by the limit that blocked them.", _queued, False),
    (_COUNTER, sc.METRIC_RELEASES, "{connection}",
     "Connections given back by requests, by release reason and outcome.", _releases, False),
)  # fmt: skip


class PoolMeters:
    """Every instrument of one MeterProvider, and the sources that report to it."""

    def __init__(self, meter_provider: Optional[MeterProvider]) -> None:
        meter = metrics.get_meter(SCOPE, __version__, meter_provider)
        # Copy-on-write tuple: the reader thread iterates one while the loop registers.
        self._sources: tuple[weakref.ReferenceType[Any], ...] = ()
        self._lock = threading.Lock()  # registration only, never on a request path
        self._local = threading.local()
        create = {
            _GAUGE: meter.create_observable_gauge,
            _UP_DOWN: meter.create_observable_up_down_counter,
            _COUNTER: meter.create_observable_counter,
        }
        for kind, name, unit, description, observe, needs_state in _OBSERVED:
            callback = self._callback(observe, needs_state)
            create[kind](name, [callback], unit=unit, description=description)
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

    def register(self, source: Source) -> None:
        """Report ``source`` from now on, until it is garbage-collected."""
        with self._lock:
            live = tuple(r for r in self._sources if r() is not None)
            self._sources = (*live, weakref.ref(source))

    def unregister(self, source: Source) -> None:
        """Stop reporting ``source`` (a closed connector reports nothing)."""
        with self._lock:
            self._sources = tuple(r for r in self._sources if r() not in (None, source))

    def _snapshots(self) -> list[PoolSnapshot]:
        """This collection's snapshots: taken by its first callback, reused by the rest."""
        local = self._local
        now = time.monotonic()
        taken = getattr(local, "taken", None)
        if taken is not None and now - taken[0] < _SNAPSHOT_REUSE_SECONDS:
            snaps: list[PoolSnapshot] = taken[1]
            return snaps
        snaps = []
        for ref in self._sources:
            source = ref()
            if source is None:
                continue
            try:
                snap = source.snapshot_for_collection()
            except Exception:
                continue  # a source mid-teardown: reported again next time
            if snap is not None:
                snaps.append(snap)
        local.taken = (now, snaps)
        return snaps

    def _callback(
        self, observe: Observe, needs_state: bool
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        first = observe is _open  # the first instrument created starts a collection

        def callback(_: CallbackOptions) -> Iterable[Observation]:
            if first:
                self._local.taken = None
            # Connectors without distinct pool names share series: their values add up
            # (the SDK would keep only the last observation of one attribute set).
            sums: dict[frozenset[Any], Observation] = {}
            for snap in self._snapshots():
                if needs_state and snap.held is None:
                    continue  # a trace config does not see aiohttp's pool
                for h in snap.hosts:
                    for o in observe(snap, h):
                        key = frozenset(o.attributes.items()) if o.attributes else frozenset()
                        seen = sums.get(key)
                        sums[key] = o if seen is None else Observation(
                            seen.value + o.value, o.attributes
                        )
            return list(sums.values())

        return callback

    def _observe_max(self, _: CallbackOptions) -> Iterable[Observation]:
        sums: dict[frozenset[Any], int] = {}
        attributes: dict[frozenset[Any], Any] = {}
        for s in self._snapshots():
            if s.held is not None:
                key = frozenset(s.attributes.items())
                sums[key] = sums.get(key, 0) + s.limit
                attributes[key] = s.attributes
        return [Observation(n, attributes[k]) for k, n in sums.items()]


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
