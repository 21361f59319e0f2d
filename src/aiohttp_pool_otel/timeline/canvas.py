"""The drawing surface of the timeline: its layout, its time scale, and the few
shapes every part of the picture uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

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
        self.add(f'<text x="{x:.2f}" y="{y:.2f}"{attr(**attrs)}>{escape(content)}</text>')


def attr(**attrs: object) -> str:
    """XML attributes from keywords: ``data_span_id`` -> ``data-span-id``, ``class_``."""
    return "".join(
        f" {k.rstrip('_').replace('_', '-')}={quoteattr(str(v))}" for k, v in attrs.items()
    )


def cross(c: Canvas, x: float, y: float, colour: str, cls: str) -> None:
    c.add(
        f'<path class="{cls}" d="M{x - 3.5:.2f},{y - 3.5:.2f}l7,7m0,-7l-7,7" '
        f'stroke="{colour}" stroke-width="2" fill="none"/>'
    )


def plural(count: int, noun: str) -> str:
    """``1 lease``, ``2 leases``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"
