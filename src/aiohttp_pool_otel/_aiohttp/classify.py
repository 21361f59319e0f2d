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
or when aiohttp's own ``connect`` deadline expired. That deadline is read from its
timeout context itself, found when the wait starts; a clock the hook starts would
start late by whatever ran in between (another thread holding the GIL, a collection).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from types import CodeType, FrameType
from typing import Any, Optional

from .._records import BODY, CLOSE, EOF, ERROR, GC, HEADERS, RELEASE, Acquisition
from ..semconv import ReleasePhase, ReleaseReason
from .internals import Support, on_resolved
from .probe import TIMER_COUNTS_CANCELS

# Filled in place when the internals are resolved (first use, never at import):
# the code objects of the aiohttp methods a release is named by.
_REASON_OF_CALLER: dict[CodeType, ReleaseReason] = {}
_CALLERS = (
    ("ClientResponse._response_eof", EOF),
    ("ClientResponse.release", RELEASE),
    ("ClientResponse.close", CLOSE),
    ("ClientResponse.__del__", GC),
    ("Connection.__del__", GC),
)
# From _release to the response method: the hook, Connection.release,
# _release_connection and the writer's done-callback lie between; a user's subclass
# override may add one.
_CALLER_DEPTH = 7
_CONNECTOR_DEL: set[CodeType] = set()
# The frames that hold a request's total timer: ClientSession._request, and (3.12+)
# the function it nests for its middlewares, which sees the same cell.
_REQUEST_CODES: set[str] = set()


def _learn(support: Support) -> None:
    found = support.found
    if not support.hooks:
        return
    for name, reason in _CALLERS:
        _REASON_OF_CALLER[found[name]] = reason
    _CONNECTOR_DEL.add(found["BaseConnector.__del__"])
    timer_frame = found.get("ClientSession._request: frame local timer")
    if timer_frame is not None:
        _REQUEST_CODES.update((timer_frame.co_name, "_connect_and_send_request"))


on_resolved(_learn)

# Only where aiohttp's deadline cannot be found (an event loop without asyncio's timer
# heap): the hook's clock starts a few µs after aiohttp's, usually. A caller's own
# cancellation in the last millisecond before the deadline is then misnamed, and a
# deadline whose wait started later than this after it (a thread holding the GIL)
# is missed.
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
        if frame.f_code in _CONNECTOR_DEL:
            return True
        frame = frame.f_back
    return False


def caller_request(depth: int) -> tuple[Any, Optional[str], Any]:
    """(request, its method, its ``ClientTimeout``) of the ``connect()`` ``depth`` frames
    up. For the queueing hook, which aiohttp does not give the request."""
    try:
        local = sys._getframe(depth + 1).f_locals
        req = local.get("req")
        method = getattr(req, "method", None)
        return req, method if isinstance(method, str) else None, local.get("timeout")
    except Exception:
        return None, None, None


# Before Python 3.11 an exception thrown into a coroutine chain leaves the outer
# frames unlinked while it propagates: the request's timer is found when the
# acquisition starts instead, on the slow path only.
TIMER_AT_START = sys.version_info < (3, 11)


def request_timer(depth: int) -> Any:
    """aiohttp's ``total`` timer of the request served ``depth`` frames up, if any."""
    frame: Optional[FrameType] = sys._getframe(depth + 1)
    for _ in range(13):
        if frame is None:
            return None
        if frame.f_code.co_name in _REQUEST_CODES:
            timer = frame.f_locals.get("timer")
            if timer is not None:
                return timer
        frame = frame.f_back
    return None


def timer_at_start() -> Any:
    """The request's ``total`` timer, where it must be found when an acquisition starts
    (before Python 3.11; see :data:`TIMER_AT_START`), else ``None``. Called from the
    acquisition's start, which a hook calls: the timer is searched from there up."""
    return request_timer(1) if TIMER_AT_START else None


# Frames of aiohttp, asyncio and this package: a request's origin is the first
# frame outside them.
_INTERNAL_DIRS = tuple(
    os.path.dirname(file) + os.sep
    for file in (
        getattr(sys.modules.get(name), "__file__", None)
        for name in ("aiohttp", "asyncio", (__package__ or "aiohttp_pool_otel").split(".")[0])
    )
    if file
)
_OPENTELEMETRY_DIR = os.sep + "opentelemetry" + os.sep


def request_origin() -> Optional[tuple[str, int, str]]:
    """(file, line, function) of the code that awaited the request, outside aiohttp."""
    frame = sys._getframe(2)
    for _ in range(64):
        if frame is None:
            return None
        filename = frame.f_code.co_filename
        if not filename.startswith(_INTERNAL_DIRS) and _OPENTELEMETRY_DIR not in filename:
            return (filename, frame.f_lineno, frame.f_code.co_name)
        frame = frame.f_back  # type: ignore[assignment]
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


def connect_deadline(loop: asyncio.AbstractEventLoop, timeout: Any) -> Any:
    """aiohttp's ``connect`` deadline that the current task entered just now: the timeout
    context whose expiry the caller gets as aiohttp's timeout error. ``None`` when it
    cannot be found (then the hook's own clock decides).

    Call it before the first await after aiohttp entered the deadline: its timer was
    then the last one pushed on the loop's heap, so it lies on the path from the
    heap's last leaf to its root (or, already due, last in the ready queue).
    """
    limit = connect_limit(timeout)
    candidates = _newest_timers(loop) if limit is not None else None
    if not candidates or limit is None:
        return None
    task = _current_task(loop)
    # aiohttp's deadline is now + limit, rounded up to a second above the threshold.
    threshold = getattr(timeout, "ceil_threshold", 5)
    latest = loop.time() + limit + (1.0 if limit > threshold else 0.0) + 1e-6
    # The latest deadline of this task that aiohttp could have set: a caller's own
    # timeout around the request was entered earlier, so it ends earlier or after this.
    found, found_when = None, -1.0
    for handle in candidates:
        owner = _deadline_owner(handle, task)
        when = _deadline_when(owner) if owner is not None else None
        if when is not None and found_when < when <= latest:
            found, found_when = owner, when
    return found


def _newest_timers(loop: asyncio.AbstractEventLoop) -> Optional[list[Any]]:
    """The handles that may have been scheduled last: the ready queue's last one, and the
    timer heap's path from its last leaf to its root. None without asyncio's heap."""
    heap: Optional[list[Any]] = getattr(loop, "_scheduled", None)
    ready = getattr(loop, "_ready", None)
    if heap is None or ready is None:  # not asyncio's own loop (uvloop)
        return None
    candidates = [ready[-1]] if ready else []
    i = len(heap) - 1
    while i >= 0:
        candidates.append(heap[i])
        i = (i - 1) // 2 if i else -1
    return candidates


def connect_limit(timeout: Any) -> Optional[float]:
    """The ``connect`` seconds of aiohttp's ``ClientTimeout``, if it has one."""
    limit = getattr(timeout, "connect", None)
    return float(limit) if isinstance(limit, (int, float)) and limit > 0 else None


def _deadline_owner(handle: Any, task: Any) -> Any:
    """The timeout context of ``task`` that ``handle`` expires, if it is one."""
    callback = getattr(handle, "_callback", None)
    if getattr(callback, "__name__", None) != "_on_timeout":
        return None
    owner = getattr(callback, "__self__", None)
    return owner if getattr(owner, "_task", None) is task else None


def _deadline_when(owner: Any) -> Optional[float]:
    # asyncio.Timeout (Python 3.11+) has when(); the async_timeout package, deadline.
    when = getattr(owner, "when", None)
    value = when() if callable(when) else getattr(owner, "deadline", None)
    return float(value) if isinstance(value, (int, float)) else None


def _deadline_expired(deadline: Any) -> bool:
    expired = deadline.expired
    return bool(expired() if callable(expired) else expired)


def timed_out(
    exc: BaseException,
    acq: Acquisition,
    limit: Optional[float],
    deadline: Any = None,
) -> bool:
    """Whether ``exc``, raised into ``acq``, is what the caller gets as aiohttp's
    timeout error. ``deadline``: aiohttp's connect deadline (:func:`connect_deadline`),
    read instead of the hook's clock where it was found."""
    if isinstance(exc, asyncio.TimeoutError):
        return True
    if not isinstance(exc, asyncio.CancelledError):
        return False
    if deadline is not None:
        connect_fired = _deadline_expired(deadline)
    else:
        connect_fired = limit is not None and (
            time.monotonic() - acq.started >= limit - CONNECT_DEADLINE_SLACK
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
