"""WebSocket upgrades: a lease that ends with the handshake, a connection that closes later.

aiohttp does not release an upgraded connection when it upgrades: the connection stays
in the connector's ``_acquired`` (it keeps its slot of ``limit``) until the WebSocket
closes, and only then does ``Connection.close()`` release it. At the upgrade, the one
call aiohttp makes on the protocol is ``set_parser()`` (in ``ClientSession._ws_connect``,
right after the 101 response, in the caller's task; the same in 3.9 to 3.14). So every
connection the plugin dials reports that call: the lease ends there, counted once with
reason ``upgrade`` and outcome ``detached``, and the release that comes when the
WebSocket closes counts the close only. A connection the plugin did not dial (it
predates the instrumentor) is recognised at its close instead: one ``upgrade`` release,
outcome ``closed``.
"""

from __future__ import annotations

import contextlib
import functools
import weakref
from typing import TYPE_CHECKING, Any

from .._errors import report_internal_error
from ..semconv import ReleaseOutcome, ReleaseReason

if TYPE_CHECKING:
    from .._state import PoolState

UPGRADE = ReleaseReason.UPGRADE
DETACHED = ReleaseOutcome.DETACHED


def watch_upgrade(state: PoolState, protocol: Any) -> None:
    """Have a protocol the plugin just dialled report its upgrade to ``state``.

    Weak references only: the protocol keeps neither itself nor the state alive.
    """
    # A protocol class with slots cannot be told: its upgrade is seen at its close.
    with contextlib.suppress(AttributeError, TypeError):
        protocol.set_parser = functools.partial(
            _set_parser, weakref.ref(state), weakref.ref(protocol)
        )


def _set_parser(state_ref: Any, protocol_ref: Any, *args: Any, **kwargs: Any) -> Any:
    protocol = protocol_ref()  # alive: it is the object this was called on
    result = type(protocol).set_parser(protocol, *args, **kwargs)
    state = state_ref()
    if state is not None:
        lease_upgraded(state, protocol)
    return result


def lease_upgraded(state: PoolState, protocol: Any) -> None:
    """The held ``protocol`` now serves a WebSocket: its lease ends (loop thread)."""
    try:
        record = state.ledger.record_of(protocol)
        if record is None or record.detached or not getattr(protocol, "upgraded", False):
            return
        if not state.view.is_held(protocol):
            return  # not a lease (the connector closed meanwhile)
        record.detached = True
        state.released(protocol, record, UPGRADE, None, DETACHED)
    except Exception:
        report_internal_error("upgrade")


def is_detached(state: PoolState, protocol: Any) -> bool:
    """Whether ``protocol``'s lease already ended with its upgrade."""
    record = state.ledger.record_of(protocol)
    return record is not None and record.detached
