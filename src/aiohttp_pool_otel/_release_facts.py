"""Release facts, and their emission as telemetry on the loop thread.

A fact is what a release was (reason, phase, outcome, when, the lease it ended),
taken where the release happened. :func:`emit_release` turns it into telemetry
later, from a loop callback: where aiohttp releases (a transport callback, a
finalizer) the plugin takes no lock and calls no SDK.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Optional

from opentelemetry.trace import Span

from . import semconv as sc
from ._errors import report_internal_error, warn_once
from ._meters import NO_EXEMPLAR
from ._records import ConnectionRecord
from ._spans import SpanEmitter
from .semconv import ReleaseOutcome, ReleasePhase, ReleaseReason

if TYPE_CHECKING:
    from ._state import PoolState


class ReleaseFact:
    """One release, or one close without a release, waiting to be emitted."""

    __slots__ = (
        "at",
        "counted",
        "hold_time",
        "key",
        "origin",
        "outcome",
        "phase",
        "protocol",
        "reason",
        "record",
        "span",
    )

    def __init__(
        self,
        protocol: Any,
        key: Any,
        record: Optional[ConnectionRecord],
        reason: ReleaseReason,
        phase: Optional[ReleasePhase],
        outcome: ReleaseOutcome,
        counted: bool,
    ) -> None:
        self.protocol = protocol
        self.key = key
        self.record = record
        self.reason = reason
        self.phase = phase
        self.outcome = outcome
        self.counted = counted
        self.at = time.monotonic()
        self.hold_time: Optional[float] = None  # acquisition to release, if seen
        self.span: Optional[Span] = None
        self.origin: Optional[tuple[str, int, str]] = None

    @classmethod
    def of(
        cls,
        protocol: Any,
        record: ConnectionRecord,
        reason: ReleaseReason,
        phase: Optional[ReleasePhase],
        outcome: ReleaseOutcome,
    ) -> ReleaseFact:
        """A counted release on the loop thread: the lease's fields move to the fact."""
        fact = cls(protocol, None, record, reason, phase, outcome, counted=True)
        fact.take_lease(record)
        return fact

    def take_lease(self, record: ConnectionRecord) -> None:
        """Move the ended lease's fields from ``record`` to this fact (loop thread)."""
        started = record.lease_started_at
        if started is not None:
            self.hold_time = self.at - started
        self.span, record.span = record.span, None
        self.origin, record.origin = record.origin, None
        record.lease_started_at = None
        record.held_too_long = False
        record.released_at = self.at


def emit_release(state: PoolState, fact: ReleaseFact) -> None:
    """The telemetry of one release: its span first, so that a failing meter never
    leaves it open, then each histogram on its own."""
    record = fact.record
    assert record is not None
    span = fact.span
    if span is not None:
        if fact.reason is ReleaseReason.GC and fact.origin is not None:
            _locate_gc(span, fact.origin)
        SpanEmitter.end_lease(span, fact.reason, fact.phase, fact.outcome, fact.hold_time)
    meters = state.meters
    attributes = record.host.attributes
    if fact.reason is ReleaseReason.GC and fact.origin is not None:
        filename, lineno, function = fact.origin
        warn_once(
            f"{filename}:{lineno}",
            "aiohttp-pool-otel: the response of the request made at %s:%s (in %s) was "
            "garbage-collected without being read, released or closed; it held its "
            "connection for %.3fs. Use 'async with session.get(...)' or resp.release().",
            filename,
            lineno,
            function,
            fact.hold_time or 0.0,
        )
    if fact.outcome is ReleaseOutcome.CLOSED:
        try:
            meters.connection_duration.record(fact.at - record.created_at, attributes, NO_EXEMPLAR)
        except Exception:
            report_internal_error("connection_duration")
    if fact.hold_time is not None and state.options.record_hold_time:
        try:
            meters.use_time.record(fact.hold_time, attributes, NO_EXEMPLAR)
        except Exception:
            report_internal_error("use_time")


def _locate_gc(span: Span, origin: tuple[str, int, str]) -> None:
    if span.is_recording():
        filename, lineno, function = origin
        span.set_attributes(
            {sc.CODE_FILEPATH: filename, sc.CODE_LINENO: lineno, sc.CODE_FUNCTION: function}
        )
