"""Finished SDK spans in the JSON shape Jaeger's query API answers, as Jaeger's own
OTLP translation makes it: the demo draws its timeline without a Jaeger, and a
timeline drawn from either source is the same picture."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Trace = dict[str, Any]


def _tag(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        kind = "bool"
    elif isinstance(value, int):
        kind = "int64"
    elif isinstance(value, float):
        kind = "float64"
    else:
        kind, value = "string", str(value)
    return {"key": key, "type": kind, "value": value}


def _status_tags(span: Any) -> list[dict[str, Any]]:
    code = getattr(getattr(span, "status", None), "status_code", None)
    if code is None or code.name == "UNSET":
        return []
    tags = [_tag("otel.status_code", code.name)]
    if code.name == "ERROR":
        tags.append(_tag("error", True))
        if span.status.description:
            tags.append(_tag("otel.status_description", span.status.description))
    return tags


def _span(span: Any, process_id: str) -> dict[str, Any]:
    ctx = span.get_span_context()
    trace_id = f"{ctx.trace_id:032x}"
    start = (span.start_time or 0) // 1000
    end = (span.end_time or span.start_time or 0) // 1000
    references = []
    if span.parent is not None:
        references.append(
            {"refType": "CHILD_OF", "traceID": trace_id, "spanID": f"{span.parent.span_id:016x}"}
        )
    tags = [_tag(k, v) for k, v in (span.attributes or {}).items()]
    tags.append(_tag("span.kind", span.kind.name.lower()))
    logs = [
        {
            "timestamp": event.timestamp // 1000,
            "fields": [_tag("event", event.name)]
            + [_tag(k, v) for k, v in (event.attributes or {}).items()],
        }
        for event in span.events
    ]
    return {
        "traceID": trace_id,
        "spanID": f"{ctx.span_id:016x}",
        "operationName": span.name,
        "references": references,
        "startTime": start,
        "duration": end - start,
        "tags": tags + _status_tags(span),
        "logs": logs,
        "processID": process_id,
    }


def jaeger_traces(spans: Iterable[Any]) -> list[Trace]:
    """``ReadableSpan``s grouped into Jaeger-shaped traces (one process per resource)."""
    traces: dict[str, Trace] = {}
    for span in spans:
        trace_id = f"{span.get_span_context().trace_id:032x}"
        trace = traces.setdefault(trace_id, {"traceID": trace_id, "spans": [], "processes": {}})
        resource = dict(getattr(span.resource, "attributes", None) or {})
        process = {
            "serviceName": str(resource.pop("service.name", "unknown_service")),
            "tags": [_tag(k, v) for k, v in sorted(resource.items())],
        }
        processes = trace["processes"]
        process_id = next((k for k, v in processes.items() if v == process), None)
        if process_id is None:
            process_id = f"p{len(processes) + 1}"
            processes[process_id] = process
        trace["spans"].append(_span(span, process_id))
    return list(traces.values())
