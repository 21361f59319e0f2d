"""Argument checks shared by the public constructors: fail early, name the bad value."""

from __future__ import annotations

from typing import Any


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
