"""The PromQL behind the advice, and its answers as :class:`~.model.HostEvidence`.

Names are the plugin's instruments as Prometheus sees them after the Collector's
prometheus exporter (dots become underscores, counters end in ``_total``, histograms
in ``_seconds_bucket``). The service is the ``job`` label, which that exporter derives
from ``service.name`` (``service.namespace/service.name`` when a namespace is set).
Each series is per instance; host keys are summed over instances, except peaks, which
are the busiest instance's (a limit is per process).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Optional

from .model import HostEvidence, PoolEvidence
from .prometheus import Prometheus
from .window import promql_range

PREFIX = "aiohttp_client_connection_"
ACTIVE = 'http_client_open_connections{%s, http_connection_state="active"}'
HOST = "server_address, server_port, aiohttp_pool_name"
POOL = "aiohttp_pool_name"

MAX_STEPS = 2000

HostKey = tuple[str, Optional[int], Optional[str]]
Series = dict[HostKey, float]


class NoSeries(Exception):
    """Prometheus answers, but holds none of the plugin's series for the service."""


def job_matcher(service: str) -> str:
    """``job`` matching ``service``, with or without a ``service.namespace/`` prefix."""
    pattern = re.escape(service)
    literal = (pattern + "|.+/" + pattern).replace("\\", "\\\\").replace('"', '\\"')
    return f'job=~"{literal}"'


def default_rate_range(window_s: float, scrape_interval: Optional[float]) -> float:
    """The range of a peak rate: 4 scrape intervals (as Grafana's ``$__rate_interval``),
    at least 10 s, at most half the window; 1 minute if the interval is unknown."""
    wanted = 60.0 if scrape_interval is None else max(10.0, 4 * scrape_interval)
    return min(wanted, window_s / 2)


@dataclass(frozen=True)
class Ranges:
    """The window and the short range a peak rate is taken over, as PromQL writes them."""

    window: str
    rate: str
    step: str
    rate_s: float

    @classmethod
    def of(cls, window_s: float, rate_s: float) -> Ranges:
        """A peak-rate step of a quarter of the rate range, at most ``MAX_STEPS`` per window
        (a week's window stays a few thousand points per series)."""
        rate_s = min(rate_s, window_s)
        step = max(1.0, rate_s / 4, window_s / MAX_STEPS)
        return cls(promql_range(window_s), promql_range(rate_s), promql_range(step), rate_s)


def _number(sample: dict[str, Any]) -> Optional[float]:
    value = float(sample["value"][1])
    return None if math.isnan(value) or math.isinf(value) else value


def counted(selection: str, window: str) -> str:
    """What a counter counted over ``selection`` (``metric{...}[window]``), per series.

    Exact where it did not reset: last - first sample, not ``increase()``'s extrapolation
    to the range's edges. A series born inside the window also counts its first sample:
    the plugin creates a labelled series (releases of one reason, acquisitions queued on
    one limit) at its first event and counts it from 0, so its first scrape already holds
    events of the window. (After a gap in the data, such as a restarted Collector, old
    counts would look new: choose a window that starts after it.) Across a reset (a
    process restarted in place): ``increase()``.
    """
    span = f"(max_over_time({selection}) - min_over_time({selection}))"
    born = f"(min_over_time({selection}) unless max_over_time({selection} offset {window}))"
    exact = f"({span} + {born} or {span})"
    return f"({exact} unless resets({selection}) > 0) or increase({selection})"


def pool_key(labels: dict[str, str]) -> Optional[str]:
    """The pool name of a series' labels (``None``: unnamed)."""
    return labels.get(POOL) or None


def host_key(labels: dict[str, str]) -> HostKey:
    """(server_address, server_port, pool name) of a series' labels."""
    port = labels.get("server_port")
    return (
        labels.get("server_address", ""),
        int(port) if port and port.isdigit() else None,
        labels.get(POOL) or None,
    )


class Reader:
    """Reads one service's pool series over one window."""

    def __init__(self, prometheus: Prometheus, service: str, ranges: Ranges) -> None:
        self.prometheus = prometheus
        self.service = service
        self.selector = job_matcher(service)
        self.ranges = ranges

    # --- helpers -----------------------------------------------------------------

    def _by(self, expr: str, key: Callable[[dict[str, str]], Any] = host_key) -> dict[Any, float]:
        out: dict[Any, float] = {}
        for sample in self.prometheus.query(expr):
            value = _number(sample)
            if value is not None:
                out[key(sample["metric"])] = value
        return out

    def _fill(self, template: str) -> str:
        """``template`` with ``$S`` (the service's selector), ``$W`` (the window), ``$H``
        (the host-key labels) and ``$P`` (the metric prefix) filled in."""
        return (template.replace("$S", self.selector).replace("$W", self.ranges.window)
                .replace("$H", HOST).replace("$P", PREFIX))  # fmt: skip

    def _hosts(self, template: str) -> Series:
        return self._by(self._fill(template))

    def _increase(self, counter: str, by: str = "$H") -> str:
        return self._fill(f"sum by ({by}) ({counted(f'$P{counter}_total{{$S}}[$W]', '$W')})")

    def _quantile(self, q: float, histogram: str) -> Series:
        bucket = f"increase($P{histogram}_seconds_bucket{{$S}}[$W])"
        return self._hosts(f"histogram_quantile({q}, sum by ($H, le) ({bucket}))")

    def _peak_rate(self, by: str, key: Callable[[dict[str, str]], Any]) -> dict[Any, float]:
        """The busiest instance's peak offered rate (served + timed out) per ``by``."""
        r, s = self.ranges, self.selector
        parts = " + ".join(
            f"sum by (instance, {by}) (rate({PREFIX}{c}_total{{{s}}}[{r.rate}]))"
            for c in ("created", "reused", "timeouts")
        )
        return self._by(f"max by ({by}) (max_over_time(({parts})[{r.window}:{r.step}]))", key)

    # --- what the advice reads ---------------------------------------------------------

    def scrape_interval(self, window_s: float) -> Optional[float]:
        """About how often Prometheus sampled the service: the window over the samples of
        its longest-lived series (``None`` if fewer than two)."""
        w = self.ranges.window
        found = self._by(
            f"max(count_over_time({PREFIX}created_total{{{self.selector}}}[{w}]))", lambda m: ""
        )
        samples = found.get("", 0.0)
        return window_s / samples if samples >= 2 else None

    def check_present(self) -> None:
        """Raise :class:`NoSeries` naming the services that do have pool series."""
        w = self.ranges.window
        found = self._by(f"count(last_over_time({PREFIX}created_total{{{self.selector}}}[{w}]))",
                         key=lambda m: "")  # fmt: skip
        if found.get("", 0) > 0:
            return
        jobs = sorted(self._by(f"count by (job) (last_over_time({PREFIX}created_total[{w}]))",
                               key=lambda m: m.get("job", "")))  # fmt: skip
        others = f"; services with pool series: {', '.join(jobs[:10])}" if jobs else (
            "; it holds no aiohttp-pool-otel series at all (is the Collector's prometheus "
            "exporter scraped?)"
        )  # fmt: skip
        raise NoSeries(
            f"Prometheus at {self.prometheus.url} holds no series of service "
            f"{self.service!r} (label job) in the last {w}{others}"
        )

    def hosts(self) -> list[HostEvidence]:
        """Every host key of the service with its evidence, busiest first."""
        counts = {
            c: self._hosts(self._increase(c)) for c in ("created", "reused", "closed", "timeouts")
        }
        instances = self._hosts(
            "count by ($H) (count by (instance, $H) (last_over_time($Pcreated_total{$S}[$W])))"
        )
        hosts: dict[HostKey, HostEvidence] = {
            key: HostEvidence(key[0], key[1], key[2], instances=int(instances.get(key, 1)))
            for key in set().union(*counts.values())
        }
        for name, series in counts.items():
            for key, value in series.items():
                setattr(hosts[key], name, value)
        self._fill_gauges(hosts)
        self._fill_labelled(hosts)
        self._fill_times(hosts)
        rates = self._peak_rate(HOST, host_key)
        for key, h in hosts.items():
            h.peak_rate = rates.get(key)
            h.peak_range_s = self.ranges.rate_s
        return sorted(hosts.values(), key=lambda h: (-h.offered, h.server_address))

    def _fill_gauges(self, hosts: dict[HostKey, HostEvidence]) -> None:
        active = ACTIVE % "$S"
        fills: dict[str, Series] = {
            "limit_per_host": self._hosts("max by ($H) (last_over_time($Pmax_per_host{$S}[$W]))"),
            "peak_active": self._hosts(f"max by ($H) (max_over_time({active}[$W]))"),
            "mean_active": self._hosts(f"sum by ($H) (avg_over_time({active}[$W]))"),
            "active_samples": self._hosts(f"max by ($H) (count_over_time({active}[$W]))"),
            "peak_pending": self._hosts(
                "max by ($H) (max_over_time($Ppending_requests{$S}[$W]))"),
            "held_too_long_peak": self._hosts(
                "max by ($H) (max_over_time($Pheld_too_long{$S}[$W]))"),
        }  # fmt: skip
        limits = self.pool_limits()
        for key, h in hosts.items():
            for name, series in fills.items():
                if key in series:
                    value = series[key]
                    setattr(h, name, int(value) if name == "limit_per_host" else value)
            if key[2] in limits:
                h.limit = limits[key[2]]

    def _fill_labelled(self, hosts: dict[HostKey, HostEvidence]) -> None:
        reason, outcome = "aiohttp_connection_release_reason", "aiohttp_connection_release_outcome"
        blocking = "aiohttp_pool_blocking_limit"
        for sample in self.prometheus.query(self._increase("queued", f"$H, {blocking}")):
            h, value = hosts.get(host_key(sample["metric"])), _number(sample)
            if h is not None and value:
                h.queued[sample["metric"].get(blocking, "")] = value
        query = self._increase("releases", f"$H, {reason}, {outcome}")
        for sample in self.prometheus.query(query):
            h, value = hosts.get(host_key(sample["metric"])), _number(sample)
            if h is not None and value:
                labels = sample["metric"]
                h.releases[(labels.get(reason, ""), labels.get(outcome, ""))] = value

    def _fill_times(self, hosts: dict[HostKey, HostEvidence]) -> None:
        fills = {
            "wait_p95": self._quantile(0.95, "wait_time"),
            "wait_p99": self._quantile(0.99, "wait_time"),
            "hold_p50": self._quantile(0.5, "use_time"),
            "hold_p99": self._quantile(0.99, "use_time"),
            "hold_mean": self._hosts(
                "sum by ($H) (increase($Puse_time_seconds_sum{$S}[$W])) / "
                "sum by ($H) (increase($Puse_time_seconds_count{$S}[$W]))"
            ),
        }
        for key, h in hosts.items():
            for name, series in fills.items():
                setattr(h, name, series.get(key))

    def pool_limits(self) -> dict[Optional[str], int]:
        """The total ``limit`` per pool name (the largest instance's, if they differ)."""
        w, s = self.ranges.window, self.selector
        found = self._by(f"max by ({POOL}) (last_over_time({PREFIX}max{{{s}}}[{w}]))",
                         key=pool_key)  # fmt: skip
        return {k: int(v) for k, v in found.items()}

    def pool(self, hosts: list[HostEvidence]) -> PoolEvidence:
        """The pool-wide evidence: its limit, peak offered rate and peak active."""
        limits = self.pool_limits()
        rates = self._peak_rate(POOL, pool_key)
        r, s = self.ranges, self.selector
        active = ACTIVE % s
        peaks = self._by(
            f"max by ({POOL}) (max_over_time((sum by (instance, {POOL}) ({active}))"
            f"[{r.window}:{r.step}]))", pool_key,
        )  # fmt: skip
        limit = max(limits.values()) if limits else None
        return PoolEvidence(
            limit=limit,
            peak_rate=max(rates.values()) if rates else None,
            peak_active=max(peaks.values()) if peaks else None,
        )
