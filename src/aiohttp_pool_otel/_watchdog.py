"""The held-connection watchdog: flags leases held past ``watchdog_threshold``.

A loop timer, armed while leases exist: it adds a ``held_too_long`` event to the
lease span once per lease. The gauge does not depend on it: it counts, at
collection, the held leases whose start is at least the threshold ago.
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable, Optional

from . import semconv as sc
from ._records import ConnectionRecord, HostId


class Watchdog:
    """One connector's watchdog timer (loop thread)."""

    def __init__(self, threshold: float, held: Callable[[], list[ConnectionRecord]]) -> None:
        self.threshold = threshold
        self._held = held
        self._timer: Optional[asyncio.TimerHandle] = None

    def arm(self) -> None:
        """Start watching (idempotent; called when a lease starts)."""
        if self._timer is None:
            interval = max(self.threshold / 2, 0.05)
            self._timer = asyncio.get_running_loop().call_later(interval, self._watch)

    def stop(self) -> None:
        """Cancel the timer (the connector closed)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _watch(self) -> None:
        self._timer = None
        records = self._held()
        if not records:
            return  # re-armed by the next lease
        now = time.monotonic()
        for record in records:
            started = record.lease_started_at
            if started is None or record.held_too_long:
                continue
            held = now - started
            if held >= self.threshold:
                record.held_too_long = True
                span = record.span
                if span is not None and span.is_recording():
                    span.add_event(sc.EVENT_HELD_TOO_LONG, {sc.CONNECTION_HOLD_TIME: held})
        self.arm()

    def count(self, records: list[ConnectionRecord]) -> dict[HostId, int]:
        """How many of ``records`` are held at least the threshold now, per host."""
        out: dict[HostId, int] = {}
        deadline = time.monotonic() - self.threshold
        for record in records:
            started = record.lease_started_at
            if started is not None and started <= deadline:
                identity = record.host.identity
                out[identity] = out.get(identity, 0) + 1
        return out
