"""What is wrong besides the size: leaks, unread bodies, keep-alive defeated, the total
limit blocking, requests that timed out waiting. Each finding names its evidence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from .model import MATTERS_SHARE, MIN_ACQUISITIONS, Advice, HostEvidence, PoolEvidence

# Every kind of finding, pool-wide first (docs/advise.md describes each).
KINDS = (
    "total_limit_blocking", "total_limit_too_low", "hold_time_not_recorded",
    "leak", "held_too_long", "pool_wait_timeouts", "unread_bodies", "keepalive_defeated",
)  # fmt: skip

# Keep-alive works when most acquisitions reuse a pooled connection; at this share of
# dials or more, connections do not outlive their request.
DEFEATED_DIAL_SHARE = 0.5


@dataclass(frozen=True)
class Finding:
    """One problem, on one host key (``server_address``) or the whole pool (``None``)."""

    kind: str
    server_address: Optional[str]
    message: str


def _host(h: HostEvidence) -> str:
    return h.server_address if h.server_port is None else f"{h.server_address}:{h.server_port}"


def leak(h: HostEvidence) -> Optional[Finding]:
    """Responses garbage-collected unclosed: each held its slot until the collector ran."""
    n = h.released("gc")
    if n <= 0:
        return None
    return Finding("leak", h.server_address, (
        f"{n:.0f} connection(s) to {_host(h)} were released by the garbage collector: "
        "responses never closed, each holding its slot until collected (lease spans with "
        "ERROR status; capture_request_location=True logs the line). Close or read them "
        "(async with session.get(...) as resp)"
    ))  # fmt: skip


def held_too_long(h: HostEvidence) -> Optional[Finding]:
    """The watchdog saw connections held past its threshold."""
    peak = h.held_too_long_peak or 0
    if peak <= 0:
        return None
    return Finding("held_too_long", h.server_address, (
        f"up to {peak:.0f} connection(s) to {_host(h)} held past the watchdog threshold at "
        "once: a response kept but not consumed (an unread streamed body keeps its slot; "
        "neither EOF nor GC frees it). The lease span's held_too_long event shows where"
    ))  # fmt: skip


def unread_bodies(h: HostEvidence) -> Optional[Finding]:
    """Releases before the body's end: the slot was held by a body nobody read, then the
    connection was closed rather than pooled."""
    early = h.released("release", "closed")
    closed = h.released("close", "closed")
    total = h.released()
    if early + closed <= 0 or (early + closed) < MATTERS_SHARE * total:
        return None
    return Finding("unread_bodies", h.server_address, (
        f"{early + closed:.0f} of {total:.0f} releases to {_host(h)} came before the "
        f"body's end (release(): {early:.0f}, close(): {closed:.0f}), so the connection was "
        "closed, not pooled: each held its slot while its body went unread, and the next "
        "request dials again. Read the body (await resp.read()) before leaving "
        "`async with`; close() also counts errors, timeouts and cancellations"
    ))  # fmt: skip


def keepalive_defeated(h: HostEvidence, window_s: float) -> Optional[Finding]:
    """Connections created about as often as released: nothing is reused."""
    if h.acquisitions < MIN_ACQUISITIONS or h.created < DEFEATED_DIAL_SHARE * h.acquisitions:
        return None
    share = h.created / h.acquisitions
    head = (
        f"{h.created:.0f} connections dialled for {h.acquisitions:.0f} acquisitions to "
        f"{_host(h)} ({share:.0%}): keep-alive is defeated"
    )
    eof_closed = h.released("eof", "closed")
    idle_closed = h.closed - h.released(outcome="closed")
    if eof_closed >= DEFEATED_DIAL_SHARE * h.created:
        cause = (
            f"{eof_closed:.0f} connections closed right at the response's end: the "
            "connector has force_close=True, or the server answers `Connection: close`"
        )
    elif idle_closed >= DEFEATED_DIAL_SHARE * h.created:
        gap = window_s * max(1, h.instances) / h.acquisitions
        cause = (
            f"{idle_closed:.0f} connections closed while idle in the pool (about "
            f"{gap:.2g} s between requests per instance): the server closes idle "
            "connections before the next request comes, or keepalive_timeout is shorter "
            "than that gap"
        )
    elif h.released("release", "closed") + h.released("close", "closed") > 0:
        cause = "releases before the body's end closed them (see unread_bodies)"
    else:
        cause = "the connections did not survive their request"
    return Finding("keepalive_defeated", h.server_address, f"{head}; {cause}")


def timeouts(h: HostEvidence) -> Optional[Finding]:
    """Requests that failed waiting for a slot: errors the users saw."""
    if h.timeouts <= 0:
        return None
    return Finding("pool_wait_timeouts", h.server_address, (
        f"{h.timeouts:.0f} request(s) to {_host(h)} timed out waiting for a free slot "
        f"(blocked by {h.blocking_limit or 'a limit'}): errors your callers saw"
    ))  # fmt: skip


HOST_CHECKS: tuple[Callable[[HostEvidence], Optional[Finding]], ...] = (
    leak, held_too_long, timeouts, unread_bodies,
)  # fmt: skip


def total_limit(pool: PoolEvidence, hosts: list[HostEvidence], advice: Advice) -> Optional[Finding]:
    """The total ``limit`` blocked more acquisitions than any per-host one, or is below
    what the pool needs: the advice's reasons, with the numbers."""
    by_total = sum(h.queued.get("limit", 0.0) for h in hosts)
    by_host = sum(h.queued.get("limit_per_host", 0.0) for h in hosts)
    offered = sum(h.offered for h in hosts)
    why = "; ".join(advice.reasons)
    if offered > 0 and by_total >= MATTERS_SHARE * offered and by_total > by_host:
        busy = sum(1 for h in hosts if h.queued.get("limit", 0.0) > 0)
        return Finding("total_limit_blocking", None, (
            f"the total limit ({pool.limit}) blocked {by_total:.0f} acquisitions "
            f"({by_total / offered:.0%}) across {busy} host(s), the per-host limit "
            f"{by_host:.0f}: raise limit, not limit_per_host. {why}"
        ))  # fmt: skip
    if advice.recommended is not None and advice.recommended != pool.limit:
        return Finding("total_limit_too_low", None, why)
    return None


def no_hold_time(hosts: list[HostEvidence]) -> Optional[Finding]:
    """Hold time estimated rather than measured: say how to measure it."""
    if not hosts or any(h.hold_mean is not None for h in hosts):
        return None
    return Finding("hold_time_not_recorded", None, (
        "no use_time series: hold times are estimated from mean active connections / "
        "served rate. Pass record_hold_time=True to the connector for measured p50/p99"
    ))  # fmt: skip


def find(
    pool: PoolEvidence, hosts: list[HostEvidence], total: Advice, window_s: float
) -> list[Finding]:
    """Every finding, pool-wide ones first, then by host in the hosts' order."""
    found = [total_limit(pool, hosts, total), no_hold_time(hosts)]
    for h in hosts:
        found += [check(h) for check in HOST_CHECKS]
        found.append(keepalive_defeated(h, window_s))
    return [f for f in found if f is not None]
