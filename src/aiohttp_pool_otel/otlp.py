"""``configure_otlp()``: the common OTLP setup in one call.

The SDK already reads ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``_PROTOCOL`` / ``_HEADERS`` / ``_TIMEOUT`` and their
per-signal variants; this helper only passes what you give it explicitly and fills
the gaps the SDK leaves (the HTTP exporters want the full signal URL).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

PROTOCOLS = ("grpc", "http/protobuf")


@dataclass(frozen=True)
class OtlpProviders:
    """The providers :func:`configure_otlp` built; call :meth:`shutdown` at exit."""

    tracer_provider: Any
    meter_provider: Any

    def shutdown(self) -> None:
        """Flush and stop both providers (bounded by the exporters' timeouts)."""
        try:
            self.meter_provider.force_flush()
        finally:
            self.tracer_provider.shutdown()
            self.meter_provider.shutdown()


def _signal_url(base: str, signal: str) -> str:
    return base.rstrip("/") + "/v1/" + signal


def configure_otlp(
    *,
    service_name: Optional[str] = None,
    endpoint: Optional[str] = None,
    protocol: Optional[str] = None,
    export_interval_millis: Optional[float] = None,
    timeout: Optional[float] = None,
    set_global: bool = True,
) -> OtlpProviders:
    """Build a TracerProvider and a MeterProvider that export over OTLP.

    ``endpoint`` is the collector's base URL (``http://127.0.0.1:4317`` for gRPC,
    ``http://127.0.0.1:4318`` for HTTP; default: the ``OTEL_EXPORTER_OTLP_*`` variables,
    else the SDK's localhost default). ``protocol`` is ``"grpc"`` or
    ``"http/protobuf"`` (default: ``OTEL_EXPORTER_OTLP_PROTOCOL``, else ``grpc``).
    ``service_name`` defaults to ``OTEL_SERVICE_NAME``. With ``set_global`` the
    providers become the global ones, which the instrumented connector uses by default.
    """
    chosen = protocol or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
    if chosen not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {chosen!r}")
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        raise ValueError(
            f"endpoint must be a URL starting with http:// or https://, got {endpoint!r}"
        )
    if export_interval_millis is not None and not export_interval_millis > 0:
        raise ValueError(
            f"export_interval_millis must be > 0, got {export_interval_millis!r}"
        )
    try:
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(
            "configure_otlp() needs the OpenTelemetry SDK and OTLP exporters: "
            "pip install 'aiohttp-pool-otel[otlp]'"
        ) from exc

    span_kwargs: dict[str, Any] = {}
    metric_kwargs: dict[str, Any] = {}
    if timeout is not None:
        span_kwargs["timeout"] = metric_kwargs["timeout"] = timeout
    span_exporter: Any
    metric_exporter: Any
    if chosen == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter as GrpcMetricExporter,
        )
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcSpanExporter,
        )

        if endpoint is not None:
            # The scheme decides TLS: http:// is plaintext, https:// is TLS.
            span_kwargs["endpoint"] = metric_kwargs["endpoint"] = endpoint
            span_kwargs["insecure"] = metric_kwargs["insecure"] = endpoint.startswith("http://")
        span_exporter = GrpcSpanExporter(**span_kwargs)
        metric_exporter = GrpcMetricExporter(**metric_kwargs)
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
            OTLPMetricExporter as HttpMetricExporter,
        )
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpSpanExporter,
        )

        if endpoint is not None:
            span_kwargs["endpoint"] = _signal_url(endpoint, "traces")
            metric_kwargs["endpoint"] = _signal_url(endpoint, "metrics")
        span_exporter = HttpSpanExporter(**span_kwargs)
        metric_exporter = HttpMetricExporter(**metric_kwargs)

    attributes = {SERVICE_NAME: service_name} if service_name else {}
    resource = Resource.create(attributes)  # merges OTEL_SERVICE_NAME / _RESOURCE_ATTRIBUTES
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    reader_kwargs: dict[str, Any] = {}
    if export_interval_millis is not None:
        reader_kwargs["export_interval_millis"] = export_interval_millis
    reader = PeriodicExportingMetricReader(metric_exporter, **reader_kwargs)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    if set_global:
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
    return OtlpProviders(tracer_provider, meter_provider)
