"""``configure_otlp()``: the common OTLP setup in one call.

The SDK already reads ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``_PROTOCOL`` / ``_HEADERS`` / ``_TIMEOUT`` and their
per-signal variants; this helper only passes what you give it explicitly and fills
the gaps the SDK leaves: the protocol an endpoint speaks (by the OTLP port convention),
the full signal URLs the HTTP exporters want, a count of what the endpoint accepted,
and a shutdown bounded in time.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource

PROTOCOLS = ("grpc", "http/protobuf")

#: Seconds :meth:`OtlpProviders.shutdown` waits for the last exports by default.
DEFAULT_SHUTDOWN_TIMEOUT = 5.0

# The OTLP convention (the Collector's defaults): gRPC on 4317, HTTP/protobuf on 4318.
_PORT_PROTOCOL = {4317: "grpc", 4318: "http/protobuf"}
_DEFAULT_ENDPOINT = {"grpc": "http://localhost:4317", "http/protobuf": "http://localhost:4318"}

_log = logging.getLogger(__name__)


class OtlpDelivery:
    """What the exporters reported, updated as each export finishes (thread-safe).

    ``*_delivered`` counts items in exports the endpoint accepted (the exporter returned
    SUCCESS); ``*_failed`` counts items in exports that failed or were dropped because a
    bounded shutdown ran out of time. Items still queued when the process ends are in
    neither.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.spans_delivered = 0
        self.spans_failed = 0
        self.metric_points_delivered = 0
        self.metric_points_failed = 0
        #: True once a shutdown ran out of time: later exports fail without trying.
        self.gave_up = False
        if hasattr(os, "register_at_fork"):
            # An exporter thread of the parent may hold the lock at a fork; in the child
            # that thread is gone and the lock would stay taken.
            reset = weakref.WeakMethod(self._reset_lock)

            def after_fork_in_child() -> None:
                method = reset()
                if method is not None:
                    method()

            os.register_at_fork(after_in_child=after_fork_in_child)

    def _reset_lock(self) -> None:
        self._lock = threading.Lock()

    def add_spans(self, count: int, *, ok: bool) -> None:
        """Record one span export of ``count`` spans."""
        with self._lock:
            if ok:
                self.spans_delivered += count
            else:
                self.spans_failed += count

    def add_metric_points(self, count: int, *, ok: bool) -> None:
        """Record one metric export of ``count`` data points."""
        with self._lock:
            if ok:
                self.metric_points_delivered += count
            else:
                self.metric_points_failed += count

    @property
    def delivered(self) -> int:
        """Spans plus metric data points the endpoint accepted."""
        return self.spans_delivered + self.metric_points_delivered

    def __repr__(self) -> str:
        return (
            f"OtlpDelivery(spans_delivered={self.spans_delivered}, "
            f"spans_failed={self.spans_failed}, "
            f"metric_points_delivered={self.metric_points_delivered}, "
            f"metric_points_failed={self.metric_points_failed})"
        )


@dataclass(frozen=True)
class OtlpProviders:
    """The providers :func:`configure_otlp` built; call :meth:`shutdown` at exit.

    ``endpoint`` and ``protocol`` say where the exporters send (``endpoint`` is the
    base URL, from the argument, ``OTEL_EXPORTER_OTLP_ENDPOINT`` or the SDK default);
    ``delivery`` counts what the endpoint accepted.
    """

    tracer_provider: Any
    meter_provider: Any
    endpoint: str = ""
    protocol: str = "grpc"
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
    delivery: OtlpDelivery = field(default_factory=OtlpDelivery)
    _done: threading.Event = field(default_factory=threading.Event, repr=False)
    _called: threading.Event = field(default_factory=threading.Event, repr=False)

    def shutdown(self, timeout: Optional[float] = None) -> bool:
        """Export what is left and stop both providers, within ``timeout`` seconds
        (default: ``shutdown_timeout``, 5 s unless configured).

        Returns True when everything finished in time. Past the deadline it returns
        False at once: the exports still running are abandoned (they end in a
        background thread or with the process) and every later export fails without
        trying, so a Collector that is down or does not answer cannot hold up an exit.
        """
        budget = self.shutdown_timeout if timeout is None else timeout
        if budget <= 0:
            raise ValueError(f"timeout must be > 0, got {budget!r}")
        if self._done.is_set():
            return True
        self._called.set()

        def stop() -> None:
            try:
                # Each provider ends with one last export (spans still queued, a final
                # metric collection); the SDK's own waits are up to 30 s each.
                self.tracer_provider.shutdown()
                self.meter_provider.shutdown(timeout_millis=budget * 1000)
            except Exception:  # never let a telemetry failure escape into the caller
                _log.exception("shutting down the OpenTelemetry providers failed")
            finally:
                self._done.set()

        # A daemon thread: the process may exit while an abandoned export still runs.
        threading.Thread(target=stop, name="aiohttp-pool-otel-shutdown", daemon=True).start()
        if self._done.wait(budget):
            return True
        self.delivery.gave_up = True
        _log.warning(
            "OTLP shutdown gave up after %.1f s: %s did not take the last exports",
            budget,
            self.endpoint,
        )
        return False

    def _shutdown_at_exit(self) -> None:
        # Only for providers nobody shut down: a shutdown that gave up stays given up.
        if not self._called.is_set():
            self.shutdown()


def _signal_url(base: str, signal: str) -> str:
    return base.rstrip("/") + "/v1/" + signal


def _http_base(endpoint: str) -> str:
    """``http://h:4318/v1/traces`` -> ``http://h:4318``: a signal URL copied from a
    Collector's docs names the base the HTTP exporters add ``/v1/<signal>`` to."""
    parts = urlsplit(endpoint)
    path = parts.path
    cut = path.find("/v1/")
    if cut == -1 and path.rstrip("/").endswith("/v1"):
        cut = path.rstrip("/").rfind("/v1")
    if cut != -1:
        path = path[:cut]
    return parts._replace(path=path, query="", fragment="").geturl().rstrip("/")


def _has_v1_path(endpoint: str) -> bool:
    path = urlsplit(endpoint).path.rstrip("/")
    return "/v1/" in path + "/"


def resolve_protocol(endpoint: Optional[str], protocol: Optional[str]) -> str:
    """The OTLP protocol to use for ``endpoint``: ``protocol`` if given, else
    ``OTEL_EXPORTER_OTLP_PROTOCOL``, else the OTLP convention for the endpoint
    (``endpoint``, else ``OTEL_EXPORTER_OTLP_ENDPOINT``): port 4318 or a ``/v1/...``
    path is ``http/protobuf``, port 4317 is ``grpc``; no endpoint at all is ``grpc``
    (the SDK's ``localhost:4317``). Raises ValueError, in one line naming the fix,
    when it cannot tell or the two contradict (a ``/v1/...`` path over gRPC).
    """
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        raise ValueError(
            f"endpoint must be a URL starting with http:// or https://, got {endpoint!r}"
        )
    env_protocol = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or None
    chosen = protocol or env_protocol
    if chosen is not None and chosen not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {chosen!r}")
    where = endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None
    if chosen == "grpc" and where is not None and _has_v1_path(where):
        raise ValueError(
            f"{where!r} has an OTLP/HTTP path (/v1/...), which gRPC does not use: "
            "use protocol 'http/protobuf', or drop the path for gRPC"
        )
    if chosen is not None:
        return chosen
    if where is None:
        return "grpc"
    if _has_v1_path(where):
        return "http/protobuf"
    try:
        port = urlsplit(where).port
    except ValueError:
        port = None
    if port in _PORT_PROTOCOL:
        return _PORT_PROTOCOL[port]
    raise ValueError(
        f"cannot tell which OTLP protocol {where!r} speaks: port 4317 is gRPC, port 4318 "
        "or a /v1/... path is HTTP; for another port name the protocol: grpc or http/protobuf"
    )


def configure_otlp(
    *,
    service_name: Optional[str] = None,
    endpoint: Optional[str] = None,
    protocol: Optional[str] = None,
    export_interval_millis: Optional[float] = None,
    timeout: Optional[float] = None,
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
    extra_metric_readers: tuple[Any, ...] = (),
    set_global: bool = True,
    resource: Optional[Resource] = None,
) -> OtlpProviders:
    """Build a TracerProvider and a MeterProvider that export over OTLP.

    ``endpoint`` is the collector's URL (``http://127.0.0.1:4317`` for gRPC,
    ``http://127.0.0.1:4318`` or ``.../v1/traces`` for HTTP; default: the
    ``OTEL_EXPORTER_OTLP_*`` variables, else the SDK's localhost default). ``protocol``
    is ``"grpc"`` or ``"http/protobuf"``; by default ``OTEL_EXPORTER_OTLP_PROTOCOL``,
    else told by the endpoint (see :func:`resolve_protocol`; an endpoint on another
    port needs it said). ``timeout`` bounds each export request in seconds (the SDK
    default is 10). ``shutdown_timeout`` bounds :meth:`OtlpProviders.shutdown` (default
    5 s); it also runs at interpreter exit if you did not call it.
    ``extra_metric_readers`` are added to the MeterProvider beside the OTLP reader (e.g.
    a Prometheus reader). ``service_name`` defaults to ``OTEL_SERVICE_NAME``. With
    ``set_global`` the providers become the global ones, which the instrumented
    connector uses by default. What the endpoint accepted is counted in
    ``OtlpProviders.delivery``.

    ``resource`` replaces the SDK's ``Resource.create()`` (which reads
    ``OTEL_RESOURCE_ATTRIBUTES`` and ``OTEL_SERVICE_NAME``); ``service_name``, if given,
    is set on it. Every process reports under its own ``service.instance.id``: one the
    resource names is kept, else the process gets a random UUID (as SDK 1.43+ does), and
    a process forked after this call (gunicorn ``--preload``, multiprocessing's
    ``fork``) gets a new one, whatever the parent's was (as SDK 1.44+ does).
    """
    chosen = resolve_protocol(endpoint, protocol)
    if export_interval_millis is not None and not export_interval_millis > 0:
        raise ValueError(
            f"export_interval_millis must be > 0, got {export_interval_millis!r}"
        )
    if not shutdown_timeout > 0:
        raise ValueError(f"shutdown_timeout must be > 0, got {shutdown_timeout!r}")
    try:
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        from ._instance_id import process_resource, renew_in_forked_children
        from ._otlp_exporters import CountingMetricExporter, CountingSpanExporter
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(
            "configure_otlp() needs the OpenTelemetry SDK and OTLP exporters: "
            "pip install 'aiohttp-pool-otel[otlp]'"
        ) from exc

    resource = process_resource(resource, service_name)
    span_kwargs: dict[str, Any] = {}
    metric_kwargs: dict[str, Any] = {}
    if timeout is not None:
        span_kwargs["timeout"] = metric_kwargs["timeout"] = timeout
    env_endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None
    span_exporter: Any
    metric_exporter: Any
    if chosen == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter as GrpcMetricExporter,
        )
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcSpanExporter,
        )

        if endpoint is not None:
            # The scheme decides TLS: http:// is plaintext, https:// is TLS.
            span_kwargs["endpoint"] = metric_kwargs["endpoint"] = endpoint
            span_kwargs["insecure"] = metric_kwargs["insecure"] = endpoint.startswith("http://")
        span_exporter = GrpcSpanExporter(**span_kwargs)
        metric_exporter = GrpcMetricExporter(**metric_kwargs)
        described = endpoint or env_endpoint or _DEFAULT_ENDPOINT[chosen]
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
            OTLPMetricExporter as HttpMetricExporter,
        )
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpSpanExporter,
        )

        if endpoint is not None:
            base = _http_base(endpoint)
            span_kwargs["endpoint"] = _signal_url(base, "traces")
            metric_kwargs["endpoint"] = _signal_url(base, "metrics")
        span_exporter = HttpSpanExporter(**span_kwargs)
        metric_exporter = HttpMetricExporter(**metric_kwargs)
        described = _http_base(endpoint or env_endpoint or _DEFAULT_ENDPOINT[chosen])

    delivery = OtlpDelivery()
    # No SDK exit hooks: theirs wait up to 30 s per provider; ours is bounded.
    tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(CountingSpanExporter(span_exporter, delivery))
    )
    reader_kwargs: dict[str, Any] = {}
    if export_interval_millis is not None:
        reader_kwargs["export_interval_millis"] = export_interval_millis
    reader = PeriodicExportingMetricReader(
        CountingMetricExporter(metric_exporter, delivery), **reader_kwargs
    )
    meter_provider = MeterProvider(
        resource=resource,
        metric_readers=[reader, *extra_metric_readers],
        shutdown_on_exit=False,
    )
    renew_in_forked_children(resource, tracer_provider)
    if set_global:
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
    providers = OtlpProviders(
        tracer_provider,
        meter_provider,
        endpoint=described,
        protocol=chosen,
        shutdown_timeout=shutdown_timeout,
        delivery=delivery,
    )
    atexit.register(providers._shutdown_at_exit)
    return providers
