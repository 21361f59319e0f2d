"""Hostile and odd input: secrets never reach telemetry, cardinality stays bounded, bad
options fail clearly, odd hosts work."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from aiohttp_pool_otel import OpenTelemetryTCPConnector, create_pool_trace_config
from aiohttp_pool_otel import semconv as sc
from aiohttp_pool_otel._aiohttp.hooks import state_of

from .conftest import Server, Telemetry, start_server
from .rig.ports import unused_port
from .rig.resolvers import LoopbackResolver
from .rig.waiting import wait_until

SECRETS = ["alice", "s3cr3t-pw", "pr0xy-user", "pr0xy-pw", "t0k3n", "X-Api-Key", "k3y-v4l"]


def everything_exported(telemetry: Telemetry) -> str:
    parts = []
    for span in telemetry.spans():
        parts.append(span.name)
        parts.append(repr(dict(span.attributes or {})))
        for event in span.events:
            parts.append(event.name + repr(dict(event.attributes or {})))
        parts.append(str(span.status.description))
    for name, points in telemetry.metrics().items():
        parts.append(name + repr([attrs for attrs, _ in points]))
    return "\n".join(parts)


@pytest.fixture
async def proxy() -> Any:
    """A tiny forward proxy on 127.0.0.1: answers absolute-form requests itself."""
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Proxy-Authorization", ""))
        return web.Response(text="via proxy")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    srv = await start_server(app)
    yield srv, seen
    await srv.runner.cleanup()


async def test_credentials_query_and_headers_never_reach_telemetry(
    telemetry: Telemetry, server: Server, proxy: Any
) -> None:
    proxy_server, seen = proxy
    connector = telemetry.connector(trace_all_leases=True, pool_name="secure")
    async with aiohttp.ClientSession(
        connector=connector, trace_configs=[telemetry.trace_config()]
    ) as session:
        url = f"http://alice:s3cr3t-pw@127.0.0.1:{server.port}/small?token=t0k3n"
        async with session.get(url, headers={"X-Api-Key": "k3y-v4l"}) as resp:
            assert await resp.text() == "hello"
        async with session.get(
            f"http://127.0.0.1:{server.port}/small?token=t0k3n",
            proxy=proxy_server.url(""),
            proxy_auth=aiohttp.BasicAuth("pr0xy-user", "pr0xy-pw"),
        ) as resp:
            assert await resp.text() == "via proxy"
        assert seen and seen[0].startswith("Basic ")  # the proxy did get the credentials
        stats = connector.statistics()
        assert "pr0xy" not in repr(stats) and "s3cr3t" not in repr(stats)
    exported = everything_exported(telemetry)
    assert "aiohttp.connection.lease" in exported
    for secret in SECRETS:
        assert secret not in exported, secret


async def test_many_distinct_hosts_stay_bounded(telemetry: Telemetry, server: Server) -> None:
    connector = telemetry.connector(
        max_hosts=20, force_close=True, resolver=LoopbackResolver(), use_dns_cache=False
    )
    pool = state_of(connector)
    assert pool is not None
    async with aiohttp.ClientSession(connector=connector) as session:
        for i in range(600):
            async with session.get(f"http://h{i}.test:{server.port}/small") as resp:
                await resp.read()
            assert len(pool.hosts.records()) <= 21  # max_hosts + _OTHER
            assert len(pool.hosts._by_key) <= 80
        # Held connections to many hosts: the ones beyond max_hosts fold into _OTHER.
        held = [await session.get(f"http://held{i}.test:{server.port}/endless")
                for i in range(30)]  # fmt: skip
        series = telemetry.metrics()[sc.METRIC_OPEN_CONNECTIONS]
        addresses = {attrs[sc.SERVER_ADDRESS] for attrs, _ in series}
        assert len(addresses) <= 21
        assert sc.OTHER_HOST in addresses
        active = sum(v for a, v in series if a[sc.HTTP_CONNECTION_STATE] == "active")
        assert active == 30
        for resp in held:
            resp.close()
    assert connector.statistics().active == 0


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"limit": -1}, "limit must be an integer >= 0"),
        ({"limit_per_host": -5}, "limit_per_host must be an integer >= 0"),
        ({"limit": "10"}, "limit must be an integer"),
        ({"max_hosts": 0}, "max_hosts must be an integer from 1 to 100000, got 0"),
        ({"max_hosts": True}, "max_hosts"),
        ({"tracer_provider": "nope"}, "tracer_provider must be"),
        ({"meter_provider": object()}, "meter_provider must be"),
        ({"pool_name": ""}, "pool_name must be a non-empty string"),
        ({"trace_all_leases": "yes"}, "trace_all_leases must be True or False"),
        ({"record_hold_time": 1}, "record_hold_time must be True or False"),
        ({"watchdog_threshold": 0}, "watchdog_threshold must be a number of seconds > 0"),
        ({"capture_request_location": None}, "capture_request_location must be True or False"),
    ],
)
async def test_invalid_options_fail_at_construction_naming_the_option(
    kwargs: dict[str, Any], fragment: str
) -> None:
    with pytest.raises((TypeError, ValueError), match=fragment.replace("(", r"\(")):
        OpenTelemetryTCPConnector(**kwargs)


def test_trace_config_rejects_wrong_providers() -> None:
    with pytest.raises(TypeError, match="tracer_provider must be"):
        create_pool_trace_config(tracer_provider=42)  # type: ignore[arg-type]


async def test_ipv6_literal_is_a_host_like_any_other(telemetry: Telemetry) -> None:
    port = unused_port()  # nothing listens: only naming is under test
    async with aiohttp.ClientSession(connector=telemetry.connector()) as session:
        with pytest.raises(aiohttp.ClientConnectorError):
            await session.get(f"http://[::1]:{port}/")
    (create,) = telemetry.spans(sc.SPAN_CREATE)
    assert create.attributes[sc.SERVER_ADDRESS] == "::1"
    assert create.status.status_code.name == "ERROR"


async def test_idna_host(telemetry: Telemetry, server: Server) -> None:
    connector = telemetry.connector(resolver=LoopbackResolver())
    url = f"http://bücher.test:{server.port}/small"
    async with aiohttp.ClientSession(connector=connector) as session, session.get(url) as resp:
        assert await resp.text() == "hello"
    (host,) = connector.statistics().hosts
    assert host == ("xn--bcher-kva.test", server.port, "http")


async def test_concurrent_cancellations_leave_nothing_behind(
    telemetry: Telemetry, server: Server
) -> None:
    connector = telemetry.connector(limit_per_host=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        held = await session.get(server.url("/endless"))
        tasks = [asyncio.ensure_future(session.get(server.url("/small"))) for _ in range(20)]
        await wait_until(lambda: connector.statistics().waiting == 20, what="all queued")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        stats = connector.statistics()
        assert (stats.waiting, stats.active) == (0, 1)
        held.close()
    assert len(telemetry.spans(sc.SPAN_WAIT)) == 20
