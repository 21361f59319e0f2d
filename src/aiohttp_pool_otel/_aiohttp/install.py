"""Where the hooks go: onto aiohttp's classes (the instrumentor), or into the
package's own connector subclasses.

Which methods are hooked, and on which class:

* ``BaseConnector``: ``_release``, ``_close``, ``_cleanup``, and
  ``_wait_for_available_connection`` (aiohttp 3.10.11+); ``connect`` only on an
  older aiohttp (which queues inside it) or when an option needs every acquisition;
* each connector class that dials by itself (``TCPConnector``, ``UnixConnector``,
  ``NamedPipeConnector``): ``_create_connection``;
* ``TCPConnector``: ``_resolve_host`` (DNS spans and durations).
"""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import BaseConnector

from .hooks import STATE_ATTR, AutoState, make_hooks
from .probe import HAS_WAIT_METHOD

_BASE_METHODS = ("_release", "_close", "_cleanup") + (
    ("_wait_for_available_connection",) if HAS_WAIT_METHOD else ()
)
_DIALLERS = tuple(
    cls
    for cls in (
        aiohttp.TCPConnector,
        aiohttp.UnixConnector,
        getattr(aiohttp, "NamedPipeConnector", None),
    )
    if cls is not None
)


def needs_connect_hook(per_lease_work: bool) -> bool:
    """Whether ``connect()`` must be hooked: to see every acquisition, or to see a
    wait on an aiohttp that queues inside ``connect()``."""
    return per_lease_work or not HAS_WAIT_METHOD


def _methods_for(cls: type, with_connect: bool) -> list[str]:
    names = list(_BASE_METHODS)
    if with_connect:
        names.append("connect")
    if "_create_connection" in vars(cls) or cls in _DIALLERS:
        names.append("_create_connection")
    if issubclass(cls, aiohttp.TCPConnector):
        names.append("_resolve_host")
    return names


def explicit_mixin(base: type, connect_only: bool = False) -> type:
    """A mixin that puts the hooks in front of ``base``'s methods, for connectors
    whose state is explicit (the package's own subclasses); ``connect_only``: the
    ``connect()`` hook alone, for a connector that needs every acquisition seen."""
    hooks = make_hooks(base, explicit=True, auto=None)
    names = ["connect"] if connect_only else _methods_for(base, with_connect=False)
    namespace: dict[str, Any] = {name: hooks[name] for name in names}
    namespace["__doc__"] = f"The plugin's hooks in front of {base.__name__}'s methods."
    suffix = "Connect" if connect_only else ""
    return type(f"_PoolHooks{suffix}{base.__name__}", (), namespace)


class ClassPatches:
    """The instrumentor's hooks on aiohttp's own classes; undone exactly."""

    def __init__(self) -> None:
        self._saved: list[tuple[type, str, Any]] = []

    @property
    def active(self) -> bool:
        """Whether the hooks are installed."""
        return bool(self._saved)

    def install(self, auto: AutoState, with_connect: bool) -> None:
        """Hook every connector class of aiohttp; ``auto`` makes a connector's state."""
        if self._saved:
            return
        targets: list[tuple[type, list[str]]] = [
            (BaseConnector, list(_BASE_METHODS) + (["connect"] if with_connect else []))
        ]
        targets += [(cls, ["_create_connection"]) for cls in _DIALLERS]
        targets.append((aiohttp.TCPConnector, ["_resolve_host"]))
        for cls, names in targets:
            originals = {name: vars(cls)[name] for name in names}
            holder = type(f"_Original{cls.__name__}", (), dict(originals))
            hooks = make_hooks(holder, explicit=False, auto=auto)
            for name in names:
                self._saved.append((cls, name, originals[name]))
                setattr(cls, name, hooks[name])

    def uninstall(self) -> None:
        """Put aiohttp's functions back where they were."""
        for cls, name, original in reversed(self._saved):
            setattr(cls, name, original)
        self._saved.clear()



# The instrumentor's patches: one set per process, like the classes they patch.
CLASS_PATCHES = ClassPatches()


def covered(connector: Any) -> bool:
    """Whether the hooks report ``connector``'s pool (then a trace config must not)."""
    return STATE_ATTR in getattr(connector, "__dict__", {}) or CLASS_PATCHES.active
