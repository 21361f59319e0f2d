"""Why a release happened, and whether a failed acquisition timed out.

Releases: the common case costs two attribute reads. A release (not a close) of a
protocol whose body reader is at EOF can only come from aiohttp's EOF callback,
because aiohttp runs that callback synchronously when the body completes. Every
rarer release is named by the aiohttp method that asked for it, found by walking
a few frames up and comparing code objects. Nothing here takes a lock or
allocates much: it runs inside finalizers too.

Timeouts: what the caller gets decides. aiohttp delivers both of its timeouts as a
cancellation inside ``connect()`` and turns it into ``TimeoutError`` further out,
so a cancellation is a timeout when aiohttp's own request timer fired (``total``),
or when the connect deadline, counted from before the hook's first line, passed.
"""

from __future__ import annotations

import asyncio
import sys
import time
from types import CodeType, FrameType
from typing import Any, Optional

from aiohttp import BaseConnector, ClientResponse, ClientSession
from aiohttp.connector import Connection

from .._records import BODY, CLOSE, EOF, ERROR, GC, HEADERS, RELEASE, Acquisition
from ..semconv import ReleasePhase, ReleaseReason
from .probe import TIMER_COUNTS_CANCELS

_REASON_OF_CALLER: dict[CodeType, ReleaseReason] = {
    ClientResponse._response_eof.__code__: EOF,
    ClientResponse.release.__code__: RELEASE,
    ClientResponse.close.__code__: CLOSE,
    ClientResponse.__del__.__code__: GC,
    Connection.__del__.__code__: GC,
}
# From _release to the response method: the hook, Connection.release,
# _release_connection and the writer's done-callback lie between; a user's subclass
# override may add one.
_CALLER_DEPTH = 7
_CONNECTOR_DEL = BaseConnector.__del__.__code__
_REQUEST_CODES = {ClientSession._request.__code__.co_name, "_connect_and_send_request"}
# A connect deadline fires when the loop's clock is within its resolution of it; the
# hook starts its clock a few µs after aiohttp's. A caller's own cancellation in the
# last millisecond before the deadline is the one case this misnames.
CONNECT_DEADLINE_SLACK = 0.001
_current_task = asyncio.current_task


def eof_phase(loop: asyncio.AbstractEventLoop) -> ReleasePhase:
    """When the body of an EOF release ended: with the headers, or later."""
    # EOF that came with the headers is seen inside resp.start(), in the request's
    # task; EOF that came later is fed by the transport's read callback, in no task.
    return HEADERS if _current_task(loop) is not None else BODY


def classify_by_caller(
    should_close: bool, loop: asyncio.AbstractEventLoop
) -> tuple[ReleaseReason, Optional[ReleasePhase]]:
    """Every release that is not the common EOF case, told by its aiohttp caller."""
    frame: Optional[FrameType] = sys._getframe(2)
    for _ in range(_CALLER_DEPTH):
        if frame is None:
            break
        reason = _REASON_OF_CALLER.get(frame.f_code)
        if reason is not None:
            return reason, (eof_phase(loop) if reason is EOF else None)
        frame = frame.f_back
    # No response asked: the send failed, or the connector is used directly.
    return (ERROR if should_close else RELEASE), None


def in_connector_finalizer() -> bool:
    """Whether ``BaseConnector.__del__`` is on the stack just above the caller."""
    frame: Optional[FrameType] = sys._getframe(1)
    for _ in range(4):
        if frame is None:
            return False
        if frame.f_code is _CONNECTOR_DEL:
            return True
        frame = frame.f_back
    return False


def caller_request(depth: int) -> tuple[Any, Optional[str], Optional[float]]:
    """(request, its method, its connect timeout) of the ``connect()`` ``depth`` frames
    up. For the queueing hook, which aiohttp does not give the request."""
    try:
        local = sys._getframe(depth + 1).f_locals
        req, timeout = local.get("req"), local.get("timeout")
        method = getattr(req, "method", None)
        limit = getattr(timeout, "connect", None)
        return (
            req,
            method if isinstance(method, str) else None,
            float(limit) if isinstance(limit, (int, float)) and limit > 0 else None,
        )
    except Exception:
        return None, None, None


# Before Python 3.11 an exception thrown into a coroutine chain leaves the outer
# frames unlinked while it propagates: the request's timer is found when the
# acquisition starts instead, on the slow path only.
TIMER_AT_START = sys.version_info < (3, 11)


def request_timer(depth: int) -> Any:
    """aiohttp's ``total`` timer of the request served ``depth`` frames up, if any."""
    frame: Optional[FrameType] = sys._getframe(depth + 1)
    for _ in range(12):
        if frame is None:
            return None
        if frame.f_code.co_name in _REQUEST_CODES:
            timer = frame.f_locals.get("timer")
            if timer is not None:
                return timer
        frame = frame.f_back
    return None


def _request_timer_fired(acq: Acquisition) -> bool:
    """Whether the ``total`` timer of ``acq``'s request has fired."""
    timer = acq.timer if TIMER_AT_START else request_timer(2)
    return bool(getattr(timer, "_cancelled", False))


def cancel_requests() -> Optional[int]:
    """Cancellations requested of the current task and not yet withdrawn (Python 3.11+)."""
    task = _current_task()
    cancelling = getattr(task, "cancelling", None)
    return int(cancelling()) if cancelling is not None else None


def timed_out(exc: BaseException, acq: Acquisition, connect_limit: Optional[float]) -> bool:
    """Whether ``exc``, raised into ``acq``, is what the caller gets as aiohttp's
    timeout error."""
    if isinstance(exc, asyncio.TimeoutError):
        return True
    if not isinstance(exc, asyncio.CancelledError):
        return False
    connect_fired = connect_limit is not None and (
        time.monotonic() - acq.started >= connect_limit - CONNECT_DEADLINE_SLACK
    )
    timer_fired = _request_timer_fired(acq)
    if timer_fired and not TIMER_COUNTS_CANCELS:
        return True  # this aiohttp's timer turns whatever cancellation into TimeoutError
    fired = int(connect_fired) + int(timer_fired)
    if not fired:
        return False
    # On Python 3.11+ each timeout that fired requested one cancellation, and each
    # (asyncio.timeout, aiohttp's timer) turns the cancellation into TimeoutError only
    # when no other request is left: the caller gets TimeoutError unless a cancel() of
    # its own came too. Older Pythons convert whenever a timeout fired.
    now, before = cancel_requests(), acq.cancels
    return before is None or now is None or now - before <= fired
