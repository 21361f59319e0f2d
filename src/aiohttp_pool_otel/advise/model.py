"""The arithmetic of the advice: what one host key (and the pool) saw, and what it needs.

Little's law: connections busy on average = arrival rate x mean hold time. The arrival
rate is the offered one (acquisitions served plus those that timed out waiting), at its
peak short-range rate in the window, so a pool is sized for its busy minute, not for the
window's average. Headroom follows square-root staffing: ``R + 2 sqrt(R)`` connections for
an average of ``R`` busy, which with Poisson arrivals leaves about 3 % of acquisitions
waiting, briefly. Nothing here talks to Prometheus: :mod:`.queries` fills the evidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

# Below this many acquisitions (served or timed out) in the window a rate and a mean are
# noise: the advice says the data is too thin rather than guess.
MIN_ACQUISITIONS = 30
# Square-root staffing's beta: waiting probability ~3 % (Halfin-Whitt, Erlang C).
HEADROOM_BETA = 2.0
# Queued acquisitions below this share of the offered ones are normal jitter, not a
# limit that binds (a pool at the edge still shows them).
MATTERS_SHARE = 0.01
# Fewer samples of the active gauge than this make Little's-law hold estimates rough.
MIN_ACTIVE_SAMPLES = 30
# A burst that queues while the average fits: raise at most to this multiple at once.
BURST_STEP = 2

# aiohttp's labels of the queued counter -> the names of the advice.
BLOCKING = {"limit_per_host": "per_host", "limit": "total"}

OTHER_HOST = "_OTHER"


@dataclass
class HostEvidence:
    """What Prometheus holds about one host key of the service's pool(s) in the window.

    Counts are increases over the window, summed over the service's instances; rates
    are per second; times in seconds. ``None``: no series (the option that records it
    is off, or the connector kind does not report it).
    """

    server_address: str
    server_port: Optional[int]
    pool_name: Optional[str] = None
    instances: int = 1
    limit_per_host: Optional[int] = None  # 0: no per-host limit
    limit: Optional[int] = None  # the total limit of this host's pool; 0: none
    peak_active: Optional[float] = None
    mean_active: Optional[float] = None
    active_samples: Optional[float] = None  # scrapes of the active gauge in the window
    peak_pending: Optional[float] = None
    created: float = 0.0
    reused: float = 0.0
    closed: float = 0.0
    timeouts: float = 0.0
    queued: dict[str, float] = field(default_factory=dict)  # by aiohttp's blocking label
    releases: dict[tuple[str, str], float] = field(default_factory=dict)  # (reason, outcome)
    peak_rate: Optional[float] = None  # busiest instance's peak offered rate
    peak_range_s: Optional[float] = None  # the range that peak rate was taken over
    wait_p95: Optional[float] = None
    wait_p99: Optional[float] = None
    hold_p50: Optional[float] = None
    hold_p99: Optional[float] = None
    hold_mean: Optional[float] = None  # from use_time's _sum / _count
    held_too_long_peak: Optional[float] = None

    @property
    def acquisitions(self) -> float:
        """Acquisitions served: by a new connection or an idle pooled one."""
        return self.created + self.reused

    @property
    def offered(self) -> float:
        """Acquisitions asked for: served, or timed out waiting for a slot."""
        return self.acquisitions + self.timeouts

    @property
    def queued_total(self) -> float:
        return sum(self.queued.values())

    @property
    def queued_share(self) -> Optional[float]:
        """Share of the offered acquisitions that found no free slot."""
        return min(1.0, self.queued_total / self.offered) if self.offered > 0 else None

    @property
    def blocking_limit(self) -> Optional[str]:
        """``per_host`` or ``total``: the limit most queued acquisitions met; ``None``
        when none queued."""
        queued = {BLOCKING.get(k, k): v for k, v in self.queued.items() if v > 0}
        if not queued:
            return None
        return max(sorted(queued), key=lambda k: queued[k])

    def released(self, reason: Optional[str] = None, outcome: Optional[str] = None) -> float:
        """Releases with ``reason`` and/or ``outcome`` (``None``: any)."""
        return sum(
            n for (r, o), n in self.releases.items()
            if reason in (None, r) and outcome in (None, o)
        )  # fmt: skip

    @property
    def is_other(self) -> bool:
        """The series of hosts past the plugin's ``max_hosts`` budget, folded together."""
        return self.server_address == OTHER_HOST

    @property
    def holds_connections(self) -> bool:
        """Connections are held, not used: leaked (gc) or held past the watchdog."""
        return bool(self.released("gc") > 0 or (self.held_too_long_peak or 0) > 0)


@dataclass
class HoldTime:
    """The mean hold time Little's law uses, and where it came from."""

    mean: float
    source: str  # "use_time" (measured) or "little" (mean active / served rate)


def hold_time(h: HostEvidence, window_s: float) -> Optional[HoldTime]:
    """The measured mean hold time; without ``record_hold_time=True``, Little's law
    backwards (mean active connections / served rate, over the same window)."""
    if h.hold_mean is not None:
        return HoldTime(h.hold_mean, "use_time")
    served_rate = h.acquisitions / window_s
    if h.mean_active is not None and served_rate > 0:
        # 0 active at every sample: holds too short to catch, Little's law says ~0.
        return HoldTime(h.mean_active / served_rate, "little")
    return None


def needed_connections(busy: float) -> int:
    """Connections for ``busy`` on average, with square-root-staffing headroom (>= 1)."""
    if busy <= 0:
        return 1
    return max(1, math.ceil(busy + HEADROOM_BETA * math.sqrt(busy) - 1e-9))


@dataclass
class Advice:
    """A recommended limit (``None``: too thin to advise) and why, with its numbers."""

    recommended: Optional[int]
    reasons: list[str]
    busy: Optional[float] = None  # arrival rate x mean hold time
    needed: Optional[int] = None


def offered_rate(h: HostEvidence, window_s: float) -> float:
    """The rate to size for: the busiest instance's peak, else the window's average."""
    average = h.offered / window_s / max(1, h.instances)
    return max(h.peak_rate or 0.0, average)


def thin_reason(h: HostEvidence, hold: Optional[HoldTime]) -> Optional[str]:
    """Why the data cannot carry advice, or ``None`` if it can."""
    if h.offered < MIN_ACQUISITIONS:
        return (
            f"too thin to advise: {h.offered:.0f} acquisitions in the window "
            f"(at least {MIN_ACQUISITIONS} needed); widen --window"
        )
    if hold is None:
        return (
            "too thin to advise: no hold time (use_time is recorded only with "
            "record_hold_time=True) and no active-connection samples to estimate it"
        )
    return None


def advise_host(h: HostEvidence, window_s: float) -> Advice:
    """The recommended ``limit_per_host`` of one host key, with its reasoning."""
    configured = h.limit_per_host
    hold = hold_time(h, window_s)
    thin = thin_reason(h, hold)
    if h.is_other:
        return Advice(configured, [
            f"{OTHER_HOST} folds the hosts beyond the plugin's max_hosts: no per-host "
            "advice; raise max_hosts to see them"
        ])  # fmt: skip
    if thin is not None or hold is None:
        return Advice(None, [thin or "too thin to advise"])
    rate = offered_rate(h, window_s)
    busy = rate * hold.mean
    needed = needed_connections(busy)
    reasons = [_little_line(rate, hold.mean, _SOURCES[hold.source], busy, needed)]
    samples = h.active_samples or 0
    if hold.source == "little" and samples < MIN_ACTIVE_SAMPLES:
        reasons.append(
            f"rough: the hold time rests on {samples:.0f} samples of active connections; "
            "widen --window or pass record_hold_time=True"
        )
    advice = Advice(configured, reasons, busy, needed)
    if not configured:  # unknown or no per-host limit: nothing to change
        if configured == 0:
            reasons.append("no per-host limit is set (limit_per_host=0): nothing to raise")
        return advice
    blocked = h.queued.get("limit_per_host", 0.0)
    share = blocked / h.offered
    if h.holds_connections and (share >= MATTERS_SHARE or needed > configured):
        reasons.append(
            "connections are held, not used (see the findings): fix that first; a higher "
            "limit would only postpone the exhaustion"
        )
    elif needed > configured:
        advice.recommended = needed
        reasons.append(f"{needed} > the configured {configured}: raise limit_per_host")
    elif share >= MATTERS_SHARE:
        advice.recommended = _burst_limit(h, configured, needed)
        reasons.append(
            f"the average fits {configured}, but {share:.0%} of acquisitions queued on "
            f"limit_per_host: bursts (peak {_fmt(h.peak_active)} active + "
            f"{_fmt(h.peak_pending)} queued at once); raise to {advice.recommended} and re-check"
        )
    else:
        reasons.append(_fits_line(h, configured, needed, share))
    return advice


def _burst_limit(h: HostEvidence, configured: int, needed: int) -> int:
    peak_demand = math.ceil((h.peak_active or 0) + (h.peak_pending or 0))
    return max(configured + 1, needed, min(peak_demand, BURST_STEP * configured))


_SOURCES = {
    "use_time": "measured: use_time",
    "little": "estimated as mean active / served rate: no use_time without record_hold_time",
}


def _little_line(rate: float, hold: float, source: str, busy: float, needed: int) -> str:
    return (
        f"Little's law: {rate:.1f} acquisitions/s at peak x {_ms(hold)} mean hold "
        f"({source}) = {busy:.1f} connections busy; + 2*sqrt({busy:.1f}) headroom for "
        f"bursts -> {needed}"
    )


def _fits_line(h: HostEvidence, configured: int, needed: int, share: float) -> str:
    return (
        f"no change: {needed} needed <= the configured {configured}; peak active "
        f"{_fmt(h.peak_active)}, {share:.1%} queued on limit_per_host"
    )


@dataclass
class PoolEvidence:
    """The pool-wide numbers the total ``limit`` is judged by."""

    limit: Optional[int]
    peak_rate: Optional[float]  # busiest instance's peak offered rate, all hosts
    peak_active: Optional[float]  # busiest instance, all hosts at once


def pool_busy(
    pool: PoolEvidence, hosts: list[HostEvidence], window_s: float
) -> Optional[tuple[float, float]]:
    """(the pool's peak offered rate, its demand-weighted mean hold time), or ``None``
    when the data is too thin."""
    offered = sum(h.offered for h in hosts)
    holds = [(h.offered, hold_time(h, window_s)) for h in hosts if h.offered > 0]
    weighted = [(n, t.mean) for n, t in holds if t is not None]
    if offered < MIN_ACQUISITIONS or not weighted:
        return None
    mean_hold = sum(n * t for n, t in weighted) / sum(n for n, _ in weighted)
    instances = max(h.instances for h in hosts)
    return max(pool.peak_rate or 0.0, offered / window_s / instances), mean_hold


def advise_total(
    pool: PoolEvidence, hosts: list[HostEvidence], advices: list[Advice], window_s: float
) -> Advice:
    """The recommended total ``limit``: the pool's busy connections by Little's law
    (the pool's peak rate x the demand-weighted mean hold time), with headroom, and never
    below a recommended per-host limit."""
    configured = pool.limit
    found = pool_busy(pool, hosts, window_s)
    if found is None:
        offered = sum(h.offered for h in hosts)
        return Advice(None if configured else configured, [
            f"too thin to advise on limit: {offered:.0f} acquisitions in the window"
        ])  # fmt: skip
    rate, mean_hold = found
    busy = rate * mean_hold
    needed = needed_connections(busy)
    reasons = [_little_line(rate, mean_hold, "weighted by the hosts' demand", busy, needed)]
    advice = Advice(configured, reasons, busy, needed)
    if not configured:
        if configured == 0:
            reasons.append("no total limit is set (limit=0): nothing to raise")
        return advice
    _judge_total(advice, pool, hosts, configured, needed)
    per_host = max((a.recommended or 0 for a in advices), default=0)
    if per_host > (advice.recommended or 0):
        advice.recommended = per_host
        reasons.append(f"raised to {per_host}: a per-host limit above the total never binds")
    return advice


def _judge_total(
    advice: Advice, pool: PoolEvidence, hosts: list[HostEvidence], configured: int, needed: int
) -> None:
    """Raise the total limit, or not, and say why."""
    share = sum(h.queued.get("limit", 0.0) for h in hosts) / sum(h.offered for h in hosts)
    reasons = advice.reasons
    if any(h.holds_connections for h in hosts) and share >= MATTERS_SHARE:
        reasons.append("connections are held, not used (see the findings): fix that first")
    elif needed > configured or share >= MATTERS_SHARE:
        advice.recommended = max(needed, configured + 1)
        reasons.append(
            f"{share:.0%} of acquisitions queued on the total limit {configured}: raise "
            f"limit to {advice.recommended}"
        )
    else:
        reasons.append(
            f"no change: {needed} needed <= the configured {configured}; peak active "
            f"{_fmt(pool.peak_active)} across hosts"
        )
    if pool.peak_active is not None and pool.peak_active > configured:
        reasons.append(
            f"peak active {pool.peak_active:.0f} > limit {configured}: aiohttp hands out idle "
            "pooled connections without checking limit; it binds only when a request must dial"
        )


def _fmt(value: Optional[float]) -> str:
    return "?" if value is None else f"{value:.0f}"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"
