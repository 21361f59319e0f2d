"""Finished spans, counted and grouped: a ledger that proves every started span ended
exactly once, and spans by name."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Optional

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor


def by_name(spans: Iterable[ReadableSpan]) -> dict[str, list[ReadableSpan]]:
    """Span name -> the spans of that name, in the order given."""
    out: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        out.setdefault(span.name, []).append(span)
    return out


class SpanLedger(SpanProcessor):
    """Counts ``on_start`` and ``on_end`` per span (thread-safe), to prove every span
    that was started ended exactly once."""

    def __init__(self, on_start_delay: float = 0.0) -> None:
        self._lock = threading.Lock()
        self.started: dict[int, str] = {}
        self.ends: dict[int, int] = {}
        self.finished: dict[int, ReadableSpan] = {}
        self._delay = on_start_delay

    def on_start(self, span: Span, parent_context: Optional[Context] = None) -> None:
        if self._delay:
            # A slow processor (an exporter doing work on start): blocks the loop a bit.
            threading.Event().wait(self._delay)
        with self._lock:
            self.started[span.context.span_id] = span.name

    def on_end(self, span: ReadableSpan) -> None:
        assert span.context is not None
        with self._lock:
            sid = span.context.span_id
            self.ends[sid] = self.ends.get(sid, 0) + 1
            self.finished[sid] = span

    def unended(self) -> list[str]:
        """Names of the spans started and never ended."""
        with self._lock:
            return sorted(n for sid, n in self.started.items() if sid not in self.ends)

    def ended_twice(self) -> list[str]:
        with self._lock:
            return sorted(self.started.get(s, "?") for s, n in self.ends.items() if n > 1)

    def spans(self, name: str) -> list[ReadableSpan]:
        with self._lock:
            return [s for s in self.finished.values() if s.name == name]

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
