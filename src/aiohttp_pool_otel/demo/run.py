"""Wire a scenario to telemetry and servers; produce the text and JSON reports."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from typing import Any, Optional

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ..otlp import OtlpProviders
from . import render
from .scenarios import SCENARIOS, Progress, Replays, Telemetry, replay
from .servers import start_servers

SERVICE_NAME = "aiohttp-pool-otel-demo"
#: The version of the JSON report's layout (``--json``); see report.schema.json.
SCHEMA_VERSION = 1
# Bounds for the OTLP exporters: each export request, and the flush at the end.
OTLP_TIMEOUT_S = 5.0
OTLP_SHUTDOWN_TIMEOUT_S = 5.0


def _telemetry(
    otlp: Optional[str], protocol: Optional[str]
) -> tuple[Telemetry, Optional[OtlpProviders]]:
    spans = InMemorySpanExporter()
    # The demo reads metric values back in both modes: an in-memory reader beside OTLP.
    reader = InMemoryMetricReader()
    if otlp is None:
        resource = Resource.create({"service.name": SERVICE_NAME})
        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
        meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
        return Telemetry(tracer_provider, meter_provider, spans, reader), None
    from ..otlp import configure_otlp

    providers = configure_otlp(
        # OTEL_SERVICE_NAME, when set, names the demo's service (two demos, two services).
        service_name=os.environ.get("OTEL_SERVICE_NAME") or SERVICE_NAME,
        endpoint=otlp or None,
        protocol=protocol,
        timeout=OTLP_TIMEOUT_S,
        shutdown_timeout=OTLP_SHUTDOWN_TIMEOUT_S,
        export_interval_millis=1000,
        extra_metric_readers=(reader,),
        set_global=False,
    )
    providers.tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    telemetry = Telemetry(providers.tracer_provider, providers.meter_provider, spans, reader)
    return telemetry, providers


def _otlp_text(providers: OtlpProviders, spans_made: int, finished: bool) -> str:
    d = providers.delivery
    where = f"{providers.endpoint} ({providers.protocol})"
    text = (
        f"delivered to {where}: {d.spans_delivered} of {spans_made} spans and "
        f"{d.metric_points_delivered} metric data points"
    )
    if d.spans_failed or d.metric_points_failed:
        text += (
            f"; not delivered: {d.spans_failed} spans, {d.metric_points_failed} metric "
            "data points"
        )
    if not finished:
        text += f"; the final flush gave up after {providers.shutdown_timeout:g} s"
    return text


def _replays_text(r: Replays) -> str:
    return (
        f"Repeats (--duration {r.duration:g}): {r.passes} more "
        f"{'pass' if r.passes == 1 else 'passes'} of the scenario in "
        f"{r.seconds:g} s after the first, each in a fresh session against the same two "
        "servers. The tables, spans and metric values above are the first pass's; the OTLP "
        f"export carries all {r.passes + 1} passes ({r.spans} more spans)."
    )


async def run_demo(
    scenario: str,
    *,
    otlp: Optional[str],
    protocol: Optional[str],
    progress: Progress,
    duration: Optional[float] = None,
) -> dict[str, Any]:
    """Run ``scenario``; returns ``{"text": str, "json": dict, "delivered": int|None}``
    (``delivered``: spans and metric points the OTLP endpoint accepted, None without
    ``otlp``). With ``duration`` (seconds), replay it in fresh sessions until that long
    has passed since the first pass began; the report stays the first pass's."""
    telemetry, providers = _telemetry(otlp, protocol)
    servers = await start_servers()
    replays: Optional[Replays] = None
    try:
        progress(f"servers on {servers.small} (small body) and {servers.slow} (slow body)")
        started = time.monotonic()
        result = await SCENARIOS[scenario](telemetry, servers, progress)
        spans = telemetry.spans.get_finished_spans()
        metrics, label = telemetry.snapshot, telemetry.snapshot_label
        if metrics is None and telemetry.reader is not None:
            metrics = telemetry.reader.get_metrics_data()
        if duration is not None:
            replays = await replay(
                scenario, telemetry, servers, duration, progress, started=started
            )
    finally:
        await servers.close()
    ports = {int(url.rsplit(":", 1)[1]): name for name, url in result.hosts.items()}
    explanation = render.explain(result)
    otlp_report: Optional[dict[str, Any]] = None
    sections = [
        render.header(result),
        render.table(result),
        "What happened:\n" + "\n".join(f"- {line}" for line in explanation),
        "Spans:\n" + render.span_tree(spans),
        f"Metrics ({label}; each point host/attribute values=value):\n"
        + render.metric_values(metrics, ports),
    ]
    spans_made = len(spans)
    if replays is not None:
        sections.append(_replays_text(replays))
        spans_made += replays.spans
    if providers is not None:
        progress(f"flushing to {providers.endpoint} (at most {providers.shutdown_timeout:g} s)")
        finished = await asyncio.to_thread(providers.shutdown)
        d = providers.delivery
        sections.append("OTLP: " + _otlp_text(providers, spans_made, finished))
        otlp_report = {
            "endpoint": providers.endpoint,
            "protocol": providers.protocol,
            "spans": spans_made,
            "spans_delivered": d.spans_delivered,
            "spans_failed": d.spans_failed,
            "metric_points_delivered": d.metric_points_delivered,
            "metric_points_failed": d.metric_points_failed,
            "flush_finished": finished,
        }
    else:
        telemetry.tracer_provider.shutdown()
        telemetry.meter_provider.shutdown()
    report: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    report.update(dataclasses.asdict(result))
    report["explanation"] = explanation
    report["spans"] = [
        {
            "name": s.name,
            "duration_ms": round(((s.end_time or 0) - (s.start_time or 0)) / 1e6, 3),
            "attributes": dict(s.attributes or {}),
        }
        for s in spans
    ]
    report["otlp"] = otlp_report
    if replays is not None:
        report["repeats"] = dataclasses.asdict(replays)
    return {
        "text": "\n\n".join(sections),
        "json": report,
        "delivered": None if providers is None else providers.delivery.delivered,
        "otlp": otlp_report,
        "finished_spans": spans,  # for --timeline
    }
