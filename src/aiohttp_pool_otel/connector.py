"""The instrumented connectors: drop-in ``TCPConnector`` / ``UnixConnector`` subclasses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import aiohttp
from opentelemetry import trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from ._aiohttp_adapter import InstrumentedConnectorMixin, connector_mixin, identify
from ._pool import PoolInstrumentation
from ._telemetry import SCOPE, meters_for
from ._validation import check_providers
from ._version import __version__
from .statistics import PoolStatistics


def _check_options(
    tracer_provider: Any,
    meter_provider: Any,
    pool_name: Any,
    max_hosts: Any,
    trace_all_leases: Any,
    record_hold_time: Any,
    watchdog_threshold: Any,
    capture_request_location: Any,
    connector_kwargs: dict[str, Any],
) -> None:
    check_providers(tracer_provider, meter_provider)
    if pool_name is not None and (not isinstance(pool_name, str) or not pool_name):
        raise ValueError(f"pool_name must be a non-empty string or None, got {pool_name!r}")
    if isinstance(max_hosts, bool) or not isinstance(max_hosts, int) or max_hosts < 1:
        raise ValueError(f"max_hosts must be an integer >= 1, got {max_hosts!r}")
    if watchdog_threshold is not None and (
        isinstance(watchdog_threshold, bool)
        or not isinstance(watchdog_threshold, (int, float))
        or not watchdog_threshold > 0
    ):
        raise ValueError(
            f"watchdog_threshold must be a number of seconds > 0 or None, "
            f"got {watchdog_threshold!r}"
        )
    flags = {
        "trace_all_leases": trace_all_leases,
        "record_hold_time": record_hold_time,
        "capture_request_location": capture_request_location,
    }
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False, got {value!r}")
    for name in ("limit", "limit_per_host"):
        if name in connector_kwargs:
            value = connector_kwargs[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(
                    f"{name} must be an integer >= 0 (0 means no limit), got {value!r}"
                )


if TYPE_CHECKING:
    _Mixin = InstrumentedConnectorMixin
else:
    # On an aiohttp whose internals moved: a mixin without overrides (one warning).
    _Mixin = connector_mixin()


class _OpenTelemetryConnector(_Mixin):
    """Shared constructor, ``statistics()`` and ``repr`` of the instrumented connectors."""

    def __init__(
        self,
        *,
        tracer_provider: Optional[TracerProvider] = None,
        meter_provider: Optional[MeterProvider] = None,
        pool_name: Optional[str] = None,
        max_hosts: int = 1000,
        trace_all_leases: bool = False,
        record_hold_time: bool = False,
        watchdog_threshold: Optional[float] = None,
        capture_request_location: bool = False,
        **connector_kwargs: Any,
    ) -> None:
        _check_options(
            tracer_provider,
            meter_provider,
            pool_name,
            max_hosts,
            trace_all_leases,
            record_hold_time,
            watchdog_threshold,
            capture_request_location,
            connector_kwargs,
        )
        super().__init__(**connector_kwargs)
        meters = meters_for(meter_provider)
        pool = PoolInstrumentation(
            tracer=trace.get_tracer(SCOPE, __version__, tracer_provider),
            meters=meters,
            pool_name=pool_name,
            max_hosts=max_hosts,
            trace_all_leases=trace_all_leases,
            record_hold_time=record_hold_time,
            watchdog_threshold=(
                float(watchdog_threshold) if watchdog_threshold is not None else None
            ),
            capture_request_location=capture_request_location,
            read_state=self._pool_otel_read_state,
            read_held=self._pool_otel_held,
            identify=identify,
        )
        self._pool_otel_install(pool)
        meters.register(pool)

    def statistics(self) -> PoolStatistics:
        """The pool right now: totals and one :class:`HostPoolStatistics` per key."""
        return self._pool_otel.statistics()

    def __repr__(self) -> str:
        try:
            s = self.statistics()
            state = (
                f"active {s.active}, idle {s.idle}, connecting {s.connecting}, "
                f"waiting {s.waiting}, limit {s.limit}/{s.limit_per_host}"
            )
        except Exception:
            state = "state unavailable"
        closed = ", closed" if self.closed else ""
        return f"<{type(self).__name__} [{state}{closed}]>"


class OpenTelemetryTCPConnector(_OpenTelemetryConnector, aiohttp.TCPConnector):
    """An ``aiohttp.TCPConnector`` whose pool is visible in OpenTelemetry.

    Takes every ``TCPConnector`` keyword argument, plus:

    * ``tracer_provider`` / ``meter_provider``: default to the global providers.
    * ``pool_name``: value of the ``aiohttp.pool.name`` attribute, to tell pools apart.
    * ``max_hosts``: at most this many host keys get their own metric series; the rest
      are folded into ``server.address="_OTHER"``.
    * ``trace_all_leases``: a lease span for every acquisition, not only for those
      that dialled a new connection (costs one span per request).
    * ``record_hold_time``: record ``aiohttp.client.connection.use_time`` on every
      release (costs one histogram record per request).
    * ``watchdog_threshold``: seconds after which a held connection counts as held too
      long (``aiohttp.client.connection.held_too_long`` gauge, ``held_too_long`` event
      on its lease span). Off by default.
    * ``capture_request_location``: remember which line of your code made each request,
      so a response garbage-collected unclosed is logged with it (a few µs per request).

    The last four need every acquisition seen, so they hook ``connect()``; without
    them the plugin's only work on a reused connection is at its release.
    """


class OpenTelemetryUnixConnector(_OpenTelemetryConnector, aiohttp.UnixConnector):
    """An ``aiohttp.UnixConnector`` whose pool is visible in OpenTelemetry.

    ``path`` is required as for ``UnixConnector``; the other options are those of
    :class:`OpenTelemetryTCPConnector`.
    """
