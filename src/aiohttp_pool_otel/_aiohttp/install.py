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

from .attach import state_of
from .hooks import AutoState, make_hooks
from .internals import Support, support

# Every hook a subclass defines: fixed names, so that defining the package's connector
# classes reads nothing of aiohttp's. A hook whose method this aiohttp lacks is never
# called, and the others pass straight to aiohttp for what is switched off.
_SUBCLASS_METHODS = (
    "_release", "_close", "_cleanup", "_wait_for_available_connection", "_create_connection"
)  # fmt: skip


def _dialers() -> tuple[type, ...]:
    pipe = getattr(aiohttp, "NamedPipeConnector", None)  # Windows only
    classes = (aiohttp.TCPConnector, aiohttp.UnixConnector, pipe)
    return tuple(cls for cls in classes if cls is not None)


def needs_connect_hook(per_lease_work: bool) -> bool:
    """Whether ``connect()`` must be hooked: to see every acquisition, or to see a
    wait on an aiohttp that queues inside ``connect()``."""
    found = support()
    return found.hooks and (per_lease_work or (found.wait and not found.queue_method))


def explicit_mixin(base: type, connect_only: bool = False) -> type:
    """A mixin that puts the hooks in front of ``base``'s methods, for connectors
    whose state is explicit (the package's own subclasses); ``connect_only``: the
    ``connect()`` hook alone, for a connector that needs every acquisition seen."""
    hooks = make_hooks(base, explicit=True, auto=None)
    if connect_only:
        names = ["connect"]
    else:
        names = list(_SUBCLASS_METHODS)
        if issubclass(base, aiohttp.TCPConnector):
            names.append("_resolve_host")
    namespace: dict[str, Any] = {name: hooks[name] for name in names}
    namespace["__doc__"] = f"The plugin's hooks in front of {base.__name__}'s methods."
    suffix = "Connect" if connect_only else ""
    return type(f"_PoolHooks{suffix}{base.__name__}", (), namespace)


def _class_targets(found: Support, with_connect: bool) -> list[tuple[type, list[str]]]:
    """Which methods of which aiohttp class the instrumentor hooks on this aiohttp."""
    base = ["_release", "_close"]
    if found.expiry:
        base.append("_cleanup")
    if found.wait and found.queue_method:
        base.append("_wait_for_available_connection")
    if with_connect:
        base.append("connect")
    targets: list[tuple[type, list[str]]] = [(BaseConnector, base)]
    dialers = [cls for cls in _dialers() if "_create_connection" in vars(cls)]
    targets += [(cls, ["_create_connection"]) for cls in dialers]
    if found.dns:
        targets.append((aiohttp.TCPConnector, ["_resolve_host"]))
    return targets


class ClassPatches:
    """The instrumentor's hooks on aiohttp's own classes; undone exactly."""

    def __init__(self) -> None:
        self._saved: list[tuple[type, str, Any]] = []

    @property
    def active(self) -> bool:
        """Whether the hooks are installed."""
        return bool(self._saved)

    def install(self, auto: AutoState, with_connect: bool) -> None:
        """Hook every connector class of aiohttp; ``auto`` makes a connector's state.
        Installs nothing on an aiohttp whose pool internals moved."""
        found = support()
        if self._saved or not found.hooks:
            return
        for cls, names in _class_targets(found, with_connect):
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
    return state_of(connector) is not None or CLASS_PATCHES.active
