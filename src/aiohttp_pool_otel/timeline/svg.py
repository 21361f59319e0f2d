"""A :class:`~.model.Timeline` drawn as one self-contained SVG (no script, no fonts,
no external reference), or an HTML page around it.

Every bar is a ``rect`` that carries its span (``data-span-id``, ``data-trace-id``)
and a ``title`` tooltip; x = origin + (time - first span's start) x scale, the axis
ticks say the scale.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Optional
from xml.sax.saxutils import escape, quoteattr

from .. import semconv as sc
from . import axis
from . import palette as pal
from .model import DIAL, LEASE, WAIT, Bar, Group, Row, Timeline

WIDTH = 1200
LABEL_W = 250  # the row labels' column
PLOT_X = LABEL_W + 12  # where the time axis starts: room for a dial's marker
RIGHT = 40
PLOT_W = WIDTH - PLOT_X - RIGHT
INLINE_MIN_W = 80  # a bar this wide says what it is inside it too
ROW_H = 18
BAR_H = 12
GROUP_H = 24
AXIS_H = 28
LEGEND_X = 160.0
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"


@dataclass
class Scale:
    """Time (µs since the epoch) -> x (px)."""

    origin_us: int
    span_us: int

    @property
    def px_per_us(self) -> float:
        return PLOT_W / max(1, self.span_us)

    def x(self, t_us: int) -> float:
        return PLOT_X + (t_us - self.origin_us) * self.px_per_us


@dataclass
class Canvas:
    """The SVG's elements, top to bottom, and where the next one goes."""

    scale: Scale
    y: float = 0.0
    parts: list[str] = field(default_factory=list)

    def add(self, element: str) -> None:
        self.parts.append(element)

    def text(self, x: float, y: float, content: str, **attrs: object) -> None:
        self.add(f'<text x="{x:.2f}" y="{y:.2f}"{_attr(**attrs)}>{escape(content)}</text>')


def _attr(**attrs: object) -> str:
    """XML attributes from keywords: ``data_span_id`` -> ``data-span-id``, ``class_``."""
    return "".join(
        f" {k.rstrip('_').replace('_', '-')}={quoteattr(str(v))}" for k, v in attrs.items()
    )


# --- tooltips -----------------------------------------------------------------------


def _tooltip(bar: Bar) -> str:
    t = bar.tags
    took = axis.duration(bar.end_us - bar.start_us)
    method = f" · {t[sc.HTTP_REQUEST_METHOD]}" if sc.HTTP_REQUEST_METHOD in t else ""
    if bar.kind == LEASE:
        phase = f"/{t[sc.RELEASE_PHASE]}" if sc.RELEASE_PHASE in t else ""
        how = "reused" if t.get(sc.CONNECTION_REUSED) else "new connection"
        queued = ", after queueing" if t.get(sc.CONNECTION_QUEUED) else ""
        outcome = t.get(sc.RELEASE_OUTCOME, "?")
        return f"lease {took}: {bar.category}{phase} -> {outcome} ({how}{queued}){method}"
    if bar.kind == WAIT:
        verdict = f" · {t.get(sc.ERROR_TYPE, 'failed')}" if bar.failed else ""
        depth = t.get(sc.POOL_QUEUE_DEPTH, "?")
        return f"queued {took}, blocked by {bar.category} ({depth} ahead){verdict}{method}"
    if bar.failed:
        return f"dial failed after {took}: {t.get(sc.ERROR_TYPE, '?')}{method}"
    peer = t.get(sc.NETWORK_PEER_ADDRESS)
    to = f" to {peer}:{t.get(sc.NETWORK_PEER_PORT)}" if peer is not None else ""
    return f"dial {took}{to}{method}"


# --- bars -------------------------------------------------------------------------


def _rect(c: Canvas, bar: Bar, y: float, fill: str, extra: str = "", height: float = BAR_H) -> None:
    x0, x1 = c.scale.x(bar.start_us), c.scale.x(bar.end_us)
    ids = _attr(data_span_id=bar.span_id, data_trace_id=bar.trace_id)
    c.add(
        f'<rect class="bar {bar.kind}" x="{x0:.2f}" y="{y:.2f}" width="{max(1.0, x1 - x0):.2f}" '
        f'height="{height:g}" fill="{fill}"{ids}{extra}>'
        f"<title>{escape(_tooltip(bar))}</title></rect>"
    )


def _inline(c: Canvas, bar: Bar, y: float, words: str, colour: str) -> None:
    """The bar's words inside it, where it is wide enough (readable without colour)."""
    x0, x1 = c.scale.x(bar.start_us), c.scale.x(bar.end_us)
    text = f"{words} · {axis.duration(bar.end_us - bar.start_us)}"
    if x1 - x0 >= max(INLINE_MIN_W, 6.2 * len(text) + 8):
        c.text(x0 + 4, y + BAR_H - 2.5, text, class_="inline", fill=colour, font_size=10)


def _cross(c: Canvas, x: float, y: float, colour: str, cls: str) -> None:
    c.add(
        f'<path class="{cls}" d="M{x - 3.5:.2f},{y - 3.5:.2f}l7,7m0,-7l-7,7" '
        f'stroke="{colour}" stroke-width="2" fill="none"/>'
    )


def _lease(c: Canvas, bar: Bar, y: float) -> None:
    extra = _attr(data_reason=bar.category, stroke="#FFFFFF", stroke_width="1")
    _rect(c, bar, y, pal.reason_colour(bar.category), extra)
    phase = bar.tags.get(sc.RELEASE_PHASE)
    words = f"{bar.category}/{phase}" if phase else bar.category
    _inline(c, bar, y, words, pal.on_colour(pal.reason_colour(bar.category)))
    for mark in bar.marks:  # held_too_long: a red tick where the watchdog fired
        x = c.scale.x(mark)
        c.add(f'<path class="held-too-long" d="M{x:.2f},{y - 2:.2f}v{BAR_H + 4}" '
              f'stroke="{pal.TIMED_OUT}" stroke-width="2"/>')  # fmt: skip


def _dial(c: Canvas, bar: Bar, y: float) -> None:
    colour = pal.TIMED_OUT if bar.failed else pal.DIAL
    _rect(c, bar, y + BAR_H / 4, colour, _attr(data_outcome=bar.category), BAR_H / 2)
    x = c.scale.x(bar.start_us)  # the marker: a dial is often too short to see
    c.add(f'<path class="dial-mark" d="M{x - 4.5:.2f},{y - 3:.2f}h9l-4.5,7z" fill="{colour}"/>')


def _wait(c: Canvas, bar: Bar, y: float) -> None:
    limit = bar.category
    stroke = pal.TIMED_OUT if bar.failed else pal.WAIT_STROKES.get(limit, pal.MUTED)
    extra = _attr(data_blocking_limit=limit, stroke=stroke, stroke_width=2 if bar.failed else 1)
    _rect(c, bar, y, pal.WAIT_COLOURS.get(limit, pal.BAND), extra)
    _inline(c, bar, y, "queued", pal.TEXT)
    if bar.failed:
        _cross(c, c.scale.x(bar.end_us), y + BAR_H / 2, pal.TIMED_OUT, "timed-out")


_DRAW = {LEASE: _lease, DIAL: _dial, WAIT: _wait}


# --- rows and groups ----------------------------------------------------------------


def _lifeline(c: Canvas, row: Row, y: float) -> None:
    """A connection's life: open from its first bar; to its close (an x), else on to
    the picture's end (idle in the pool, as far as the spans tell)."""
    start = c.scale.x(row.bars[0].start_us)
    end = c.scale.x(row.bars[-1].end_us) if row.closed else PLOT_X + PLOT_W
    mid = y + BAR_H / 2
    c.add(f'<line class="lifeline" x1="{start:.2f}" y1="{mid:.2f}" x2="{end:.2f}" '
          f'y2="{mid:.2f}" stroke="{pal.LIFELINE}" stroke-width="1.5"/>')  # fmt: skip
    if row.closed:
        _cross(c, end + 5, mid, pal.TEXT, "closed-mark")


def _row_label(row: Row) -> str:
    if row.kind != "connection":
        return row.label
    return f"{row.label} · {plural(sum(1 for b in row.bars if b.kind == LEASE), 'lease')}"


def _row(c: Canvas, row: Row, index: int) -> None:
    y = c.y + (ROW_H - BAR_H) / 2
    port = _attr(data_local_port=row.local_port) if row.local_port is not None else ""
    c.add(f'<g class="row"{_attr(data_kind=row.kind, data_row=index)}{port}>')
    colour = pal.MUTED if row.kind == "queue" else pal.TEXT
    c.text(LABEL_W - 8, y + BAR_H - 2, _row_label(row), text_anchor="end", fill=colour)
    if row.kind == "connection" and row.bars:
        _lifeline(c, row, y)
    for bar in row.bars:
        _DRAW[bar.kind](c, bar, y)
    c.add("</g>")
    c.y += ROW_H


def plural(count: int, noun: str) -> str:
    """``1 lease``, ``2 leases``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _peak(bars: list[Bar]) -> int:
    """Most bars open at once (an end before a start at the same instant)."""
    edges = sorted([(b.start_us, 1) for b in bars] + [(b.end_us, -1) for b in bars])
    peak = now = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


def _group_summary(group: Group) -> str:
    leases, waits = group.bars(LEASE), group.bars(WAIT)
    conns = sum(1 for r in group.rows if r.kind == "connection")
    text = f"{plural(conns, 'connection')}, {plural(len(leases), 'lease')}"
    text += f" (peak {_peak(leases)} at once)"
    if waits:
        longest = axis.duration(max(b.end_us - b.start_us for b in waits))
        text += f", {len(waits)} queued (peak {_peak(waits)} at once, longest {longest})"
    return text


def _group(c: Canvas, group: Group, first_row: int) -> int:
    c.add(f'<g class="group"{_attr(data_host=group.label)}>')
    c.add(f'<rect x="0" y="{c.y:.2f}" width="{WIDTH}" height="{GROUP_H - 4}" fill="{pal.BAND}"/>')
    c.text(10, c.y + 14, group.label, font_weight="bold", fill=pal.TEXT)
    c.text(LABEL_W + 4, c.y + 14, _group_summary(group), fill=pal.MUTED)
    c.y += GROUP_H
    for i, row in enumerate(group.rows):
        _row(c, row, first_row + i)
    c.add("</g>")
    c.y += 8
    return first_row + len(group.rows)


# --- axis, header, legend ---------------------------------------------------------------


def _axis(c: Canvas, top: float, bottom: float) -> None:
    span = c.scale.span_us
    step = axis.tick_step(span)
    offsets = axis.ticks(span)
    unit = axis.tick_unit(step, offsets[-1])
    c.add(f'<g class="axis"{_attr(data_origin_us=c.scale.origin_us)}>')
    for offset in offsets:
        x = c.scale.x(c.scale.origin_us + offset)
        c.add(f'<line class="tick" x1="{x:.2f}" y1="{top:.2f}" x2="{x:.2f}" '
              f'y2="{bottom:.2f}" stroke="{pal.GRID}"/>')  # fmt: skip
        label = axis.tick_label(offset, unit)
        for y in (top - 6, bottom + 14):
            c.text(x, y, label, class_="tick-label", text_anchor="middle", fill=pal.MUTED)
    c.add("</g>")


def _header(c: Canvas, tl: Timeline, title: str) -> None:
    c.text(10, 22, title, font_size=16, font_weight="bold", fill=pal.TEXT)
    start = datetime.datetime.fromtimestamp(tl.start_us / 1e6, datetime.timezone.utc)
    counts = (
        plural(len(tl.groups), "host"),
        plural(tl.connections, "connection"),
        plural(len(tl.bars(LEASE)), "lease"),
        plural(len(tl.bars(DIAL)), "dial"),
        plural(len(tl.bars(WAIT)), "queued request"),
    )
    summary = (
        f"from {start:%Y-%m-%d %H:%M:%S}.{start.microsecond // 1000:03d} UTC, "
        f"{axis.duration(tl.end_us - tl.start_us)} · " + " · ".join(counts)
    )
    c.text(10, 42, summary, fill=pal.MUTED)
    c.y = 48
    for note in tl.notes:
        c.y += 16
        c.text(10, c.y, "note: " + note, fill=pal.MUTED, font_style="italic", font_size=11)


def _swatch(c: Canvas, x: float, y: float, key: str, fill: str, label: str) -> float:
    c.add(f'<g class="legend-item"{_attr(data_key=key)}>')
    c.add(f'<rect class="swatch" x="{x:.2f}" y="{y:.2f}" width="22" height="{BAR_H}" '
          f'fill="{fill}" stroke="#FFFFFF" stroke-width="0.6"/>')  # fmt: skip
    c.text(x + 28, y + BAR_H - 2, label, fill=pal.TEXT)
    c.add("</g>")
    return x + 36 + 6.4 * len(label)


def _legend(c: Canvas, tl: Timeline) -> None:
    y = c.y
    c.text(10, y + BAR_H - 2, "leases, released by:", font_weight="bold", fill=pal.TEXT)
    x = LEGEND_X
    for reason in pal.legend_reasons({b.category for b in tl.bars(LEASE)}):
        if x > WIDTH - 220:
            x, y = LEGEND_X, y + ROW_H
        words = pal.REASON_WORDS.get(reason, reason)
        x = _swatch(c, x, y, reason, pal.reason_colour(reason), words)
    y += ROW_H + 4
    c.text(10, y + BAR_H - 2, "queued, behind:", font_weight="bold", fill=pal.TEXT)
    x = LEGEND_X
    for limit, words in (("limit_per_host", "limit_per_host"), ("limit", "limit (total)")):
        x = _swatch(c, x, y, f"wait:{limit}", pal.WAIT_COLOURS[limit], words)
    _cross(c, x + 11, y + BAR_H / 2, pal.TIMED_OUT, "legend-timed-out")
    c.text(x + 28, y + BAR_H - 2, "wait timed out", fill=pal.TEXT)
    y += ROW_H + 4
    c.text(10, y + BAR_H - 2, "connections:", font_weight="bold", fill=pal.TEXT)
    x = LEGEND_X
    c.add(f'<path d="M{x + 6.5:.2f},{y - 1:.2f}h9l-4.5,7z" fill="{pal.DIAL}"/>')
    c.text(x + 28, y + BAR_H - 2, "dial (new connection)", fill=pal.TEXT)
    x += 200
    c.add(f'<line x1="{x}" y1="{y + 6:.2f}" x2="{x + 22}" y2="{y + 6:.2f}" '
          f'stroke="{pal.LIFELINE}" stroke-width="1.5"/>')  # fmt: skip
    c.text(x + 28, y + BAR_H - 2, "open, idle in the pool", fill=pal.TEXT)
    x += 200
    _cross(c, x + 11, y + 6, pal.TEXT, "legend-closed")
    c.text(x + 28, y + BAR_H - 2, "closed", fill=pal.TEXT)
    x += 100
    c.add(f'<path d="M{x + 11},{y - 2:.2f}v{BAR_H + 4}" stroke="{pal.TIMED_OUT}" '
          f'stroke-width="2"/>')  # fmt: skip
    c.text(x + 28, y + BAR_H - 2, "held_too_long (watchdog)", fill=pal.TEXT)
    c.y = y + ROW_H + 10


def render(tl: Timeline, title: Optional[str] = None) -> str:
    """The timeline as an SVG document."""
    c = Canvas(Scale(tl.start_us, tl.end_us - tl.start_us))
    title = title or f"aiohttp connection pool timeline · service {tl.service or '?'}"
    _header(c, tl, title)
    c.y += AXIS_H
    top = c.y - 4
    row = 0
    body_at = len(c.parts)
    for group in tl.groups:
        row = _group(c, group, row)
    body, c.parts = c.parts[body_at:], c.parts[:body_at]
    _axis(c, top, c.y)  # under the bars: gridlines first
    c.parts += body
    c.y += AXIS_H
    _legend(c, tl)
    height = int(c.y)
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="{FONT}" font-size="12">'
        f"<title>{escape(title)}</title>"
        f'<rect width="{WIDTH}" height="{height}" fill="#FFFFFF"/>'
    )
    return "\n".join([head, *c.parts, "</svg>"]) + "\n"


def render_html(tl: Timeline, title: Optional[str] = None) -> str:
    """An HTML page with the SVG inline (tooltips work in any browser)."""
    svg = render(tl, title)
    name = escape(title or f"aiohttp pool timeline · {tl.service}")
    return (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{name}</title></head>\n'
        f'<body style="margin:0">\n{svg}</body></html>\n'
    )
