"""``create_pool_trace_config()``: the detail only aiohttp's public trace signals carry.

The connector sees acquisitions and releases but not name resolution. This trace
config adds it: ``aiohttp.dns.resolve`` spans under ``aiohttp.connection.create``,
whether the DNS cache answered, and the ``dns.lookup.duration`` histogram. Its
receivers run only when a connection is dialled (and when a request fails), never
on the reuse path; still, any TraceConfig costs aiohttp some work on every request.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any, Optional

import aiohttp
from opentelemetry import trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider

from . import semconv as sc
from ._pool import NO_EXEMPLAR, report_internal_error
from ._telemetry import SCOPE, PoolMeters, meters_for
from ._validation import check_providers
from ._version import __version__


class _RequestContext(SimpleNamespace):
    """Per-request state shared by the callbacks of one request."""

    dns_span: Optional[Span] = None
    dns_started: float = 0.0


class _Callbacks:
    """The trace-config receivers; each swallows its own errors (aiohttp would not)."""

    def __init__(self, tracer: trace.Tracer, meters: PoolMeters) -> None:
        self._tracer = tracer
        self._meters = meters

    async def on_request_exception(
        self, _: aiohttp.ClientSession, ctx: SimpleNamespace, params: Any
    ) -> None:
        # aiohttp sends no dns_resolvehost_end when resolution raised or was cancelled.
        if ctx.dns_span is not None or ctx.dns_started:
            exc = getattr(params, "exception", None)
            self._end_dns(ctx, exc or Exception("DNS resolution did not finish"))

    async def on_dns_cache_hit(self, _: aiohttp.ClientSession, ctx: Any, params: Any) -> None:
        self._mark_cache(True)

    async def on_dns_cache_miss(self, _: aiohttp.ClientSession, ctx: Any, params: Any) -> None:
        self._mark_cache(False)

    @staticmethod
    def _mark_cache(hit: bool) -> None:
        try:
            span = trace.get_current_span()
            if span.is_recording():
                span.set_attribute(sc.DNS_CACHE_HIT, hit)
        except Exception:
            report_internal_error("dns_cache")

    async def on_dns_resolvehost_start(
        self, _: aiohttp.ClientSession, ctx: SimpleNamespace, params: Any
    ) -> None:
        try:
            ctx.dns_started = time.monotonic()
            parent = trace.get_current_span().get_span_context()
            if parent.is_valid and not parent.trace_flags.sampled:
                return
            ctx.dns_span = self._tracer.start_span(
                sc.SPAN_DNS,
                kind=SpanKind.CLIENT,
                attributes={sc.SERVER_ADDRESS: str(params.host)},
            )
        except Exception:
            report_internal_error("on_dns_resolvehost_start")

    async def on_dns_resolvehost_end(
        self, _: aiohttp.ClientSession, ctx: SimpleNamespace, params: Any
    ) -> None:
        self._end_dns(ctx, None)

    def _end_dns(self, ctx: SimpleNamespace, exc: Optional[BaseException]) -> None:
        try:
            attributes = {}
            if exc is not None:
                attributes[sc.ERROR_TYPE] = type(exc).__qualname__
            if ctx.dns_started:
                self._meters.dns_duration.record(
                    time.monotonic() - ctx.dns_started, attributes, NO_EXEMPLAR
                )
                ctx.dns_started = 0.0
            span, ctx.dns_span = ctx.dns_span, None
            if span is not None:
                if exc is not None:
                    span.set_attributes(attributes)
                    span.set_status(Status(StatusCode.ERROR, attributes[sc.ERROR_TYPE]))
                span.end()
        except Exception:
            report_internal_error("on_dns_resolvehost_end")


def create_pool_trace_config(
    *,
    tracer_provider: Optional[TracerProvider] = None,
    meter_provider: Optional[MeterProvider] = None,
) -> aiohttp.TraceConfig:
    """A ``TraceConfig`` that completes the instrumented connector's telemetry.

    Pass it in ``ClientSession(trace_configs=[...])`` next to an
    :class:`OpenTelemetryTCPConnector`. Providers default to the global ones.
    """
    check_providers(tracer_provider, meter_provider)
    callbacks = _Callbacks(
        trace.get_tracer(SCOPE, __version__, tracer_provider), meters_for(meter_provider)
    )
    config = aiohttp.TraceConfig(trace_config_ctx_factory=_RequestContext)
    config.on_request_exception.append(callbacks.on_request_exception)
    config.on_dns_cache_hit.append(callbacks.on_dns_cache_hit)
    config.on_dns_cache_miss.append(callbacks.on_dns_cache_miss)
    config.on_dns_resolvehost_start.append(callbacks.on_dns_resolvehost_start)
    config.on_dns_resolvehost_end.append(callbacks.on_dns_resolvehost_end)
    return config
