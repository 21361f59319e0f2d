"""Zero-code setup: ``opentelemetry-instrument python app.py`` instruments every pool.

The instrumentor hooks aiohttp's connector classes, the way contrib instrumentations
patch their libraries, so every connector in the process is covered, whoever built
it and with whatever arguments; it constructs nothing and passes nothing on a
session's behalf. A connector's state is made the first time it queues or dials.
``uninstrument()`` puts aiohttp's own functions back.

It needs ``opentelemetry-instrumentation`` (the ``instrumentation`` extra); without
it this module still imports, and using the instrumentor says what to install.
"""

from __future__ import annotations

import weakref
from collections.abc import Collection
from typing import Any, Optional

from aiohttp import BaseConnector

from ._aiohttp.attach import attach_state, detach_state
from ._aiohttp.install import CLASS_PATCHES, needs_connect_hook
from ._aiohttp.internals import support
from ._aiohttp.view import PoolView
from ._options import pool_options
from ._state import PoolState

_INSTALL_HINT = (
    "AioHttpConnectionPoolInstrumentor needs opentelemetry-instrumentation: "
    "pip install 'aiohttp-pool-otel[instrumentation]'"
)

try:
    from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
        BaseInstrumentor,
    )
except ImportError:  # a base install: importable, and clear when used

    class BaseInstrumentor:  # type: ignore[no-redef]
        """Stand-in that names the missing extra."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise ModuleNotFoundError(_INSTALL_HINT)


class AioHttpConnectionPoolInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instruments the connection pool of every aiohttp connector in the process.

    ``instrument()`` takes ``tracer_provider``, ``meter_provider`` and the
    connector's options (``pool_name``, ``max_hosts``, ``trace_all_leases``,
    ``record_hold_time``, ``watchdog_threshold``, ``capture_request_location``,
    ``root_spans``), validated as for :class:`OpenTelemetryTCPConnector`.
    Composes with ``AioHttpClientInstrumentor`` in either order: its request span is
    current while the pool works, so pool spans nest under it. An
    ``OpenTelemetryTCPConnector`` keeps its own options and is counted once.
    """

    _patches = CLASS_PATCHES
    _states: weakref.WeakSet[PoolState] = weakref.WeakSet()

    def instrumentation_dependencies(self) -> Collection[str]:
        """The aiohttp versions this instruments."""
        return ("aiohttp >= 3.9",)

    def _instrument(self, **kwargs: Any) -> None:
        options = pool_options(**kwargs)
        if not support().hooks:
            return  # an aiohttp whose pool internals moved: leave it alone
        states = self._states

        def auto_state(connector: Any) -> Optional[PoolState]:
            if not isinstance(connector, BaseConnector) or connector.closed:
                return None
            state = PoolState(options, PoolView(connector), explicit=False)
            attach_state(connector, state)
            states.add(state)
            return state

        self._patches.install(auto_state, with_connect=needs_connect_hook(options.per_lease_work))

    def _uninstrument(self, **kwargs: Any) -> None:
        self._patches.uninstall()
        # Connectors this instrumentor adopted report no more and keep no state; the
        # counts they made stay in the counters.
        for state in list(self._states):
            state.meters.retire(state)
            connector = state.view.connector
            if connector is not None:
                detach_state(connector)
        self._states.clear()
