"""The frame around the timeline's rows: the header, the time axis, the legend."""

from __future__ import annotations

import datetime

from . import axis
from . import palette as pal
from .canvas import BAR_H, LEGEND_X, ROW_H, WIDTH, Canvas, attr, cross, plural
from .model import DIAL, LEASE, WAIT, Timeline


def time_axis(c: Canvas, top: float, bottom: float) -> None:
    span = c.scale.span_us
    step = axis.tick_step(span)
    offsets = axis.ticks(span)
    unit = axis.tick_unit(step, offsets[-1])
    c.add(f'<g class="axis"{attr(data_origin_us=c.scale.origin_us)}>')
    for offset in offsets:
        x = c.scale.x(c.scale.origin_us + offset)
        c.add(f'<line class="tick" x1="{x:.2f}" y1="{top:.2f}" x2="{x:.2f}" '
              f'y2="{bottom:.2f}" stroke="{pal.GRID}"/>')  # fmt: skip
        label = axis.tick_label(offset, unit)
        for y in (top - 6, bottom + 14):
            c.text(x, y, label, class_="tick-label", text_anchor="middle", fill=pal.MUTED)
    c.add("</g>")


def header(c: Canvas, tl: Timeline, title: str) -> None:
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
    c.add(f'<g class="legend-item"{attr(data_key=key)}>')
    c.add(f'<rect class="swatch" x="{x:.2f}" y="{y:.2f}" width="22" height="{BAR_H}" '
          f'fill="{fill}" stroke="#FFFFFF" stroke-width="0.6"/>')  # fmt: skip
    c.text(x + 28, y + BAR_H - 2, label, fill=pal.TEXT)
    c.add("</g>")
    return x + 36 + 6.4 * len(label)


def legend(c: Canvas, tl: Timeline) -> None:
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
    cross(c, x + 11, y + BAR_H / 2, pal.TIMED_OUT, "legend-timed-out")
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
    cross(c, x + 11, y + 6, pal.TEXT, "legend-closed")
    c.text(x + 28, y + BAR_H - 2, "closed", fill=pal.TEXT)
    x += 100
    c.add(f'<path d="M{x + 11},{y - 2:.2f}v{BAR_H + 4}" stroke="{pal.TIMED_OUT}" '
          f'stroke-width="2"/>')  # fmt: skip
    c.text(x + 28, y + BAR_H - 2, "held_too_long (watchdog)", fill=pal.TEXT)
    c.y = y + ROW_H + 10
