"""Zero-code setup: ``opentelemetry-instrument python app.py`` instruments every pool.

Needs ``opentelemetry-instrumentation`` (and ``wrapt``, which it brings); importing the
rest of the package does not.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Callable, Optional

import aiohttp
import wrapt
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)

from .connector import OpenTelemetryTCPConnector
from .trace_config import create_pool_trace_config

_INSTRUMENTS = ("aiohttp >= 3.9",)
_MARK = "_aiohttp_pool_otel"  # set on the trace configs we add, to never add two


class AioHttpConnectionPoolInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instruments the connection pool of every ``aiohttp.ClientSession``.

    Sessions created without a connector get an :class:`OpenTelemetryTCPConnector`
    (same defaults as aiohttp's) and the pool trace config; sessions given an
    ``OpenTelemetryTCPConnector`` get the trace config; other connectors are left alone.
    ``instrument()`` takes ``tracer_provider``, ``meter_provider``, ``trace_config``
    (default ``True``; ``False`` skips the per-request TraceConfig cost) and
    ``connector_options`` (a dict of extra connector keyword arguments).
    Composes with ``AioHttpClientInstrumentor`` in either order: its request span is
    current while the pool works, so pool spans nest under it.
    """

    _wrapper: Optional[Callable[..., Any]] = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return _INSTRUMENTS

    def _instrument(self, **kwargs: Any) -> None:
        tracer_provider = kwargs.get("tracer_provider")
        meter_provider = kwargs.get("meter_provider")
        add_trace_config = bool(kwargs.get("trace_config", True))
        options = dict(kwargs.get("connector_options") or {})

        def init(
            wrapped: Callable[..., None], _: Any, args: tuple[Any, ...], kw: dict[str, Any]
        ) -> None:
            connector = kw.get("connector")
            if connector is None:
                connector = kw["connector"] = OpenTelemetryTCPConnector(
                    tracer_provider=tracer_provider, meter_provider=meter_provider, **options
                )
            configs = list(kw.get("trace_configs") or [])
            if (
                add_trace_config
                and isinstance(connector, OpenTelemetryTCPConnector)
                and not any(getattr(c, _MARK, False) for c in configs)
            ):
                config = create_pool_trace_config(
                    tracer_provider=tracer_provider, meter_provider=meter_provider
                )
                setattr(config, _MARK, True)
                configs.append(config)
                kw["trace_configs"] = configs
            wrapped(*args, **kw)

        self._wrapper = init
        wrapt.wrap_function_wrapper(aiohttp.ClientSession, "__init__", init)

    def _uninstrument(self, **kwargs: Any) -> None:
        _remove_wrapper(aiohttp.ClientSession, "__init__", self._wrapper)
        self._wrapper = None


def _remove_wrapper(owner: type, name: str, wrapper: Optional[Callable[..., Any]]) -> None:
    """Take our wrapper out of ``owner.name``, wherever it sits in a chain of wrappers
    (another instrumentor may have wrapped on top of it)."""
    if wrapper is None:
        return
    current = owner.__dict__.get(name)
    if getattr(current, "_self_wrapper", None) is wrapper:
        setattr(owner, name, current.__wrapped__)  # type: ignore[union-attr]
        return
    parent: Any = current
    for _ in range(32):  # a chain of wrappers, each exposing what it wraps
        if not hasattr(parent, "__wrapped__") or not hasattr(parent, "_self_wrapper"):
            return
        child = parent.__wrapped__
        if getattr(child, "_self_wrapper", None) is wrapper:
            parent.__wrapped__ = child.__wrapped__
            return
        parent = child
