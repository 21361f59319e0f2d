"""Colours and words of the picture: one place, so the legend and the bars agree.

Okabe-Ito colours (told apart with the common colour-vision deficiencies); the
healthy release (``eof``) is the calm blue, the leak (``gc``) the loud vermilion.
"""

from __future__ import annotations

from ..semconv import ReleaseReason

REASON_COLOURS = {
    "eof": "#0072B2",
    "release": "#56B4E9",
    "close": "#E69F00",
    "gc": "#D55E00",
    "error": "#CC79A7",
    "connector_closed": "#7F7F7F",
    "upgrade": "#009E73",
}
UNKNOWN_REASON = "#C8C8C8"  # a lease span without a release reason
REASON_WORDS = {
    "eof": "eof: body read to its end",
    "release": "release: released before EOF",
    "close": "close: closed before EOF",
    "gc": "gc: garbage-collected (a leak)",
    "error": "error: no finished response",
    "connector_closed": "connector_closed",
    "upgrade": "upgrade: handed to a WebSocket",
}
WAIT_COLOURS = {"limit_per_host": "#F0E442", "limit": "#B79FD6"}
WAIT_STROKES = {"limit_per_host": "#8A7D00", "limit": "#5E3C99"}
TIMED_OUT = "#C00000"
DIAL = "#1A1A1A"
LIFELINE = "#9A9A9A"
GRID = "#E6E6E6"
TEXT = "#1A1A1A"
MUTED = "#666666"
BAND = "#F3F5F8"


def reason_colour(reason: str) -> str:
    """The fill of a lease released for ``reason``."""
    return REASON_COLOURS.get(reason, UNKNOWN_REASON)


def on_colour(fill: str) -> str:
    """Text colour readable on ``fill`` (#RRGGBB): white on dark, near-black on light."""
    r, g, b = (int(fill[i : i + 2], 16) for i in (1, 3, 5))
    return "#FFFFFF" if 0.299 * r + 0.587 * g + 0.114 * b < 150 else TEXT


def legend_reasons(present: set[str]) -> list[str]:
    """Every release reason the package knows, then any other one the spans carry."""
    known = [r.value for r in ReleaseReason]
    return known + sorted(present - set(known))
