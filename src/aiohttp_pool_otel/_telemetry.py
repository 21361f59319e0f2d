"""The instruments, created once per MeterProvider and shared by every connector on it.

Pool state is never pushed per request: observable instruments read each
connector's plain-int bookkeeping when the reader collects. Histograms are only
recorded on slow paths (queueing, dialling, closing), or per release when the
connector was asked to record hold times.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Optional

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Histogram, MeterProvider, Observation

from . import semconv as sc
from ._pool import PoolSnapshot, report_internal_error
from ._version import __version__

if TYPE_CHECKING:
    from ._pool import PoolInstrumentation

SCOPE = "aiohttp_pool_otel"


class PoolMeters:
    """Every instrument of one MeterProvider, and the connectors that report to it."""

    def __init__(self, meter_provider: Optional[MeterProvider]) -> None:
        meter = metrics.get_meter(SCOPE, __version__, meter_provider)
        # Copy-on-write tuple: the reader thread iterates a snapshot while the loop
        # thread registers connectors.
        self._pools: tuple[weakref.ReferenceType[PoolInstrumentation], ...] = ()
        self._lock = threading.Lock()

        gauge, up_down = meter.create_observable_gauge, meter.create_observable_up_down_counter
        observed = (
            # The first one on purpose: its callback takes the snapshot the others
            # reuse (the SDK calls observable callbacks in creation order).
            (up_down, sc.METRIC_OPEN_CONNECTIONS, self._observe_open_connections,
             "{connection}",
             "Connections in the pool, by state: active (held by a request) or idle."),
            (gauge, sc.METRIC_AVAILABLE, self._observe_available, "{connection}",
             "Connections this host key may still acquire without waiting."),
            (gauge, sc.METRIC_MAX, self._observe_max, "{connection}",
             "The connector's total limit (0 means no limit)."),
            (gauge, sc.METRIC_MAX_PER_HOST, self._observe_max_per_host, "{connection}",
             "The connector's per-host limit (0 means no limit)."),
            (up_down, sc.METRIC_PENDING, self._observe_pending, "{request}",
             "Requests queued for a free connection slot."),
        )  # fmt: skip
        for create, name, callback, unit, description in observed:
            create(name, [callback], unit=unit, description=description)
        counters = (
            (sc.METRIC_CREATED, "created", "Connections dialled and handed to a request."),
            (sc.METRIC_REUSED, "reused", "Acquisitions served by an idle pooled connection."),
            (sc.METRIC_CLOSED, "closed", "Connections closed, by the plugin's own observation."),
            (sc.METRIC_TIMEOUTS, "timeouts", "Acquisitions that timed out waiting for a slot."),
        )
        for name, field, description in counters:
            meter.create_observable_counter(
                name,
                [self._counter_callback(field)],
                unit="{connection}",
                description=description,
            )
        meter.create_observable_counter(
            sc.METRIC_QUEUED,
            [self._observe_queued],
            unit="{request}",
            description="Acquisitions that found no free slot, by the limit that blocked them.",
        )
        meter.create_observable_up_down_counter(
            sc.METRIC_HELD_TOO_LONG,
            [self._observe_held_too_long],
            unit="{connection}",
            description="Connections held longer than the watchdog threshold right now.",
        )
        meter.create_observable_counter(
            sc.METRIC_RELEASES,
            [self._observe_releases],
            unit="{connection}",
            description="Connections given back by requests, by release reason and outcome.",
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

    def register(self, pool: PoolInstrumentation) -> None:
        """Report ``pool`` from now on, until it is garbage-collected."""
        with self._lock:
            live = tuple(r for r in self._pools if r() is not None)
            self._pools = (*live, weakref.ref(pool))

    # --- callbacks (reader thread) -----------------------------------------

    def _snapshots(self, fresh: bool) -> Iterator[PoolSnapshot]:
        for ref in self._pools:
            pool = ref()
            if pool is None:
                continue
            try:
                snap = pool.last_snapshot if not fresh else None
                yield snap if snap is not None else pool.snapshot()
            except Exception:
                report_internal_error("snapshot")

    def _observe_open_connections(self, _: CallbackOptions) -> Iterable[Observation]:
        out = []
        for snap in self._snapshots(fresh=True):
            for h in snap.hosts:
                if h.in_use:
                    attrs = h.record.attributes
                    out.append(Observation(h.active, {**attrs, sc.HTTP_CONNECTION_STATE: "active"}))
                    out.append(Observation(h.idle, {**attrs, sc.HTTP_CONNECTION_STATE: "idle"}))
        return out

    def _observe_available(self, _: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(h.available, h.record.attributes)
            for snap in self._snapshots(fresh=False)
            for h in snap.hosts
            if h.in_use and h.available is not None
        ]

    def _observe_max(self, _: CallbackOptions) -> Iterable[Observation]:
        return [Observation(s.limit, s.attributes) for s in self._snapshots(fresh=False)]

    def _observe_max_per_host(self, _: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(snap.limit_per_host, h.record.attributes)
            for snap in self._snapshots(fresh=False)
            for h in snap.hosts
            if h.in_use
        ]

    def _observe_pending(self, _: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(h.waiting, h.record.attributes)
            for snap in self._snapshots(fresh=False)
            for h in snap.hosts
            if h.in_use
        ]

    def _counter_callback(self, field: str) -> Any:
        def observe(_: CallbackOptions) -> Iterable[Observation]:
            # created, reused: the snapshot adds the leases in progress to the ended ones
            source_is_snapshot = field in ("created", "reused")
            return [
                Observation(
                    getattr(h if source_is_snapshot else h.record, field), h.record.attributes
                )
                for snap in self._snapshots(fresh=False)
                for h in snap.hosts
            ]

        return observe

    def _observe_queued(self, _: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(n, {**h.record.attributes, sc.POOL_BLOCKING_LIMIT: limit})
            for snap in self._snapshots(fresh=False)
            for h in snap.hosts
            for limit, n in list(h.record.queued.items())
        ]

    def _observe_held_too_long(self, _: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(h.held_too_long, h.record.attributes)
            for snap in self._snapshots(fresh=False)
            if snap.watchdog
            for h in snap.hosts
            if h.in_use
        ]

    def _observe_releases(self, _: CallbackOptions) -> Iterable[Observation]:
        out = []
        for snap in self._snapshots(fresh=False):
            for h in snap.hosts:
                for (reason, outcome), n in h.record.release_counts().items():
                    attrs = {
                        **h.record.attributes,
                        sc.RELEASE_REASON: reason.value,
                        sc.RELEASE_OUTCOME: outcome.value,
                    }
                    out.append(Observation(n, attrs))
        return out


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
