"""The advice as one JSON-ready object: what ``--json`` prints and the text renders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from .findings import find
from .model import HostEvidence, PoolEvidence, advise_host, advise_total, hold_time


def _round(value: Optional[float], digits: int = 4) -> Optional[float]:
    return None if value is None else round(value, digits)


def evidence(h: HostEvidence, window_s: float, busy: Optional[float],
             needed: Optional[int]) -> dict[str, Any]:  # fmt: skip
    """The numbers behind one host's advice (counts over the window, times in s)."""
    hold = hold_time(h, window_s)
    share = h.queued_share
    return {
        "pool_name": h.pool_name,
        "instances": h.instances,
        "limit": h.limit,
        "peak_active": _round(h.peak_active, 1),
        "mean_active": _round(h.mean_active, 3),
        "active_samples": h.active_samples,
        "peak_pending": _round(h.peak_pending, 1),
        "acquisitions": round(h.acquisitions, 1),
        "acquisitions_per_s": round(h.acquisitions / window_s, 3),
        "peak_offered_per_s": _round(h.peak_rate, 3),
        "peak_rate_range_s": h.peak_range_s,
        "created": round(h.created, 1),
        "reused": round(h.reused, 1),
        "closed": round(h.closed, 1),
        "queued": round(h.queued_total, 1),
        "queued_share": _round(share),
        "queued_by_limit": {k: round(v, 1) for k, v in sorted(h.queued.items())},
        "pool_wait_timeouts": round(h.timeouts, 1),
        "wait_p95_s": _round(h.wait_p95, 6),
        "wait_p99_s": _round(h.wait_p99, 6),
        "hold_p50_s": _round(h.hold_p50, 6),
        "hold_p99_s": _round(h.hold_p99, 6),
        "hold_mean_s": _round(hold.mean if hold else None, 6),
        "hold_source": hold.source if hold else None,
        "busy_connections": _round(busy, 3),
        "needed_connections": needed,
        "held_too_long_peak": _round(h.held_too_long_peak, 1),
        "releases": {f"{r}/{o}": round(n, 1) for (r, o), n in sorted(h.releases.items())},
    }


@dataclass
class Report:
    """The advice as printed by ``--json`` (``json``) and the reasons behind its total
    ``limit`` (the text prints them; in JSON a finding carries them when it changes)."""

    json: dict[str, Any]
    limit_reasons: list[str]


def build(service: str, window_s: float, pool: PoolEvidence, hosts: list[HostEvidence]) -> Report:
    """The whole advice: ``{"window_s", "service", "limit", "recommended_limit",
    "hosts": [...], "findings": [...]}``."""
    advices = [advise_host(h, window_s) for h in hosts]
    total = advise_total(pool, hosts, advices, window_s)
    return Report({
        "window_s": window_s,
        "service": service,
        "limit": pool.limit,
        "recommended_limit": total.recommended,
        "hosts": [
            {
                "server_address": h.server_address,
                "server_port": h.server_port,
                "limit_per_host": h.limit_per_host,
                "recommended_limit_per_host": a.recommended,
                "blocking_limit": h.blocking_limit,
                "evidence": evidence(h, window_s, a.busy, a.needed),
                "reasons": a.reasons,
            }
            for h, a in zip(hosts, advices)
        ],
        "findings": [
            {"kind": f.kind, "server_address": f.server_address, "message": f.message}
            for f in find(pool, hosts, total, window_s)
        ],
    }, total.reasons)  # fmt: skip
