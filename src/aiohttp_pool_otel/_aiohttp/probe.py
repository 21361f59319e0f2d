"""Which aiohttp this is (its public version), and, resolved at first use, which
internals it has (see :mod:`.internals`)."""

from __future__ import annotations

from typing import Any

from .internals import AIOHTTP_VERSION, QUEUE_METHOD_SINCE, support

__all__ = ["AIOHTTP_VERSION", "EXPLICIT_SHOULD_CLOSE", "HAS_WAIT_METHOD", "TIMER_COUNTS_CANCELS"]

# 3.10.11+ queues in a method of its own; older versions queue inline in connect(),
# which must then be hooked to see a wait.
HAS_WAIT_METHOD = AIOHTTP_VERSION >= QUEUE_METHOD_SINCE
# 3.10.11+ passes should_close=True only from Connection.close(); older versions pass
# the protocol's own should_close from Connection.release() too.
EXPLICIT_SHOULD_CLOSE = AIOHTTP_VERSION >= QUEUE_METHOD_SINCE
# From 3.10.11 aiohttp's request timer lets a cancellation of the caller's own through
# after it fired (it compares the task's cancellation count); 3.9 turns any into
# TimeoutError.
TIMER_COUNTS_CANCELS = AIOHTTP_VERSION >= QUEUE_METHOD_SINCE


def __getattr__(name: str) -> Any:
    # Resolved at first use, never at import.
    if name == "MISSING_INTERNALS":
        return [internal.name for internal in support().missing]
    raise AttributeError(name)
