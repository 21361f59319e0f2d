"""``create_pool_trace_config()``: the pool seen through aiohttp's public signals only.

For users who will not run code that touches aiohttp's private internals: with a
plain aiohttp connector it gives the wait, create and DNS spans, ``wait_time``,
``create_time`` and ``dns.lookup.duration``, and the ``created``, ``reused``,
``queued`` and ``timeouts`` counters. Not what no public signal carries: releases
and their reasons, pool state gauges, connection lifetimes.

Used next to an instrumented connector (or the instrumentor) it stays silent: the
connector reports all of it, and nothing is emitted twice. Any ``TraceConfig``
costs aiohttp work on every request (see the README's Performance section).
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any, Optional

import aiohttp
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import Span, SpanKind, TracerProvider

from . import semconv as sc
from ._aiohttp.install import covered
from ._errors import report_internal_error
from ._hosts import HostBook
from ._meters import NO_EXEMPLAR, PoolMeters, meters_for
from ._options import PoolOptions, pool_options
from ._records import Attributes, HostId, HostRecord
from ._retired import RetiredBook
from ._snapshot import HostSnapshot, PoolSnapshot
from ._spans import SpanEmitter, error_type

_TIMEOUTS = (asyncio.TimeoutError, aiohttp.ServerTimeoutError)


class _RequestContext(SimpleNamespace):
    """One request's state across its signals."""

    host: Optional[HostRecord] = None
    method: Optional[str] = None
    parent: Any = None
    wait_span: Optional[Span] = None
    wait_started: float = 0.0
    create_span: Optional[Span] = None
    create_started: float = 0.0
    dns_span: Optional[Span] = None
    dns_started: float = 0.0


class _Signals:
    """The receivers, and the counters they keep; each swallows its own errors."""

    def __init__(self, spans: SpanEmitter, meters: PoolMeters, options: PoolOptions) -> None:
        self._spans = spans
        self._meters = meters
        name = options.pool_name
        self._pool = {sc.POOL_NAME: name} if name else {}
        self._hosts = HostBook(options.max_hosts, dict(self._pool), lambda identity: identity)
        meters.register(self, RetiredBook(self._hosts.records, dict(self._pool), options.max_hosts))

    def snapshot_for_collection(self) -> PoolSnapshot:
        """Counters only: a trace config does not see the pool's state."""
        hosts = [HostSnapshot(r, 0, 0, 0, None, 0) for r in self._hosts.records()]
        return PoolSnapshot(hosts, [], 0, 0, dict(self._pool), False, state=False)

    def _host(self, url: Any) -> HostRecord:
        identity: HostId = (str(url.host), url.port, url.scheme)
        return self._hosts.for_identity(identity)

    async def on_request_start(self, session: Any, ctx: Any, params: Any) -> None:
        if not covered(session.connector):
            try:
                ctx.host = self._host(params.url)
                ctx.method = params.method
                ctx.parent = self._spans.parent()
            except Exception:
                report_internal_error("on_request_start")

    async def on_connection_queued_start(self, session: Any, ctx: Any, params: Any) -> None:
        host = ctx.host
        if host is not None:
            ctx.wait_started = time.monotonic()
            host.queued["limit"] = host.queued.get("limit", 0) + 1  # public signals: unknown which
            ctx.wait_span = self._spans.start(sc.SPAN_WAIT, ctx.parent, host.attributes, ctx.method)

    async def on_connection_queued_end(self, session: Any, ctx: Any, params: Any) -> None:
        if ctx.host is not None and ctx.wait_started:
            self._finish(ctx, "wait", None)

    async def on_connection_create_start(self, session: Any, ctx: Any, params: Any) -> None:
        host = ctx.host
        if host is not None:
            ctx.create_started = time.monotonic()
            host.connecting += 1
            ctx.create_span = self._spans.start(
                sc.SPAN_CREATE, ctx.parent, host.attributes, ctx.method
            )

    async def on_connection_create_end(self, session: Any, ctx: Any, params: Any) -> None:
        if ctx.host is not None and ctx.create_started:
            ctx.host.created += 1
            self._finish(ctx, "create", None)

    async def on_connection_reuseconn(self, session: Any, ctx: Any, params: Any) -> None:
        if ctx.host is not None:
            ctx.host.reused += 1

    async def on_dns_resolvehost_start(self, session: Any, ctx: Any, params: Any) -> None:
        if ctx.host is not None:
            ctx.dns_started = time.monotonic()
            attributes: Attributes = {sc.SERVER_ADDRESS: str(params.host)}
            parent = self._spans.parent()
            ctx.dns_span = self._spans.start(sc.SPAN_DNS, parent, attributes, None, SpanKind.CLIENT)

    async def on_dns_resolvehost_end(self, session: Any, ctx: Any, params: Any) -> None:
        if ctx.host is not None and ctx.dns_started:
            self._finish(ctx, "dns", None)

    async def on_request_exception(self, session: Any, ctx: Any, params: Any) -> None:
        if ctx.host is None:
            return
        exc = getattr(params, "exception", None) or Exception("request failed")
        for stage in ("wait", "create", "dns"):
            if getattr(ctx, f"{stage}_started"):
                self._finish(ctx, stage, exc)

    def _finish(self, ctx: Any, stage: str, exc: Optional[BaseException]) -> None:
        """End one stage (wait, create, dns) of a request: its span, then its histogram."""
        try:
            started = getattr(ctx, f"{stage}_started")
            setattr(ctx, f"{stage}_started", 0.0)
            span = getattr(ctx, f"{stage}_span")
            setattr(ctx, f"{stage}_span", None)
            host: HostRecord = ctx.host
            timeout = isinstance(exc, _TIMEOUTS)
            if stage == "create":
                host.connecting -= 1
            if stage == "wait" and timeout:
                host.timeouts += 1
            if exc is None:
                if span is not None:
                    span.end()
            else:
                named = {"wait": "pool_wait_timeout", "create": "connect_timeout"}
                self._spans.fail(span, exc, named.get(stage) if timeout else None)
            duration = time.monotonic() - started
            if stage == "dns":
                attrs = {} if exc is None else {sc.ERROR_TYPE: error_type(exc)}
                self._meters.dns_duration.record(duration, attrs, NO_EXEMPLAR)
            elif exc is None:
                histogram = self._meters.wait_time if stage == "wait" else self._meters.create_time
                histogram.record(duration, host.attributes, NO_EXEMPLAR)
        except Exception:
            report_internal_error(f"trace_config_{stage}")


_SIGNALS = (
    "on_request_start",
    "on_request_exception",
    "on_connection_queued_start",
    "on_connection_queued_end",
    "on_connection_create_start",
    "on_connection_create_end",
    "on_connection_reuseconn",
    "on_dns_resolvehost_start",
    "on_dns_resolvehost_end",
)


def create_pool_trace_config(
    *,
    tracer_provider: Optional[TracerProvider] = None,
    meter_provider: Optional[MeterProvider] = None,
    pool_name: Optional[str] = None,
    max_hosts: Optional[int] = None,
    root_spans: Optional[bool] = None,
) -> aiohttp.TraceConfig:
    """A ``TraceConfig`` with the pool's public-signal telemetry (no release reasons).

    Pass it in ``ClientSession(trace_configs=[...])`` with any connector. Providers
    default to the global ones.
    """
    from opentelemetry import trace

    from ._meters import SCOPE
    from ._version import __version__

    values: dict[str, Any] = {"root_spans": root_spans, "pool_name": pool_name}
    if max_hosts is not None:
        values["max_hosts"] = max_hosts
    options = pool_options(tracer_provider=tracer_provider, meter_provider=meter_provider, **values)
    spans = SpanEmitter(trace.get_tracer(SCOPE, __version__, tracer_provider), root_spans)
    signals = _Signals(spans, meters_for(meter_provider), options)
    config = aiohttp.TraceConfig(trace_config_ctx_factory=_RequestContext)
    config._pool_otel_signals = signals  # type: ignore[attr-defined]  # keeps them alive
    for name in _SIGNALS:
        getattr(config, name).append(getattr(signals, name))
    return config
