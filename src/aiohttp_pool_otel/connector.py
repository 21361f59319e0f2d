"""The instrumented connectors: drop-in ``TCPConnector`` / ``UnixConnector`` subclasses.

They share the adapter's hooks with the instrumentor (see :mod:`._aiohttp.install`):
the subclass defines them in front of aiohttp's methods, and the state it creates
is marked explicit, so the instrumentor's class-level hooks, if active too, leave
these connectors to it. ``connect()`` is hooked only by a connector that needs to
see every acquisition (a per-lease option, or an aiohttp older than 3.10.11): that
connector is an instance of a subclass made for the purpose.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import aiohttp
from aiohttp import BaseConnector
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from ._aiohttp.attach import attach_state, state_of
from ._aiohttp.install import explicit_mixin, needs_connect_hook
from ._aiohttp.internals import support
from ._aiohttp.view import PoolView
from ._options import DEFAULT_MAX_HOSTS, check_limits, per_lease_work, pool_options
from ._snapshot import statistics_of, take_snapshot
from ._state import PoolState
from .statistics import PoolStatistics

_with_connect: dict[type, type] = {}


class _OpenTelemetryConnector(BaseConnector):
    """Shared constructor, ``statistics()`` and ``repr`` of the instrumented connectors."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        # A class, not a flag: only a connector whose options need every acquisition
        # pays for a connect() hook (a coroutine per request); the others run aiohttp's.
        if needs_connect_hook(per_lease_work(kwargs)):
            cls = _connect_hooked(cls)
        return super().__new__(cls)

    def __init__(
        self,
        *,
        tracer_provider: Optional[TracerProvider] = None,
        meter_provider: Optional[MeterProvider] = None,
        pool_name: Optional[str] = None,
        max_hosts: int = DEFAULT_MAX_HOSTS,
        trace_all_leases: bool = False,
        record_hold_time: bool = False,
        watchdog_threshold: Optional[float] = None,
        capture_request_location: bool = False,
        root_spans: Optional[bool] = None,
        **connector_kwargs: Any,
    ) -> None:
        options = pool_options(
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            pool_name=pool_name,
            max_hosts=max_hosts,
            trace_all_leases=trace_all_leases,
            record_hold_time=record_hold_time,
            watchdog_threshold=watchdog_threshold,
            capture_request_location=capture_request_location,
            root_spans=root_spans,
        )
        check_limits(connector_kwargs)
        super().__init__(**connector_kwargs)
        if support().hooks:  # else an aiohttp whose pool internals moved: a plain connector
            attach_state(self, PoolState(options, PoolView(self), explicit=True))

    def statistics(self) -> PoolStatistics:
        """The pool right now: totals and one :class:`HostPoolStatistics` per key."""
        state = state_of(self)
        if state is None:  # an unsupported aiohttp: the limits, which are public
            return PoolStatistics(
                0, 0, 0, 0, self.limit, self.limit_per_host, 0, 0, 0, 0, {}, {}
            )
        return state.statistics()

    def _books(self) -> PoolStatistics:
        """What the books say now, changing nothing (for ``repr``, which a debugger or
        a log line may call anywhere: no pending fact applied, no reconciliation)."""
        state = state_of(self)
        if state is None:
            return self.statistics()
        return statistics_of(take_snapshot(state))

    def __repr__(self) -> str:
        try:
            s = self._books()
            state = (
                f"active {s.active}, idle {s.idle}, connecting {s.connecting}, "
                f"waiting {s.waiting}, limit {s.limit}/{s.limit_per_host}"
            )
        except Exception:
            state = "state unavailable"
        closed = ", closed" if self.closed else ""
        return f"<{_public_name(type(self))} [{state}{closed}]>"


def _public_name(cls: type) -> str:
    return getattr(cls, "_pool_public_name", cls.__name__)


def _connect_hooked(cls: type) -> type:
    """``cls`` with ``connect()`` hooked too (made once per class)."""
    made = _with_connect.get(cls)
    if made is None:
        base = next(c for c in cls.__mro__ if c.__module__.startswith("aiohttp."))
        mixin = explicit_mixin(base, connect_only=True)
        made = type(cls.__name__, (mixin, cls), {"_pool_public_name": cls.__name__})
        made.__qualname__ = cls.__qualname__
        made.__module__ = cls.__module__
        _with_connect[cls] = made
    return made


if TYPE_CHECKING:

    class _TCPHooks:
        pass

    class _UnixHooks:
        pass

else:
    # Hooks in front of aiohttp's methods; defining them reads nothing of aiohttp's. A
    # connector without the plugin's state (an aiohttp whose internals moved) passes
    # every call straight to aiohttp.
    _TCPHooks = explicit_mixin(aiohttp.TCPConnector)
    _UnixHooks = explicit_mixin(aiohttp.UnixConnector)


class OpenTelemetryTCPConnector(_OpenTelemetryConnector, _TCPHooks, aiohttp.TCPConnector):
    """An ``aiohttp.TCPConnector`` whose pool is visible in OpenTelemetry.

    Takes every ``TCPConnector`` keyword argument, plus:

    * ``tracer_provider`` / ``meter_provider``: default to the global providers.
    * ``pool_name``: value of the ``aiohttp.pool.name`` attribute, to tell pools apart.
    * ``max_hosts``: at most this many host keys get their own metric series, for
      the connector's life; the rest are folded into ``server.address="_OTHER"``.
    * ``trace_all_leases``: a lease span for every acquisition, not only for those
      that dialled a new connection (costs one span per request).
    * ``record_hold_time``: record ``aiohttp.client.connection.use_time`` on every
      release (costs one histogram record per request).
    * ``watchdog_threshold``: seconds after which a held connection counts as held too
      long (``aiohttp.client.connection.held_too_long`` gauge, ``held_too_long`` event
      on its lease span). Off by default.
    * ``capture_request_location``: remember which line of your code made each request,
      so a response garbage-collected unclosed is logged with it (a few µs per request).
    * ``root_spans``: whether a pool span may start a trace of its own when no span is
      current; ``None`` (default): only when no request instrumentation is active.

    The four per-lease options need every acquisition seen, so they hook ``connect()``;
    without them the plugin's only work on a reused connection is at its release.
    """


class OpenTelemetryUnixConnector(_OpenTelemetryConnector, _UnixHooks, aiohttp.UnixConnector):
    """An ``aiohttp.UnixConnector`` whose pool is visible in OpenTelemetry.

    ``path`` is required as for ``UnixConnector``; the other options are those of
    :class:`OpenTelemetryTCPConnector`.
    """

    def __init__(self, path: str, **kwargs: Any) -> None:
        super().__init__(path=path, **kwargs)


def pool_statistics(connector: BaseConnector) -> Optional[PoolStatistics]:
    """Statistics of any connector the plugin instruments, ``None`` for any other.

    Works for the package's own connectors and, while the instrumentor is active, for
    every aiohttp connector that has queued or dialled since.
    """
    state = state_of(connector)
    return state.statistics() if state is not None else None
