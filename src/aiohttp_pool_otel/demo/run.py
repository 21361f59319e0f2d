"""Wire a scenario to telemetry and servers; produce the text and JSON reports."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, Optional

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from . import render
from .scenarios import SCENARIOS, Progress, Telemetry
from .servers import start_servers

SERVICE_NAME = "aiohttp-pool-otel-demo"


def _telemetry(otlp: Optional[str], protocol: Optional[str]) -> tuple[Telemetry, Any]:
    spans = InMemorySpanExporter()
    if otlp is None:
        reader = InMemoryMetricReader()
        resource = Resource.create({"service.name": SERVICE_NAME})
        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
        meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
        return Telemetry(tracer_provider, meter_provider, spans, reader), None
    from ..otlp import configure_otlp

    providers = configure_otlp(
        service_name=SERVICE_NAME,
        endpoint=otlp or None,
        protocol=protocol,
        timeout=5,
        export_interval_millis=1000,
        set_global=False,
    )
    providers.tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    telemetry = Telemetry(providers.tracer_provider, providers.meter_provider, spans, None)
    return telemetry, providers


async def run_demo(
    scenario: str, *, otlp: Optional[str], protocol: Optional[str], progress: Progress
) -> dict[str, Any]:
    """Run ``scenario``; returns ``{"text": str, "json": dict}``."""
    telemetry, providers = _telemetry(otlp, protocol)
    servers = await start_servers()
    try:
        progress(f"servers on {servers.small} (small body) and {servers.slow} (slow body)")
        result = await SCENARIOS[scenario](telemetry, servers, progress)
    finally:
        await servers.close()
    ports = {int(url.rsplit(":", 1)[1]): name for name, url in result.hosts.items()}
    spans = telemetry.spans.get_finished_spans()
    metrics = telemetry.snapshot
    if metrics is None and telemetry.reader is not None:
        metrics = telemetry.reader.get_metrics_data()
    explanation = render.explain(result)
    if providers is not None:
        await asyncio.to_thread(providers.shutdown)
        where = otlp or "the OTEL_EXPORTER_OTLP_* endpoint"
        metric_text = f"(metrics were exported over OTLP to {where}; see Prometheus/Grafana)"
    else:
        telemetry.tracer_provider.shutdown()
        telemetry.meter_provider.shutdown()
        metric_text = render.metric_values(metrics, ports)
    title = (
        f"aiohttp-pool-otel demo: {scenario}  (TCPConnector limit={result.limit}, "
        f"limit_per_host={result.limit_per_host}; small={result.hosts['small']}, "
        f"slow={result.hosts['slow']})"
    )
    text = "\n\n".join(
        [
            title,
            render.table(result),
            "What happened:\n" + "\n".join(f"- {line}" for line in explanation),
            "Spans:\n" + render.span_tree(spans),
            f"Metrics ({telemetry.snapshot_label}):\n" + metric_text,
        ]
    )
    report = dataclasses.asdict(result)
    report["explanation"] = explanation
    report["spans"] = [
        {
            "name": s.name,
            "duration_ms": round(((s.end_time or 0) - (s.start_time or 0)) / 1e6, 3),
            "attributes": dict(s.attributes or {}),
        }
        for s in spans
    ]
    return {"text": text, "json": report}
