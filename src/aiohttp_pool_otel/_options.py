"""The plugin's options: one frozen object, validated in one place.

Every public entry point (the connectors, the instrumentor, the trace config)
builds a :class:`PoolOptions` through :func:`pool_options`, so a bad value is
rejected with the same message, naming the value, wherever it was passed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

# Chosen so that every instrument stays under the SDK's default cardinality limit
# (2 000 points): the widest, releases by reason and outcome, has at most 11 pairs
# per host, and 11 * (100 + 1) = 1 111.
DEFAULT_MAX_HOSTS = 100
# Above this the SDK's default limit is certain to fold series; users who need more
# raise the limit with a View and may go this far.
MAX_HOSTS_CEILING = 100_000


@dataclass(frozen=True)
class PoolOptions:
    """What the plugin does for one connector (see docs/configuration.md)."""

    tracer_provider: Any = None
    meter_provider: Any = None
    pool_name: Optional[str] = None
    max_hosts: int = DEFAULT_MAX_HOSTS
    trace_all_leases: bool = False
    record_hold_time: bool = False
    watchdog_threshold: Optional[float] = None
    capture_request_location: bool = False
    root_spans: Optional[bool] = None

    @property
    def per_lease_work(self) -> bool:
        """Whether every acquisition must be seen (``connect()`` is then hooked)."""
        return per_lease_work(vars(self))


def per_lease_work(options: Mapping[str, Any]) -> bool:
    """Whether ``options`` (a connector's keyword arguments, or a :class:`PoolOptions`'
    fields) ask for work on every lease, which needs every acquisition seen."""
    return bool(
        options.get("trace_all_leases")
        or options.get("record_hold_time")
        or options.get("watchdog_threshold") is not None
        or options.get("capture_request_location")
    )


def check_providers(tracer_provider: Any, meter_provider: Any) -> None:
    """Reject anything that is not ``None`` or an OpenTelemetry provider."""
    if tracer_provider is not None and not callable(getattr(tracer_provider, "get_tracer", None)):
        raise TypeError(
            f"tracer_provider must be an opentelemetry TracerProvider or None, "
            f"got {tracer_provider!r}"
        )
    if meter_provider is not None and not callable(getattr(meter_provider, "get_meter", None)):
        raise TypeError(
            f"meter_provider must be an opentelemetry MeterProvider or None, "
            f"got {meter_provider!r}"
        )


def _check_flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")


def pool_options(**values: Any) -> PoolOptions:
    """Validate ``values`` and return them as :class:`PoolOptions`.

    Unknown names raise ``TypeError`` naming them; bad values raise ``ValueError`` or
    ``TypeError`` naming the option and the value.
    """
    known = PoolOptions.__dataclass_fields__
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise TypeError(f"unknown aiohttp-pool-otel option(s): {', '.join(unknown)}")
    options = PoolOptions(**values)
    check_providers(options.tracer_provider, options.meter_provider)
    name = options.pool_name
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(f"pool_name must be a non-empty string or None, got {name!r}")
    max_hosts = options.max_hosts
    if (
        isinstance(max_hosts, bool)
        or not isinstance(max_hosts, int)
        or not 1 <= max_hosts <= MAX_HOSTS_CEILING
    ):
        raise ValueError(
            f"max_hosts must be an integer from 1 to {MAX_HOSTS_CEILING}, got {max_hosts!r}"
        )
    threshold = options.watchdog_threshold
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not threshold > 0
    ):
        raise ValueError(
            f"watchdog_threshold must be a number of seconds > 0 or None, got {threshold!r}"
        )
    for flag in ("trace_all_leases", "record_hold_time", "capture_request_location"):
        _check_flag(flag, getattr(options, flag))
    if options.root_spans is not None:
        _check_flag("root_spans", options.root_spans)
    return options


def check_limits(connector_kwargs: dict[str, Any]) -> None:
    """aiohttp accepts a negative limit silently; name it instead."""
    for name in ("limit", "limit_per_host"):
        if name in connector_kwargs:
            value = connector_kwargs[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(
                    f"{name} must be an integer >= 0 (0 means no limit), got {value!r}"
                )
