"""Durations as Prometheus writes them (``30m``, ``1h30m``, ``90s``), in seconds."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_WHOLE = re.compile(r"(?:\d+(?:ms|s|m|h|d|w))+")


def parse_duration(text: str) -> float:
    """Seconds in ``text`` (``30m``, ``1h30m``, ``45s``); ``ValueError`` naming it if bad."""
    cleaned = text.strip()
    if not _WHOLE.fullmatch(cleaned):
        raise ValueError(
            f"{text!r} is not a duration: write it as Prometheus does, e.g. 30m, 1h, 90s"
        )
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(cleaned))
    if seconds <= 0:
        raise ValueError(f"{text!r} is not a duration: it must be longer than 0")
    return seconds


def promql_range(seconds: float) -> str:
    """``seconds`` as a PromQL range (whole milliseconds, so that any window is exact)."""
    millis = max(1, round(seconds * 1000))
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def human(seconds: float) -> str:
    """A short human form: ``30m``, ``1h30m``, ``45s``."""
    whole = round(seconds)
    if whole < 60:
        return f"{seconds:g}s" if whole != seconds else f"{whole}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, whole = divmod(whole, size)
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)
