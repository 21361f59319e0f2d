"""The advice as text for a terminal: the verdict first, then the numbers behind it."""

from __future__ import annotations

import textwrap
from typing import Any, Optional

from .model import MIN_ACQUISITIONS
from .report import Report
from .window import human

WIDTH = 100
LABEL = 20  # width of the evidence labels


def verdict(configured: Optional[int], recommended: Optional[int]) -> str:
    """``2 -> 10``, ``10: no change``, ``?: too thin to advise``."""
    shown = "?" if configured is None else ("none (0)" if configured == 0 else str(configured))
    if recommended is None:
        return f"{shown}: too thin to advise"
    if recommended == configured:
        return f"{shown}: no change"
    return f"{shown} -> {recommended}"


def _seconds(value: Optional[float]) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _number(value: Optional[float], digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _line(label: str, text: str) -> list[str]:
    wrapped = textwrap.wrap(text, WIDTH - LABEL - 2) or [""]
    first = f"  {label:<{LABEL}}{wrapped[0]}"
    return [first] + [" " * (LABEL + 2) + more for more in wrapped[1:]]


def _demand(e: dict[str, Any], blocking: Optional[str]) -> str:
    text = f"{e['acquisitions_per_s']:.2f} acquisitions/s served"
    if e["instances"] > 1:
        text += " (all instances)"
    if e["peak_offered_per_s"] is not None:
        rate_range = f"{e['peak_rate_range_s']:g}s " if e["peak_rate_range_s"] else ""
        text += f", peak {e['peak_offered_per_s']:.2f}/s offered ({rate_range}rate"
        text += ", busiest instance)" if e["instances"] > 1 else ")"
    share = e["queued_share"]
    if share:
        by = ", ".join(f"{k} {v:.0f}" for k, v in e["queued_by_limit"].items())
        text += f"; {share:.1%} queued ({by}), blocked by {blocking}"
    else:
        text += "; none queued"
    return text


def host_block(host: dict[str, Any]) -> list[str]:
    """One host key: its verdict, evidence and reasons."""
    e = host["evidence"]
    name = _name(host)
    extra = [f"pool {e['pool_name']}"] if e["pool_name"] else []
    if e["instances"] > 1:
        extra.append(f"{e['instances']} instances")
    title = name + (f" ({', '.join(extra)})" if extra else "")
    rec = verdict(host["limit_per_host"], host["recommended_limit_per_host"])
    hold = (
        f"p50 {_seconds(e['hold_p50_s'])}  p99 {_seconds(e['hold_p99_s'])}  "
        f"mean {_seconds(e['hold_mean_s'])} ({e['hold_source'] or 'unknown'})"
    )
    lines = [f"{title}   limit_per_host {rec}"]
    lines += _line("peak active", f"{_number(e['peak_active'])} (limit_per_host "
                   f"{_number(host['limit_per_host'])}, limit {_number(e['limit'])}); "
                   f"peak queued {_number(e['peak_pending'])}")  # fmt: skip
    lines += _line("demand", _demand(e, host["blocking_limit"]))
    lines += _line("wait (queued)", f"p95 {_seconds(e['wait_p95_s'])}  "
                   f"p99 {_seconds(e['wait_p99_s'])}")  # fmt: skip
    lines += _line("hold", hold)
    lines += _line("pool-wait timeouts", _number(e["pool_wait_timeouts"]))
    for i, reason in enumerate(host["reasons"]):
        lines += _line("why" if i == 0 else "", reason)
    return lines


def _name(host: dict[str, Any]) -> str:
    port = host["server_port"]
    return str(host["server_address"]) + ("" if port is None else f":{port}")


def _is_quiet(host: dict[str, Any]) -> bool:
    """Too thin to advise and nothing to report: one line for all of them, not a block each."""
    e = host["evidence"]
    return (
        host["recommended_limit_per_host"] is None
        and e["acquisitions"] + e["pool_wait_timeouts"] < MIN_ACQUISITIONS
        and not e["queued"]
    )


def summary(data: dict[str, Any]) -> str:
    """One line: what to change, and how many findings."""
    changes = [
        f"limit_per_host {h['limit_per_host']} -> {h['recommended_limit_per_host']} for {_name(h)}"
        for h in data["hosts"]
        if h["recommended_limit_per_host"] not in (None, h["limit_per_host"])
    ]
    if data["recommended_limit"] not in (None, data["limit"]):
        changes.insert(0, f"limit {data['limit']} -> {data['recommended_limit']}")
    thin = sum(1 for h in data["hosts"] if h["recommended_limit_per_host"] is None)
    said = "change: " + "; ".join(changes) if changes else "no limit to change"
    if thin:
        said += f"; {thin} host key(s) too thin to advise"
    return f"{said}; {len(data['findings'])} finding(s) ({len(data['hosts'])} host keys)"


def text(report: Report, prometheus_url: str) -> str:
    """The whole advice for a terminal."""
    data = report.json
    window = human(data["window_s"])
    if window != f"{data['window_s']:g}s":
        window += f" ({data['window_s']:g} s)"
    lines = [
        f"aiohttp-pool-otel advise: service {data['service']!r}, last {window}, "
        f"from {prometheus_url}",
        summary(data),
        "",
        f"limit {verdict(data['limit'], data['recommended_limit'])}",
    ]
    for i, reason in enumerate(report.limit_reasons):
        lines += _line("why" if i == 0 else "", reason)
    quiet = [h for h in data["hosts"] if _is_quiet(h)]
    for host in data["hosts"]:
        if not _is_quiet(host):
            lines += ["", *host_block(host)]
    if quiet:
        names = ", ".join(_name(h) for h in quiet[:10]) + (", ..." if len(quiet) > 10 else "")
        lines += ["", *_line(f"{len(quiet)} quiet", f"too little traffic to advise: {names}")]
    lines += ["", "findings" if data["findings"] else "findings: none"]
    for f in data["findings"]:
        where = f" {f['server_address']}" if f["server_address"] else ""
        wrapped = textwrap.wrap(f"[{f['kind']}]{where}: {f['message']}", WIDTH - 4)
        lines += ["  ! " + wrapped[0], *("    " + w for w in wrapped[1:])]
    return "\n".join(lines)
