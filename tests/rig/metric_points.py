"""What a metric reader reported, indexed: one collection's points by metric name,
with sums over attribute matches, histogram counts and host sets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from opentelemetry.sdk.metrics.export import MetricReader

from aiohttp_pool_otel import semconv as sc

HOST_KEYS = (sc.SERVER_ADDRESS, sc.SERVER_PORT, sc.URL_SCHEME)
STATE_GAUGES = (
    sc.METRIC_OPEN_CONNECTIONS,
    sc.METRIC_AVAILABLE,
    sc.METRIC_PENDING,
    sc.METRIC_MAX_PER_HOST,
)


@dataclass
class Collection:
    """One collection of a reader: metric name -> [(attributes, data point)]."""

    points: dict[str, list[tuple[dict[str, Any], Any]]] = field(default_factory=dict)

    def of(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        return self.points.get(name, [])

    def value(self, name: str, **attrs: Any) -> Optional[float]:
        """Sum of the values of ``name`` whose attributes include ``attrs`` (dots as
        ``__``); None when no such point was reported."""
        want = {k.replace("__", "."): v for k, v in attrs.items()}
        found = [
            dp.value
            for a, dp in self.of(name)
            if all(a.get(k) == v for k, v in want.items())
        ]
        return sum(found) if found else None

    def histogram_count(self, name: str) -> int:
        return sum(int(dp.count) for _, dp in self.of(name))

    def host_sets(self, name: str) -> set[tuple[Any, ...]]:
        """Distinct (server.address, server.port, url.scheme) of ``name``'s points."""
        return {tuple(a.get(k) for k in HOST_KEYS) for a, _ in self.of(name)}

    def hosts_of(self, name: str, port: int) -> list[tuple[dict[str, Any], Any]]:
        return [(a, dp) for a, dp in self.of(name) if a.get(sc.SERVER_PORT) == port]


def collect(reader: MetricReader) -> Collection:
    """Collect ``reader`` now (an InMemoryMetricReader) and index its points."""
    out = Collection()
    data = reader.get_metrics_data()  # type: ignore[attr-defined]
    if data is None:
        return out
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                points = out.points.setdefault(metric.name, [])
                for dp in metric.data.data_points:
                    points.append((dict(dp.attributes or {}), dp))
    return out
