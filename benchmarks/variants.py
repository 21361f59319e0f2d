"""The benchmark variants: how each one builds its connector, trace configs and providers.

Every SDK ``TracerProvider`` exports through a ``BatchSpanProcessor`` into a counting
no-op exporter (spans per request, by span name: detects drops and checks the span
design). Every SDK ``MeterProvider`` has a ``PeriodicExportingMetricReader`` whose
interval (default 1 s, 60x the SDK default) is short so that collection cost shows,
into a no-op exporter that counts exports and data points.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import aiohttp

# name -> what it measures (the order is the default order of the tables)
VARIANTS: dict[str, str] = {
    "bare": "aiohttp.TCPConnector, no trace config",
    "empty-tc": "bare + one empty aiohttp.TraceConfig (aiohttp's signal plumbing alone)",
    "contrib": "opentelemetry-instrumentation-aiohttp-client create_trace_config, SDK providers",
    "plugin-metrics": "OpenTelemetryTCPConnector, SDK MeterProvider, no tracing, no trace config",
    "plugin-connector": "OpenTelemetryTCPConnector, SDK meters + tracing at 100%, no trace config",
    "plugin-traced": "OpenTelemetryTCPConnector + create_pool_trace_config, tracing at 100%",
    "instrumentor": "aiohttp.TCPConnector under AioHttpConnectionPoolInstrumentor, SDK meters "
    "+ tracing at 100% (the zero-code route)",
    "plugin-all-leases": "plugin-traced with trace_all_leases=True (a lease span per request)",
    "plugin-hold-time": "plugin-metrics with record_hold_time=True (a histogram per release)",
    "plugin-unsampled": "plugin-traced, every request under an unsampled parent span",
    "contrib+plugin": "contrib + OpenTelemetryTCPConnector (the plugin's default: no trace config)",
    "contrib+plugin-tc": "contrib + OpenTelemetryTCPConnector + create_pool_trace_config",
}

POOL_SPANS = ("aiohttp.connection.wait", "aiohttp.connection.create", "aiohttp.connection.lease")


class CountingSpanExporter:
    """A SpanExporter that exports nowhere and counts spans by name (thread-safe)."""

    def __init__(self) -> None:
        self.by_name: Counter[str] = Counter()
        self._lock = threading.Lock()

    def export(self, spans: Any) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        with self._lock:
            for span in spans:
                self.by_name[span.name] += 1
        return SpanExportResult.SUCCESS

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.by_name)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def make_metric_exporter() -> Any:
    """A no-op MetricExporter that counts exports and the data points of the last one."""
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult

    class CountingMetricExporter(MetricExporter):
        def __init__(self) -> None:
            super().__init__()
            self.exports = 0
            self.last_points = 0
            self.last_series: dict[str, int] = {}
            self.last_values: dict[str, float] = {}

        def export(self, metrics_data: Any, timeout_millis: float = 10_000, **_: Any) -> Any:
            series: dict[str, int] = {}
            values: dict[str, float] = {}
            for rm in metrics_data.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        points = metric.data.data_points
                        series[metric.name] = series.get(metric.name, 0) + len(points)
                        total = sum(getattr(p, "value", 0) or 0 for p in points)
                        values[metric.name] = values.get(metric.name, 0) + total
            self.exports += 1
            self.last_series = series
            self.last_values = values
            self.last_points = sum(series.values())
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 30_000, **_: Any) -> None:
            pass

    return CountingMetricExporter()


@dataclass
class Built:
    """One variant, ready for ``ClientSession(connector=..., trace_configs=...)``."""

    connector: aiohttp.BaseConnector
    trace_configs: list[aiohttp.TraceConfig]
    span_exporter: Optional[CountingSpanExporter] = None
    metric_exporter: Any = None
    unsampled_parent: bool = False
    _flush: list[Callable[[], Any]] = field(default_factory=list)
    _flush_metrics: list[Callable[[], Any]] = field(default_factory=list)
    _shutdown: list[Callable[[], Any]] = field(default_factory=list)

    def flush(self) -> None:
        """Export every finished span now."""
        for f in self._flush:
            f()

    def flush_metrics(self) -> None:
        """Collect and export the metrics now (the exporter then holds the latest)."""
        for f in self._flush_metrics:
            f()

    def shutdown(self) -> None:
        for f in self._shutdown:
            f()


def build(
    name: str, *, limit: int = 100, limit_per_host: int = 0, metric_interval_ms: float = 1000.0
) -> Built:
    """Build variant ``name`` (must be called inside a running event loop)."""
    if name not in VARIANTS:
        raise SystemExit(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
    kw: dict[str, Any] = {"limit": limit, "limit_per_host": limit_per_host}
    if name == "bare":
        return Built(aiohttp.TCPConnector(**kw), [])
    if name == "empty-tc":
        return Built(aiohttp.TCPConnector(**kw), [aiohttp.TraceConfig()])

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import NoOpTracerProvider

    resource = Resource.create({"service.name": "aiohttp-pool-otel-bench"})
    metric_exporter = make_metric_exporter()
    reader = PeriodicExportingMetricReader(
        metric_exporter, export_interval_millis=metric_interval_ms
    )
    mp = MeterProvider(metric_readers=[reader], resource=resource)
    built = Built(aiohttp.TCPConnector(**kw), [], metric_exporter=metric_exporter)
    built._shutdown.append(mp.shutdown)
    built._flush_metrics.append(mp.force_flush)
    traced = name != "plugin-metrics" and name != "plugin-hold-time"
    tp: Any = NoOpTracerProvider()
    if traced:
        span_exporter = CountingSpanExporter()
        tp = TracerProvider(resource=resource)
        tp.add_span_processor(BatchSpanProcessor(span_exporter))
        built.span_exporter = span_exporter
        built._flush.append(tp.force_flush)
        built._shutdown.append(tp.shutdown)

    if name in ("contrib", "contrib+plugin", "contrib+plugin-tc"):
        from opentelemetry.instrumentation.aiohttp_client import create_trace_config

        built.trace_configs.append(create_trace_config(tracer_provider=tp, meter_provider=mp))
        if name == "contrib":
            return built

    from aiohttp_pool_otel import OpenTelemetryTCPConnector, create_pool_trace_config

    if name == "instrumentor":
        from aiohttp_pool_otel import AioHttpConnectionPoolInstrumentor

        instrumentor = AioHttpConnectionPoolInstrumentor()
        instrumentor.instrument(tracer_provider=tp, meter_provider=mp)
        built._shutdown.append(instrumentor.uninstrument)
        built.connector = aiohttp.TCPConnector(**kw)  # built after instrument(): covered
        return built

    built.connector = OpenTelemetryTCPConnector(
        tracer_provider=tp,
        meter_provider=mp,
        trace_all_leases=name == "plugin-all-leases",
        record_hold_time=name == "plugin-hold-time",
        **kw,
    )
    with_trace_config = ("plugin-traced", "plugin-all-leases", "plugin-unsampled")
    if name in (*with_trace_config, "contrib+plugin-tc"):
        built.trace_configs.append(create_pool_trace_config(tracer_provider=tp, meter_provider=mp))
    built.unsampled_parent = name == "plugin-unsampled"
    return built


def check_spans(variant: str, n: int, spans: dict[str, int]) -> list[str]:
    """Problems with the spans a timed window of ``n`` requests exported (empty: fine).

    Exact where the design makes it exact; invariants elsewhere (how many
    acquisitions queue or dial depends on scheduling).
    """
    problems = []
    pool = {k: spans.get(k, 0) for k in POOL_SPANS}
    _, create, lease = pool.values()
    other = sum(v for k, v in spans.items() if k not in POOL_SPANS)
    contrib = variant in ("contrib", "contrib+plugin", "contrib+plugin-tc")
    if contrib and other != n:
        problems.append(f"expected {n} HTTP client spans, got {other}")
    if not contrib and other:
        unexpected = {k: v for k, v in spans.items() if k not in POOL_SPANS}
        problems.append(f"unexpected spans: {unexpected}")
    if variant in ("bare", "empty-tc", "contrib", "plugin-metrics", "plugin-hold-time"):
        if sum(pool.values()):
            problems.append(f"no pool spans expected, got {pool}")
    elif variant == "plugin-unsampled":
        if sum(pool.values()):
            problems.append(f"unsampled parent: no pool spans expected, got {pool}")
    elif variant == "plugin-all-leases":
        if lease != n:
            problems.append(f"trace_all_leases: expected {n} lease spans, got {lease}")
    elif lease != create:  # a lease span for each dial; a queued one has its wait span only
        problems.append(f"one lease span per dialled connection expected: {pool}")
    return problems
