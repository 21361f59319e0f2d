"""Reading a pool timeline SVG back (xml.etree) the way its reader does: the axis's
tick labels give the scale, the legend gives the colours, and each bar is checked
against the span it claims to draw (Jaeger's JSON shape)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Optional

SVG = "{http://www.w3.org/2000/svg}"
POOL_SPANS = {
    "aiohttp.connection.lease": "lease",
    "aiohttp.connection.create": "dial",
    "aiohttp.connection.wait": "wait",
}
_UNIT_US = {"µs": 1, "ms": 1_000, "s": 1_000_000, "min": 60_000_000, "h": 3_600_000_000}
_TICK = re.compile(r"^([0-9.]+) (µs|ms|s|min|h)$")


@dataclass
class DrawnBar:
    """One bar of the picture, with the row and the group it sits in."""

    kind: str
    span_id: str
    x: float
    width: float
    fill: str
    attrib: dict[str, str]
    row: int
    row_kind: str
    local_port: Optional[int]
    host: str


@dataclass
class Drawing:
    """A parsed timeline."""

    bars: list[DrawnBar]
    rows: list[dict[str, str]]
    legend: dict[str, str]  # legend key -> swatch fill
    ticks: list[tuple[float, int]]  # (x, offset in µs) from the tick labels
    text: str

    def bar(self, span_id: str) -> DrawnBar:
        (found,) = [b for b in self.bars if b.span_id == span_id]
        return found

    def x_of(self, offset_us: float) -> float:
        """Where the axis puts ``offset_us`` after the origin (a line through its ticks)."""
        (x0, t0), (x1, t1) = self.ticks[0], self.ticks[-1]
        return x0 + (offset_us - t0) * (x1 - x0) / (t1 - t0)


def _bars_of_row(row: ET.Element, index: int, host: str) -> list[DrawnBar]:
    port = row.get("data-local-port")
    return [
        DrawnBar(
            kind=rect.get("class", "").split()[1],
            span_id=rect.get("data-span-id", ""),
            x=float(rect.get("x", "nan")),
            width=float(rect.get("width", "nan")),
            fill=rect.get("fill", ""),
            attrib=dict(rect.attrib),
            row=index,
            row_kind=row.get("data-kind", ""),
            local_port=int(port) if port is not None else None,
            host=host,
        )
        for rect in row.iter(f"{SVG}rect")
        if rect.get("class", "").startswith("bar ")
    ]


def parse(svg_text: str) -> Drawing:
    """Parse a timeline SVG (raises if it is not well-formed XML)."""
    root = ET.fromstring(svg_text)
    bars: list[DrawnBar] = []
    rows: list[dict[str, str]] = []
    for group in root.iter(f"{SVG}g"):
        if group.get("class") != "group":
            continue
        for row in group.iter(f"{SVG}g"):
            if row.get("class") == "row":
                rows.append(dict(row.attrib, host=group.get("data-host", "")))
                bars += _bars_of_row(row, len(rows) - 1, group.get("data-host", ""))
    legend = {}
    for item in root.iter(f"{SVG}g"):
        if item.get("class") == "legend-item":
            swatch = item.find(f"{SVG}rect")
            assert swatch is not None
            legend[item.get("data-key", "")] = swatch.get("fill", "")
    ticks = []
    seen = set()
    for text in root.iter(f"{SVG}text"):
        match = _TICK.match(text.text or "")
        if text.get("class") == "tick-label" and match and text.get("x") not in seen:
            seen.add(text.get("x"))
            ticks.append((float(text.get("x", "nan")), round(float(match[1]) * _UNIT_US[match[2]])))
    words = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    return Drawing(bars, rows, legend, sorted(ticks), words)


def tags(span: dict[str, Any]) -> dict[str, Any]:
    return {t["key"]: t["value"] for t in span.get("tags", [])}


def pool_spans(traces: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pool spans of Jaeger-shaped traces."""
    return [s for t in traces for s in t["spans"] if s["operationName"] in POOL_SPANS]


def check_bars_match_spans(drawing: Drawing, spans: list[dict[str, Any]]) -> None:
    """Every pool span is one bar of its kind whose left edge and width map back to the
    span's start and duration within a pixel, on the axis the picture prints."""
    assert len(drawing.ticks) >= 3, drawing.ticks
    assert sorted(b.span_id for b in drawing.bars) == sorted(s["spanID"] for s in spans)
    origin = min(s["startTime"] for s in spans)  # the axis counts from the first span
    for span in spans:
        bar = drawing.bar(span["spanID"])
        assert bar.kind == POOL_SPANS[span["operationName"]]
        start = drawing.x_of(span["startTime"] - origin)
        end = drawing.x_of(span["startTime"] + span["duration"] - origin)
        assert abs(bar.x - start) <= 1.0, (span["operationName"], bar.x, start)
        assert abs(bar.width - max(1.0, end - start)) <= 1.0, (bar.width, end - start)


def check_colours(drawing: Drawing, spans: list[dict[str, Any]]) -> None:
    """Each lease has its release reason's colour as the legend shows it; each wait the
    colour of the limit that blocked it."""
    by_id = {s["spanID"]: tags(s) for s in spans}
    for bar in drawing.bars:
        t = by_id[bar.span_id]
        if bar.kind == "lease":
            assert bar.fill == drawing.legend[t["aiohttp.connection.release.reason"]]
        elif bar.kind == "wait":
            assert bar.fill == drawing.legend[f"wait:{t['aiohttp.pool.blocking_limit']}"]
