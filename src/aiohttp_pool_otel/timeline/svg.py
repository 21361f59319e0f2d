"""A :class:`~.model.Timeline` drawn as one self-contained SVG (no script, no fonts,
no external reference), or an HTML page around it.

Every bar is a ``rect`` that carries its span (``data-span-id``, ``data-trace-id``)
and a ``title`` tooltip; x = origin + (time - first span's start) x scale, the axis
ticks say the scale.
"""

from __future__ import annotations

from typing import Optional
from xml.sax.saxutils import escape

from .. import semconv as sc
from . import axis, frame
from . import palette as pal
from .canvas import (
    AXIS_H,
    BAR_H,
    FONT,
    GROUP_H,
    INLINE_MIN_W,
    LABEL_W,
    PLOT_W,
    PLOT_X,
    ROW_H,
    WIDTH,
    Canvas,
    Scale,
    attr,
    cross,
    plural,
)
from .model import DIAL, LEASE, WAIT, Bar, Group, Row, Timeline

__all__ = ["plural", "render", "render_html"]

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
    ids = attr(data_span_id=bar.span_id, data_trace_id=bar.trace_id)
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


def _lease(c: Canvas, bar: Bar, y: float) -> None:
    extra = attr(data_reason=bar.category, stroke="#FFFFFF", stroke_width="1")
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
    _rect(c, bar, y + BAR_H / 4, colour, attr(data_outcome=bar.category), BAR_H / 2)
    x = c.scale.x(bar.start_us)  # the marker: a dial is often too short to see
    c.add(f'<path class="dial-mark" d="M{x - 4.5:.2f},{y - 3:.2f}h9l-4.5,7z" fill="{colour}"/>')


def _wait(c: Canvas, bar: Bar, y: float) -> None:
    limit = bar.category
    stroke = pal.TIMED_OUT if bar.failed else pal.WAIT_STROKES.get(limit, pal.MUTED)
    extra = attr(data_blocking_limit=limit, stroke=stroke, stroke_width=2 if bar.failed else 1)
    _rect(c, bar, y, pal.WAIT_COLOURS.get(limit, pal.BAND), extra)
    _inline(c, bar, y, "queued", pal.TEXT)
    if bar.failed:
        cross(c, c.scale.x(bar.end_us), y + BAR_H / 2, pal.TIMED_OUT, "timed-out")


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
        cross(c, end + 5, mid, pal.TEXT, "closed-mark")


def _row_label(row: Row) -> str:
    if row.kind != "connection":
        return row.label
    return f"{row.label} · {plural(sum(1 for b in row.bars if b.kind == LEASE), 'lease')}"


def _row(c: Canvas, row: Row, index: int) -> None:
    y = c.y + (ROW_H - BAR_H) / 2
    port = attr(data_local_port=row.local_port) if row.local_port is not None else ""
    c.add(f'<g class="row"{attr(data_kind=row.kind, data_row=index)}{port}>')
    colour = pal.MUTED if row.kind == "queue" else pal.TEXT
    c.text(LABEL_W - 8, y + BAR_H - 2, _row_label(row), text_anchor="end", fill=colour)
    if row.kind == "connection" and row.bars:
        _lifeline(c, row, y)
    for bar in row.bars:
        _DRAW[bar.kind](c, bar, y)
    c.add("</g>")
    c.y += ROW_H


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
    c.add(f'<g class="group"{attr(data_host=group.label)}>')
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


def render(tl: Timeline, title: Optional[str] = None) -> str:
    """The timeline as an SVG document."""
    c = Canvas(Scale(tl.start_us, tl.end_us - tl.start_us))
    title = title or f"aiohttp connection pool timeline · service {tl.service or '?'}"
    frame.header(c, tl, title)
    c.y += AXIS_H
    top = c.y - 4
    row = 0
    body_at = len(c.parts)
    for group in tl.groups:
        row = _group(c, group, row)
    body, c.parts = c.parts[body_at:], c.parts[:body_at]
    frame.time_axis(c, top, c.y)  # under the bars: gridlines first
    c.parts += body
    c.y += AXIS_H
    frame.legend(c, tl)
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
