"""The time axis: tick steps a reader can add up, and durations written for humans."""

from __future__ import annotations

# Tick steps in microseconds: 1-2-5 up to a second, then the clock's own steps.
_STEPS_US = (
    1, 2, 5, 10, 20, 50, 100, 200, 500,
    1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000,
    1_000_000, 2_000_000, 5_000_000, 10_000_000, 15_000_000, 30_000_000,
    60_000_000, 120_000_000, 300_000_000, 600_000_000, 900_000_000, 1_800_000_000,
    3_600_000_000, 7_200_000_000, 21_600_000_000, 43_200_000_000, 86_400_000_000,
)  # fmt: skip
# (unit, microseconds), largest first.
_UNITS = (("h", 3_600_000_000), ("min", 60_000_000), ("s", 1_000_000), ("ms", 1_000), ("µs", 1))


def tick_step(span_us: float, max_ticks: int = 10) -> int:
    """The smallest step that puts at most ``max_ticks`` ticks on ``span_us``."""
    for step in _STEPS_US:
        if span_us / step <= max_ticks:
            return step
    return _STEPS_US[-1]


def ticks(span_us: float, max_ticks: int = 10) -> list[int]:
    """Offsets (µs from the origin) of the ticks on an axis ``span_us`` long."""
    step = tick_step(span_us, max_ticks)
    return [i * step for i in range(int(span_us // step) + 1)]


def tick_unit(step_us: int, last_us: int) -> tuple[str, int]:
    """The unit of an axis's labels: hours and minutes only for whole steps of them,
    else the largest unit the last tick reaches (``0.2 s`` ... ``1.6 s``)."""
    for unit, size in _UNITS:
        whole = step_us % size == 0 if size >= 60_000_000 else True
        if whole and last_us >= size:
            return unit, size
    return "µs", 1


def tick_label(offset_us: int, unit: tuple[str, int]) -> str:
    """``offset_us`` in ``unit``: ``250 ms``, ``1.5 s``, ``2 min``."""
    name, size = unit
    return f"{round(offset_us / size, 6):g} {name}"


def duration(us: float) -> str:
    """A span's duration, three significant digits: ``850 µs``, ``201 ms``, ``1.52 s``."""
    for unit, size in (("s", 1_000_000), ("ms", 1_000)):
        if us >= size:
            return f"{us / size:.3g} {unit}"
    return f"{us:.3g} µs"
