"""The arithmetic of ``advise`` and its findings, on evidence built by hand: Little's law
with square-root headroom, when to say "no change" or "too thin", which limit blocked,
and what each finding needs to fire (and not to)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from aiohttp_pool_otel.advise.findings import Finding, find
from aiohttp_pool_otel.advise.model import (
    HostEvidence,
    PoolEvidence,
    advise_host,
    advise_total,
    hold_time,
    needed_connections,
)
from aiohttp_pool_otel.advise.prometheus import split_credentials
from aiohttp_pool_otel.advise.queries import default_rate_range, job_matcher
from aiohttp_pool_otel.advise.render import text, verdict
from aiohttp_pool_otel.advise.report import build
from aiohttp_pool_otel.advise.window import parse_duration, promql_range

WINDOW = 60.0


def host(**fields: Any) -> HostEvidence:
    """A host key with steady traffic: 20/s served over the window, 50 ms holds."""
    values: dict[str, Any] = {
        "server_address": "api.example", "server_port": 443, "limit_per_host": 10,
        "limit": 100, "created": 10.0, "reused": 20 * WINDOW - 10, "peak_rate": 20.0,
        "hold_mean": 0.05, "peak_active": 3.0, "mean_active": 1.0, "active_samples": 60.0,
    }  # fmt: skip
    values.update(fields)
    return HostEvidence(**values)


def kinds(found: list[Finding]) -> list[str]:
    return [f.kind for f in found]


# --- the arithmetic -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("busy", "needed"),
    [(0.0, 1), (0.25, 2), (1.0, 3), (5.0, 10), (100.0, 120)],
)
def test_needed_connections_is_busy_plus_two_sqrt_busy_rounded_up(busy: float, needed: int) -> None:
    assert needed_connections(busy) == needed
    assert needed >= busy + 2 * math.sqrt(busy) - 1e-9


def test_an_overloaded_host_is_sized_from_the_offered_rate_not_the_served_one() -> None:
    # limit_per_host=2 serves 40/s at 50 ms; 100/s offered: 60/s time out waiting.
    h = host(limit_per_host=2, created=2, reused=40 * WINDOW - 2, timeouts=60 * WINDOW,
             queued={"limit_per_host": 90 * WINDOW}, peak_rate=100.0)  # fmt: skip
    advice = advise_host(h, WINDOW)
    assert advice.busy == pytest.approx(5.0)
    assert advice.recommended == 10
    assert h.blocking_limit == "per_host"
    assert "100.0 acquisitions/s" in advice.reasons[0] and "-> 10" in advice.reasons[0]


def test_a_host_that_fits_its_limit_gets_no_change() -> None:
    h = host()
    advice = advise_host(h, WINDOW)
    assert advice.recommended == 10 and advice.needed == 3
    assert h.blocking_limit is None
    assert advice.reasons[-1].startswith("no change")


def test_a_limit_below_the_need_is_raised_before_anything_queues() -> None:
    advice = advise_host(host(limit_per_host=3, peak_rate=100.0), WINDOW)
    assert advice.recommended == 10


def test_a_bursty_host_that_queues_within_its_average_is_raised_by_at_most_double() -> None:
    h = host(limit_per_host=4, queued={"limit_per_host": 0.1 * 20 * WINDOW},
             peak_active=4.0, peak_pending=30.0)  # fmt: skip
    advice = advise_host(h, WINDOW)
    assert advice.needed == 3
    assert advice.recommended == 8  # min(4 + 30, 2 x 4)
    assert "bursts" in advice.reasons[-1]


def test_thin_data_gets_no_advice_and_says_why() -> None:
    few = advise_host(host(created=5, reused=10, peak_rate=0.3), WINDOW)
    assert few.recommended is None and "too thin" in few.reasons[0] and "15 acq" in few.reasons[0]
    blind = advise_host(host(hold_mean=None, mean_active=None), WINDOW)
    assert blind.recommended is None and "record_hold_time=True" in blind.reasons[0]


def test_without_use_time_littles_law_estimates_the_hold_time_backwards() -> None:
    # 20/s served, 1.5 connections active on average -> 75 ms each.
    h = host(hold_mean=None, mean_active=1.5)
    hold = hold_time(h, WINDOW)
    assert hold is not None and hold.source == "little"
    assert hold.mean == pytest.approx(0.075)
    rough = advise_host(host(hold_mean=None, mean_active=1.5, active_samples=6), WINDOW)
    assert any(r.startswith("rough: ") and "6 samples" in r for r in rough.reasons)


def test_held_connections_are_not_papered_over_with_a_higher_limit() -> None:
    h = host(limit_per_host=2, releases={("gc", "closed"): 5.0}, peak_rate=100.0,
             queued={"limit_per_host": 500.0})  # fmt: skip
    advice = advise_host(h, WINDOW)
    assert advice.recommended == 2
    assert "fix that first" in advice.reasons[-1]


def test_unset_per_host_limits_and_folded_hosts_keep_their_configuration() -> None:
    assert advise_host(host(limit_per_host=0, peak_rate=500.0), WINDOW).recommended == 0
    other = advise_host(host(server_address="_OTHER", server_port=None), WINDOW)
    assert other.recommended == 10 and "max_hosts" in other.reasons[0]


def test_the_blocking_limit_is_the_one_most_acquisitions_queued_on() -> None:
    assert host(queued={"limit": 5.0, "limit_per_host": 2.0}).blocking_limit == "total"
    assert host(queued={"limit": 1.0, "limit_per_host": 2.0}).blocking_limit == "per_host"
    assert host(queued={"limit": 0.0}).blocking_limit is None


def _ten_hosts(limit: int, queued_on_total: float) -> list[HostEvidence]:
    return [
        host(server_port=8000 + i, limit_per_host=0, limit=limit, peak_rate=10.0,
             created=5, reused=10 * WINDOW - 5, queued={"limit": queued_on_total})
        for i in range(10)
    ]  # fmt: skip


def test_the_total_limit_is_sized_from_the_pools_peak_rate() -> None:
    hosts = _ten_hosts(limit=2, queued_on_total=30.0)
    advices = [advise_host(h, WINDOW) for h in hosts]
    pool = PoolEvidence(limit=2, peak_rate=100.0, peak_active=6.0)
    total = advise_total(pool, hosts, advices, WINDOW)
    assert total.busy == pytest.approx(5.0) and total.recommended == 10
    assert any("without checking limit" in r for r in total.reasons)  # 6 active > 2
    found = find(pool, hosts, total, WINDOW)
    assert kinds(found)[0] == "total_limit_blocking"
    assert found[0].server_address is None and "raise limit to 10" in found[0].message


def test_the_total_limit_is_never_below_a_recommended_per_host_limit() -> None:
    hosts = [host(limit_per_host=2, limit=4, peak_rate=100.0)]
    advices = [advise_host(h, WINDOW) for h in hosts]
    # The pool as a whole fits 4 (its peak is lower than this host's own)...
    total = advise_total(PoolEvidence(4, 10.0, 4.0), hosts, advices, WINDOW)
    assert total.needed == 3
    # ... but a per-host limit of 10 under a total of 4 would never bind.
    assert advices[0].recommended == 10 and total.recommended == 10
    assert "never binds" in total.reasons[-1]


def test_a_pool_without_a_total_limit_keeps_none() -> None:
    hosts = _ten_hosts(limit=0, queued_on_total=0.0)
    advices = [advise_host(h, WINDOW) for h in hosts]
    total = advise_total(PoolEvidence(0, 100.0, 6.0), hosts, advices, WINDOW)
    assert total.recommended == 0


# --- findings --------------------------------------------------------------------------


def _found(h: HostEvidence) -> list[str]:
    advice = advise_total(PoolEvidence(100, h.peak_rate, 3.0), [h], [], WINDOW)
    return kinds(find(PoolEvidence(100, h.peak_rate, 3.0), [h], advice, WINDOW))


def test_a_healthy_host_has_no_findings() -> None:
    assert _found(host(releases={("eof", "pooled"): 1200.0})) == []


def test_leaks_and_held_connections_are_found() -> None:
    assert "leak" in _found(host(releases={("gc", "closed"): 1.0}))
    assert "held_too_long" in _found(host(held_too_long_peak=2.0))
    assert "held_too_long" not in _found(host(held_too_long_peak=0.0))


def test_unread_bodies_are_found_from_releases_before_the_body_end() -> None:
    h = host(releases={("release", "closed"): 100.0, ("eof", "pooled"): 1100.0})
    assert "unread_bodies" in _found(h)
    rare = host(releases={("close", "closed"): 5.0, ("eof", "pooled"): 1195.0})
    assert "unread_bodies" not in _found(rare)  # under 1 %: errors and cancellations


@pytest.mark.parametrize(
    ("releases", "closed", "cause"),
    [
        ({("eof", "closed"): 1200.0}, 1200.0, "force_close=True"),
        ({("eof", "pooled"): 1200.0}, 1190.0, "keepalive_timeout"),
    ],
)
def test_keepalive_defeat_is_found_with_its_cause(
    releases: dict[tuple[str, str], float], closed: float, cause: str
) -> None:
    h = host(created=1200.0, reused=0.0, closed=closed, releases=releases)
    advice = advise_total(PoolEvidence(100, 20.0, 3.0), [h], [], WINDOW)
    (finding,) = [f for f in find(PoolEvidence(100, 20.0, 3.0), [h], advice, WINDOW)
                  if f.kind == "keepalive_defeated"]  # fmt: skip
    assert cause in finding.message and "1200 connections dialled" in finding.message


def test_pool_wait_timeouts_and_a_missing_hold_time_are_said() -> None:
    assert "pool_wait_timeouts" in _found(host(timeouts=3.0))
    assert "hold_time_not_recorded" in _found(host(hold_mean=None))


# --- report, text, inputs ----------------------------------------------------------------


def test_the_json_is_one_object_of_the_documented_shape() -> None:
    h = host(limit_per_host=2, peak_rate=100.0, queued={"limit_per_host": 900.0})
    report = build("checkout", WINDOW, PoolEvidence(100, 100.0, 2.0), [h])
    data = json.loads(json.dumps(report.json))
    assert list(data) == ["window_s", "service", "limit", "recommended_limit", "hosts",
                          "findings"]  # fmt: skip
    (entry,) = data["hosts"]
    assert list(entry) == ["server_address", "server_port", "limit_per_host",
                           "recommended_limit_per_host", "blocking_limit", "evidence",
                           "reasons"]  # fmt: skip
    assert (entry["limit_per_host"], entry["recommended_limit_per_host"]) == (2, 10)
    assert entry["blocking_limit"] == "per_host"
    assert entry["evidence"]["busy_connections"] == pytest.approx(5.0)
    shown = text(report, "http://prometheus:9090")
    assert "api.example:443   limit_per_host 2 -> 10" in shown
    assert "limit 100: no change" in shown


def test_verdicts() -> None:
    assert verdict(2, 10) == "2 -> 10"
    assert verdict(10, 10) == "10: no change"
    assert verdict(10, None) == "10: too thin to advise"
    assert verdict(0, 0) == "none (0): no change"


@pytest.mark.parametrize(
    ("given", "seconds"), [("30m", 1800), ("1h30m", 5400), ("90s", 90), ("500ms", 0.5)]
)
def test_windows_are_read_as_prometheus_writes_them(given: str, seconds: float) -> None:
    assert parse_duration(given) == seconds
    assert promql_range(seconds) in (f"{int(seconds)}s", "500ms")


@pytest.mark.parametrize("bad", ["30x", "", "m", "0s", "-5m", "30 m"])
def test_a_bad_window_is_named(bad: str) -> None:
    with pytest.raises(ValueError, match="is not a duration") as error:
        parse_duration(bad)
    assert repr(bad) in str(error.value)


def test_credentials_and_query_strings_never_leave_the_url() -> None:
    url, auth = split_credentials("https://ops:s3cret@prom.example:9443/prom/?token=abc#x")
    assert url == "https://prom.example:9443/prom"
    assert auth == "Basic b3BzOnMzY3JldA=="
    with pytest.raises(ValueError, match="is not an http") as error:
        split_credentials("ftp://ops:s3cret@prom.example/")
    assert "s3cret" not in str(error.value) and "ftp://prom.example" in str(error.value)


def test_the_service_is_matched_literally_with_or_without_a_namespace() -> None:
    assert job_matcher("shop.api") == 'job=~"shop\\\\.api|.+/shop\\\\.api"'


def test_hosts_too_quiet_to_advise_share_one_line_of_text() -> None:
    busy = host(limit_per_host=2, peak_rate=100.0)
    quiet = [host(server_address=f"idle{i}.example", created=1, reused=2) for i in range(12)]
    report = build("checkout", WINDOW, PoolEvidence(100, 100.0, 2.0), [busy, *quiet])
    assert len(report.json["hosts"]) == 13  # JSON keeps every host key
    shown = text(report, "http://prometheus:9090")
    assert shown.count("limit_per_host 2 -> 10") == 2  # the summary line and the block
    block = " ".join(shown.split("12 quiet", 1)[1].split("\n\n", 1)[0].split())
    assert block.startswith("too little traffic to advise: idle0.example:443, idle1")
    assert "idle9.example:443, ..." in block and "idle10" not in shown
    assert "1 host key(s)" not in shown and "12 host key(s) too thin" in shown.splitlines()[1]


@pytest.mark.parametrize(
    ("window", "scrape", "rate"),
    [(1800, 15.0, 60.0), (1800, 5.0, 20.0), (1800, 1.0, 10.0), (1800, None, 60.0),
     (30, 15.0, 15.0)],
)  # fmt: skip
def test_a_peak_rate_spans_four_scrapes(window: float, scrape: float, rate: float) -> None:
    assert default_rate_range(window, scrape) == rate
