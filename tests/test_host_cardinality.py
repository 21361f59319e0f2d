"""``max_hosts`` bounds what is exported, every instrument included.

No instrument (gauges, counters, histograms) may ever carry more than ``max_hosts`` + 1
(``_OTHER``) distinct host attribute sets per connector, and the first ``max_hosts`` hosts
keep their series for the connector's life; at the default setting every instrument
stays under the SDK's default cardinality limit of 2 000 points.

Thousands of host keys cheaply: one tiny canned HTTP/1.1 server per port on 127.0.0.1.
Metrics are collected after every batch of hosts, as a periodic reader would: series the
SDK has seen once stay in its books.
"""

from __future__ import annotations

import resource
from typing import Any

import aiohttp
import pytest

from aiohttp_pool_otel import semconv as sc

from .conftest import Telemetry
from .rig.canned_servers import close_servers, gather_bounded, port_of, start_canned_servers
from .rig.metric_points import Collection, collect

SDK_DEFAULT_CARDINALITY_LIMIT = 2000
OVERFLOW = "otel.metric.overflow"


async def _get(session: aiohttp.ClientSession, port: int) -> None:
    async with session.get(f"http://127.0.0.1:{port}/") as resp:
        await resp.read()


def _merge(into: dict[str, set[tuple[Any, ...]]], m: Collection) -> None:
    for name in m.points:
        if name.startswith(("http.client.", "aiohttp.client.", "dns.")):
            into.setdefault(name, set()).update(m.host_sets(name))


async def test_max_hosts_bounds_every_instrument(telemetry: Telemetry) -> None:
    hosts, max_hosts = 60, 10
    servers = await start_canned_servers(hosts)
    ports = [port_of(s) for s in servers]
    # force_close: every pool empties after its request, the case where host records
    # used to be forgotten and replaced, each new host leaving series behind.
    connector = telemetry.connector(max_hosts=max_hosts, force_close=True)
    seen: dict[str, set[tuple[Any, ...]]] = {}
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            for port in ports[:max_hosts]:  # these come first: they keep their series
                await _get(session, port)
            _merge(seen, collect(telemetry.reader))
            for start in range(max_hosts, hosts, 10):
                results = await gather_bounded(
                    [_get(session, p) for p in ports[start : start + 10]], 10
                )
                assert all(r is None for r in results), results
                _merge(seen, collect(telemetry.reader))
            stats = connector.statistics()
        _merge(seen, collect(telemetry.reader))
    finally:
        await close_servers(servers)
    first = {("127.0.0.1", p, "http") for p in ports[:max_hosts]}
    # Instruments without host attributes (the connector-wide limit) have one set.
    with_hosts = {n: s for n, s in seen.items() if s != {(None, None, None)}}
    for name in (sc.METRIC_CREATE_TIME, sc.METRIC_CONNECTION_DURATION, sc.METRIC_CREATED,
                 sc.METRIC_CLOSED):  # fmt: skip
        assert name in with_hosts, sorted(seen)
    too_many = {n: len(s) for n, s in with_hosts.items() if len(s) > max_hosts + 1}
    assert not too_many, f"instruments with more than max_hosts+1 host series: {too_many}"
    for name, sets in with_hosts.items():
        own = {s for s in sets if s[0] != sc.OTHER_HOST}
        assert own <= first, (name, sorted(own - first)[:5])
    # Folding hosts into _OTHER loses no count.
    assert stats.created == stats.closed == hosts, stats


@pytest.fixture
def many_fds() -> None:
    """Room for ~1 100 listening sockets plus both ends of ~1 100 idle connections."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 8192
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.skip(f"needs 4096 open files, the hard limit is {hard}")
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        yield
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    else:
        yield


@pytest.mark.usefixtures("many_fds")
async def test_default_max_hosts_stays_under_the_sdk_cardinality_limit(
    telemetry: Telemetry,
) -> None:
    hosts = 1100
    servers = await start_canned_servers(hosts)
    ports = [port_of(s) for s in servers]
    connector = telemetry.connector()  # default max_hosts, keep-alive: hosts stay idle
    points: dict[str, int] = {}
    overflow: set[str] = set()
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            for start in range(0, hosts, 100):
                results = await gather_bounded(
                    [_get(session, p) for p in ports[start : start + 100]], 50
                )
                assert all(r is None for r in results), [r for r in results if r][:3]
                m = collect(telemetry.reader)
                for name, pts in m.points.items():
                    points[name] = max(points.get(name, 0), len(pts))
                    if any(a.get(OVERFLOW) for a, _ in pts):
                        overflow.add(name)
            stats = connector.statistics()
    finally:
        await close_servers(servers)
    assert not overflow, f"the SDK folded series into {OVERFLOW}: {sorted(overflow)}"
    too_many = {n: c for n, c in points.items() if c >= SDK_DEFAULT_CARDINALITY_LIMIT}
    assert not too_many, f"instruments at the SDK's cardinality limit: {too_many}"
    assert (stats.created, stats.idle) == (hosts, hosts), stats
