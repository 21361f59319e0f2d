"""Where the plugin keeps its state of a connector: one instance attribute.

The attribute shadows no class attribute of aiohttp's, and the release hook reads it
by its literal name (``self._aiohttp_pool_otel``), the cheapest read there is: keep
the two in step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from .._state import PoolState

STATE_ATTR = "_aiohttp_pool_otel"


def attach_state(connector: Any, state: PoolState) -> None:
    """Give ``connector`` the plugin's ``state``: the hooks report its pool from now on."""
    connector.__dict__[STATE_ATTR] = state


def detach_state(connector: Any) -> None:
    """Take the plugin's state off ``connector``: the hooks leave it to aiohttp."""
    connector.__dict__.pop(STATE_ATTR, None)


def state_of(connector: Any) -> Optional[PoolState]:
    """The plugin's state of ``connector``, if it has one."""
    state: Optional[PoolState] = getattr(connector, "__dict__", {}).get(STATE_ATTR)
    return state
