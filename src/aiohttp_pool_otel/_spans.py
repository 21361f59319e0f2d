"""Span emission: where pool spans go, and what they say when they end.

Pool spans are children of the current span. With no current span they are made
only where ``root_spans`` allows it: by default (``None``) only when no request
instrumentation is active, because where the request instrumentation made no span
on purpose (an excluded URL, a no-op provider) a pool span would be a stray root
trace. Under either OpenTelemetry suppression key no pool span is made at all.
"""

from __future__ import annotations

import sys
from typing import Optional

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from . import semconv as sc
from ._records import Attributes
from .semconv import ReleaseOutcome, ReleasePhase, ReleaseReason

# Both keys live in opentelemetry-api from 1.2x on; older APIs had only the first.
_SUPPRESS_KEYS = tuple(
    key
    for key in (
        getattr(otel_context, "_SUPPRESS_INSTRUMENTATION_KEY", None),
        getattr(otel_context, "_SUPPRESS_HTTP_INSTRUMENTATION_KEY", None),
        "suppress_instrumentation",  # the plain-string key older instrumentations set
    )
    if key is not None
)

_GC_MESSAGE = (
    "response was garbage-collected without being read, released or closed; "
    "use 'async with session.get(...)' or call resp.release()"
)


_OUTCOME_EVENT = {
    ReleaseOutcome.POOLED: sc.EVENT_RELEASED,
    ReleaseOutcome.CLOSED: sc.EVENT_CLOSED,
    ReleaseOutcome.DETACHED: sc.EVENT_DETACHED,
}


def request_instrumentation_active() -> bool:
    """Whether opentelemetry-instrumentation-aiohttp-client instruments sessions now."""
    module = sys.modules.get("opentelemetry.instrumentation.aiohttp_client")
    instrumentor = getattr(module, "AioHttpClientInstrumentor", None)
    try:
        return bool(instrumentor is not None and instrumentor().is_instrumented_by_opentelemetry)
    except Exception:
        return False


def error_type(exc: BaseException) -> str:
    """``error.type`` of an exception: its class, qualified outside the standard library."""
    cls = type(exc)
    module = cls.__module__
    if module in ("builtins", "asyncio.exceptions", "concurrent.futures._base"):
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


class SpanEmitter:
    """Starts and ends the pool's spans for one connector (loop thread only)."""

    def __init__(self, tracer: Tracer, root_spans: Optional[bool]) -> None:
        self.tracer = tracer
        # An explicit no-op provider: no span is built and no parent is looked up.
        self.tracing = not isinstance(tracer, trace.NoOpTracer)
        self._root_spans = root_spans

    def parent(self) -> Optional[otel_context.Context]:
        """The context pool spans of the current request start in; None: no span."""
        if not self.tracing:
            return None
        ctx = otel_context.get_current()
        for key in _SUPPRESS_KEYS:
            if ctx.get(key):
                return None
        span_context = trace.get_current_span(ctx).get_span_context()
        if span_context.is_valid:
            # Follow the parent's sampling decision: an unsampled request builds no spans.
            return ctx if span_context.trace_flags.sampled else None
        root = self._root_spans
        if root is None:
            root = not request_instrumentation_active()
        return ctx if root else None

    def start(
        self,
        name: str,
        parent: Optional[otel_context.Context],
        attributes: Attributes,
        method: Optional[str],
        kind: SpanKind = SpanKind.INTERNAL,
    ) -> Optional[Span]:
        """Start span ``name`` under ``parent`` (None: no span)."""
        if parent is None:
            return None
        if method is not None:
            attributes = {**attributes, sc.HTTP_REQUEST_METHOD: method}
        return self.tracer.start_span(name, context=parent, kind=kind, attributes=attributes)

    @staticmethod
    def fail(span: Optional[Span], exc: BaseException, kind: Optional[str] = None) -> None:
        """End ``span`` with ERROR status and ``error.type``."""
        if span is None:
            return
        kind = kind or error_type(exc)
        try:
            span.set_attribute(sc.ERROR_TYPE, kind)
            span.set_status(Status(StatusCode.ERROR, kind))
        finally:
            span.end()

    @staticmethod
    def end_lease(
        span: Span,
        reason: ReleaseReason,
        phase: Optional[ReleasePhase],
        outcome: ReleaseOutcome,
        hold_time: Optional[float],
    ) -> None:
        """End a lease span with its release: attributes, events and status."""
        try:
            if not span.is_recording():
                return
            attributes: Attributes = {
                sc.RELEASE_REASON: reason.value,
                sc.RELEASE_OUTCOME: outcome.value,
            }
            if hold_time is not None:
                attributes[sc.CONNECTION_HOLD_TIME] = hold_time
            if phase is not None:
                attributes[sc.RELEASE_PHASE] = phase.value
                span.add_event(sc.EVENT_EOF, {sc.RELEASE_PHASE: phase.value})
            span.set_attributes(attributes)
            span.add_event(_OUTCOME_EVENT[outcome], {sc.RELEASE_REASON: reason.value})
            if reason is ReleaseReason.GC:
                span.set_status(Status(StatusCode.ERROR, _GC_MESSAGE))
            elif reason is ReleaseReason.ERROR:
                span.set_status(Status(StatusCode.ERROR, "connection closed before a response"))
        finally:
            span.end()
