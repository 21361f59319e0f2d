"""Metric names, units, attribute sets, and gauges that tell the truth."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, use_span

from aiohttp_pool_otel import semconv as sc

from .conftest import Server, Telemetry, start_server
from .rig.waiting import wait_until

HOST_KEYS = {sc.SERVER_ADDRESS, sc.SERVER_PORT, sc.URL_SCHEME}


def units_and_kinds(telemetry: Telemetry) -> dict[str, tuple[str, str]]:
    data = telemetry.reader.get_metrics_data()
    assert data is not None
    out = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            assert sm.scope.name == "aiohttp_pool_otel"
            for metric in sm.metrics:
                out[metric.name] = (metric.unit, type(metric.data).__name__)
    return out


def value(points: list[tuple[dict[str, Any], Any]], **match: Any) -> Any:
    found = [v for attrs, v in points if all(attrs.get(k) == m for k, m in match.items())]
    assert len(found) == 1, (match, points)
    return found[0]


async def test_every_instrument_has_its_name_unit_and_kind(
    telemetry: Telemetry, server: Server
) -> None:
    async with aiohttp.ClientSession(
        connector=telemetry.connector(limit=3, limit_per_host=2, record_hold_time=True),
        trace_configs=[telemetry.trace_config()],
    ) as session:
        async with session.get(server.url("/small", host="localhost")) as resp:
            await resp.read()
        async with session.get(server.url("/close")) as resp:
            await resp.read()
        seen = units_and_kinds(telemetry)
    assert seen == {
        sc.METRIC_OPEN_CONNECTIONS: ("{connection}", "Sum"),
        sc.METRIC_AVAILABLE: ("{connection}", "Gauge"),
        sc.METRIC_MAX: ("{connection}", "Gauge"),
        sc.METRIC_MAX_PER_HOST: ("{connection}", "Gauge"),
        sc.METRIC_PENDING: ("{request}", "Sum"),
        sc.METRIC_CREATED: ("{connection}", "Sum"),
        sc.METRIC_REUSED: ("{connection}", "Sum"),
        sc.METRIC_CLOSED: ("{connection}", "Sum"),
        sc.METRIC_TIMEOUTS: ("{connection}", "Sum"),
        sc.METRIC_RELEASES: ("{connection}", "Sum"),
        sc.METRIC_CREATE_TIME: ("s", "Histogram"),
        sc.METRIC_USE_TIME: ("s", "Histogram"),
        sc.METRIC_CONNECTION_DURATION: ("s", "Histogram"),
        sc.METRIC_DNS_DURATION: ("s", "Histogram"),
    }


async def test_attribute_sets_and_values(telemetry: Telemetry, server: Server) -> None:
    async with aiohttp.ClientSession(
        connector=telemetry.connector(limit=25, limit_per_host=5, pool_name="api")
    ) as session:
        held = await session.get(server.url("/endless"))
        async with session.get(server.url("/small")) as resp:
            await resp.read()
        m = telemetry.metrics()
        base = {sc.SERVER_ADDRESS: "127.0.0.1", sc.SERVER_PORT: server.port,
                sc.URL_SCHEME: "http", sc.POOL_NAME: "api"}  # fmt: skip
        for name in (sc.METRIC_AVAILABLE, sc.METRIC_PENDING, sc.METRIC_CREATED):
            assert [attrs for attrs, _ in m[name]] == [base], name
        assert value(m[sc.METRIC_OPEN_CONNECTIONS], **{sc.HTTP_CONNECTION_STATE: "active"}) == 1
        assert value(m[sc.METRIC_OPEN_CONNECTIONS], **{sc.HTTP_CONNECTION_STATE: "idle"}) == 1
        assert value(m[sc.METRIC_AVAILABLE]) == 4
        assert value(m[sc.METRIC_MAX]) == 25
        assert m[sc.METRIC_MAX] == [({sc.POOL_NAME: "api"}, 25)]
        assert value(m[sc.METRIC_MAX_PER_HOST]) == 5
        assert value(m[sc.METRIC_PENDING]) == 0
        assert value(m[sc.METRIC_CREATED]) == 2
        releases = m[sc.METRIC_RELEASES]
        assert releases == [
            ({**base, sc.RELEASE_REASON: "eof", sc.RELEASE_OUTCOME: "pooled"}, 1)
        ]
        held.close()
        m = telemetry.metrics()
        assert value(m[sc.METRIC_RELEASES], **{sc.RELEASE_REASON: "close"}) == 1
        assert value(m[sc.METRIC_CLOSED]) == 1
        assert value(m[sc.METRIC_OPEN_CONNECTIONS], **{sc.HTTP_CONNECTION_STATE: "active"}) == 0
        assert value(m[sc.METRIC_AVAILABLE]) == 5


async def test_histograms_use_second_buckets(telemetry: Telemetry, server: Server) -> None:
    async with aiohttp.ClientSession(connector=telemetry.connector()) as session:
        async with session.get(server.url("/small")) as resp:
            await resp.read()
        (_, point), = telemetry.metrics()[sc.METRIC_CREATE_TIME]
    assert tuple(point.explicit_bounds) == sc.SECONDS_BUCKETS
    assert point.count == 1 and 0 < point.sum < 5


async def test_histograms_carry_no_exemplars_even_under_a_sampled_span(
    telemetry: Telemetry, server: Server
) -> None:
    # The SDK's default filter would attach the sampled request span as an exemplar
    # to every record (a cost on the queued path); the pool's spans carry that detail.
    tracer = telemetry.tracer_provider.get_tracer("test")
    async with aiohttp.ClientSession(
        connector=telemetry.connector(limit_per_host=1)
    ) as session:
        with tracer.start_as_current_span("request"):
            await asyncio.gather(*(session.get(server.url("/small")) for _ in range(3)))
        m = telemetry.metrics()
    (_, wait), = m[sc.METRIC_WAIT_TIME]
    (_, create), = m[sc.METRIC_CREATE_TIME]
    assert (wait.count, create.count) == (2, 1)  # one dial; two queued behind it
    assert list(getattr(wait, "exemplars", [])) == []
    assert list(getattr(create, "exemplars", [])) == []


async def test_pending_requests_gauge_counts_waiters(telemetry: Telemetry, server: Server) -> None:
    async with aiohttp.ClientSession(
        connector=telemetry.connector(limit_per_host=1)
    ) as session:
        held = await session.get(server.url("/endless"))
        waiters = [asyncio.create_task(session.get(server.url("/small"))) for _ in range(3)]
        await wait_until(
            lambda: session.connector.statistics().waiting == 3,  # type: ignore[union-attr]
            what="three requests queued",
        )
        m = telemetry.metrics()
        assert value(m[sc.METRIC_PENDING]) == 3
        assert value(m[sc.METRIC_AVAILABLE]) == 0
        held.close()
        for resp in await asyncio.gather(*waiters):
            resp.release()
        m = telemetry.metrics()
        assert value(m[sc.METRIC_PENDING]) == 0


async def test_gauges_return_to_zero_and_a_closed_connector_keeps_only_its_counts(
    telemetry: Telemetry, server: Server
) -> None:
    connector = telemetry.connector(limit_per_host=2, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        resp = await session.get(server.url("/endless"))
        async with session.get(server.url("/small")) as r:
            await r.read()
        m = telemetry.metrics()
        assert value(m[sc.METRIC_OPEN_CONNECTIONS], **{sc.HTTP_CONNECTION_STATE: "active"}) == 1
        assert value(m[sc.METRIC_OPEN_CONNECTIONS], **{sc.HTTP_CONNECTION_STATE: "idle"}) == 0
        resp.close()
        # The pool is empty while the connector lives: its series stay, at zero.
        m = telemetry.metrics()
        assert [v for _, v in m[sc.METRIC_OPEN_CONNECTIONS]] == [0, 0]
        assert [v for _, v in m[sc.METRIC_PENDING]] == [0]
    m = telemetry.metrics()
    # Connector closed: no pool, so no state; the final counts stay (created == closed).
    assert sc.METRIC_OPEN_CONNECTIONS not in m and sc.METRIC_PENDING not in m
    stats = connector.statistics()
    assert (stats.active, stats.idle, stats.waiting, stats.connecting) == (0, 0, 0, 0)
    assert value(m[sc.METRIC_CREATED]) == value(m[sc.METRIC_CLOSED]) == 2


async def test_hosts_beyond_max_hosts_fold_into_other(telemetry: Telemetry) -> None:
    servers = [await start_server() for _ in range(4)]
    try:
        connector = telemetry.connector(max_hosts=2)
        async with aiohttp.ClientSession(connector=connector) as session:
            held = [await session.get(srv.url("/endless")) for srv in servers]
            m = telemetry.metrics()
            addresses = sorted(a[sc.SERVER_ADDRESS] for a, _ in m[sc.METRIC_CREATED])
            assert addresses == ["127.0.0.1", "127.0.0.1", sc.OTHER_HOST]
            assert value(m[sc.METRIC_CREATED], **{sc.SERVER_ADDRESS: sc.OTHER_HOST}) == 2
            active = [
                v for a, v in m[sc.METRIC_OPEN_CONNECTIONS]
                if a[sc.HTTP_CONNECTION_STATE] == "active"
            ]  # fmt: skip
            assert sum(active) == 4
            for resp in held:
                resp.close()
            # The first hosts keep their series for the connector's life (the SDK keeps
            # every attribute set it saw): a new host folds into _OTHER, even now.
            extra = await start_server()
            servers.append(extra)
            async with session.get(extra.url("/small")) as resp:
                await resp.read()
            ports = {h.port for h in connector.statistics().hosts.values()}
            assert extra.port not in ports and len(ports) == 3  # two hosts and _OTHER
    finally:
        for srv in servers:
            await srv.runner.cleanup()


async def test_two_connectors_on_one_meter_provider_report_separately(
    telemetry: Telemetry, server: Server
) -> None:
    a = telemetry.connector(pool_name="a")
    b = telemetry.connector(pool_name="b")
    async with aiohttp.ClientSession(connector=a) as sa, aiohttp.ClientSession(connector=b) as sb:
        for session in (sa, sb, sb):
            async with session.get(server.url("/small")) as resp:
                await resp.read()
        m = telemetry.metrics()
    assert value(m[sc.METRIC_REUSED], **{sc.POOL_NAME: "a"}) == 0
    assert value(m[sc.METRIC_REUSED], **{sc.POOL_NAME: "b"}) == 1


@pytest.mark.parametrize("record_hold_time", [False, True])
async def test_hold_time_histogram_only_when_asked(
    telemetry: Telemetry, server: Server, record_hold_time: bool
) -> None:
    async with aiohttp.ClientSession(
        connector=telemetry.connector(record_hold_time=record_hold_time)
    ) as session:
        for _ in range(3):
            async with session.get(server.url("/small")) as resp:
                await resp.read()
        m = telemetry.metrics()
    if record_hold_time:
        assert value(m[sc.METRIC_USE_TIME]).count == 3
    else:
        assert sc.METRIC_USE_TIME not in m


class _FailingResolver(AbstractResolver):
    """A resolver that cannot resolve anything, as a broken DNS does."""

    async def resolve(self, host: str, port: int = 0, family: Any = 0) -> Any:
        raise OSError(f"cannot resolve {host}")

    async def close(self) -> None:
        pass


async def test_failed_dns_lookup_is_measured_and_its_span_ends_in_error(
    telemetry: Telemetry,
) -> None:
    # The connector measures the lookup itself, whether a span was built or not; the
    # trace config next to it stays silent (nothing is emitted twice).
    tracer = telemetry.tracer_provider.get_tracer("test")
    unsampled = NonRecordingSpan(
        SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(TraceFlags.DEFAULT))
    )
    connector = telemetry.connector(resolver=_FailingResolver(), use_dns_cache=False)
    url = "http://unresolvable.test:9/"
    async with aiohttp.ClientSession(
        connector=connector, trace_configs=[telemetry.trace_config()]
    ) as session:
        with use_span(unsampled), pytest.raises(aiohttp.ClientConnectorError):
            await session.get(url)  # no span is built under an unsampled parent
        with tracer.start_as_current_span("request"), pytest.raises(aiohttp.ClientConnectorError):
            await session.get(url)
    # error.type names what the lookup raised (aiohttp wraps it for the caller later).
    (attrs, point), = telemetry.metrics()[sc.METRIC_DNS_DURATION]
    assert attrs == {sc.ERROR_TYPE: "OSError"}
    assert point.count == 2  # the lookup without a span is measured too
    (dns,) = telemetry.spans(sc.SPAN_DNS)
    assert dns.status.status_code.name == "ERROR"
    assert dns.attributes[sc.ERROR_TYPE] == attrs[sc.ERROR_TYPE]
