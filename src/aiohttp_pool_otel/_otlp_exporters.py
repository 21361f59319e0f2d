"""Exporter wrappers that count what the OTLP endpoint accepted and stop at once after
a bounded shutdown gave up. Imported only by :func:`configure_otlp` (it needs the SDK)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .otlp import OtlpDelivery


def count_points(data: MetricsData) -> int:
    """How many data points a metrics batch carries (what a receiver stores)."""
    return sum(
        len(metric.data.data_points)
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
    )


class CountingSpanExporter(SpanExporter):
    """Delegates to ``inner``; counts spans by the export result it returns."""

    def __init__(self, inner: SpanExporter, delivery: OtlpDelivery) -> None:
        self.inner = inner
        self.delivery = delivery

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self.delivery.gave_up:
            # A bounded shutdown ran out of time: drop the rest of the queue at once
            # instead of retrying each batch against an endpoint that does not answer.
            self.delivery.add_spans(len(spans), ok=False)
            return SpanExportResult.FAILURE
        result = self.inner.export(spans)
        self.delivery.add_spans(len(spans), ok=result is SpanExportResult.SUCCESS)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class CountingMetricExporter(MetricExporter):
    """Delegates to ``inner``; counts data points by the export result it returns."""

    def __init__(self, inner: MetricExporter, delivery: OtlpDelivery) -> None:
        # The reader reads its temporality and aggregation from these (SDK attributes
        # present in every version >= 1.30): keep the inner exporter's choice.
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self.inner = inner
        self.delivery = delivery

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        points = count_points(metrics_data)
        if self.delivery.gave_up:
            self.delivery.add_metric_points(points, ok=False)
            return MetricExportResult.FAILURE
        result = self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        self.delivery.add_metric_points(points, ok=result is MetricExportResult.SUCCESS)
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.inner.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)
