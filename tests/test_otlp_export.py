"""What really leaves the process: the plugin's spans and metrics through the SDK's
OTLP exporters (gRPC and HTTP/protobuf) into real receivers on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from aiohttp_pool_otel import OpenTelemetryTCPConnector, create_pool_trace_config
from aiohttp_pool_otel import semconv as sc
from aiohttp_pool_otel._version import __version__
from aiohttp_pool_otel.otlp import configure_otlp

from .conftest import Server
from .rig.otlp_receivers import GrpcOtlpReceiver, HttpOtlpReceiver, Received, attributes


@pytest.fixture(params=["grpc", "http/protobuf"])
def receiver(request: pytest.FixtureRequest) -> Iterator[tuple[str, Any]]:
    rx = GrpcOtlpReceiver() if request.param == "grpc" else HttpOtlpReceiver()
    rx.start()
    yield request.param, rx
    rx.stop()


def names(rx: Received) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for span in rx.spans():
        out.setdefault(span.name, []).append(span)
    return out


async def test_spans_and_metrics_reach_a_real_otlp_receiver(
    receiver: tuple[str, Any], server: Server
) -> None:
    protocol, rx = receiver
    providers = configure_otlp(
        service_name="pool-test",
        endpoint=rx.endpoint,
        protocol=protocol,
        timeout=2,
        export_interval_millis=60_000,
        set_global=False,
    )
    tp, mp = providers.tracer_provider, providers.meter_provider
    tracer = tp.get_tracer("test")
    connector = OpenTelemetryTCPConnector(
        limit_per_host=1, tracer_provider=tp, meter_provider=mp, pool_name="otlp"
    )
    try:
        async with aiohttp.ClientSession(
            connector=connector,
            trace_configs=[create_pool_trace_config(tracer_provider=tp, meter_provider=mp)],
        ) as session:

            async def one() -> None:
                with tracer.start_as_current_span("request"):
                    async with session.get(server.url("/late", host="localhost")) as resp:
                        await resp.read()

            await asyncio.gather(one(), one())
            held = await session.get(server.url("/endless"))
            held.close()
            await asyncio.to_thread(tp.force_flush)
            await asyncio.to_thread(mp.force_flush)
    finally:
        await asyncio.to_thread(providers.shutdown)

    assert rx.wait_for(lambda: sc.SPAN_LEASE in names(rx) and rx.metrics(sc.METRIC_RELEASES))
    spans = names(rx)
    requests = {s.span_id for s in spans["request"]}
    (create,) = [s for s in spans[sc.SPAN_CREATE] if s.parent_span_id in requests]
    (wait,) = spans[sc.SPAN_WAIT]
    assert wait.parent_span_id in requests
    (dns,) = spans[sc.SPAN_DNS]
    assert dns.parent_span_id == create.span_id
    leases = spans[sc.SPAN_LEASE]
    assert len(leases) == 2  # the dialled ones; the queued one has its wait span
    closed = [attributes(s.attributes) for s in leases]
    assert {a[sc.RELEASE_REASON] for a in closed} == {"eof", "close"}
    eof = next(a for a in closed if a[sc.RELEASE_REASON] == "eof")
    assert eof[sc.RELEASE_PHASE] == "body"
    assert eof[sc.RELEASE_OUTCOME] == "pooled"
    assert eof[sc.POOL_NAME] == "otlp"

    request = rx.trace_requests[0]
    resource = attributes(request.resource_spans[0].resource.attributes)
    assert resource["service.name"] == "pool-test"
    scope = request.resource_spans[0].scope_spans[0].scope
    assert (scope.name, scope.version) in {("aiohttp_pool_otel", __version__), ("test", "")}

    units = {m.name: m.unit for m in rx.metrics()}
    assert units[sc.METRIC_OPEN_CONNECTIONS] == "{connection}"
    assert units[sc.METRIC_PENDING] == "{request}"
    assert units[sc.METRIC_WAIT_TIME] == "s"
    (releases,) = rx.metrics(sc.METRIC_RELEASES)[-1:]
    got = {
        (a[sc.RELEASE_REASON], a[sc.RELEASE_OUTCOME]): p.as_int
        for p in releases.sum.data_points
        for a in [attributes(p.attributes)]
    }
    assert got == {("eof", "pooled"): 2, ("close", "closed"): 1}
    point = releases.sum.data_points[0]
    assert set(attributes(point.attributes)) == {
        sc.SERVER_ADDRESS, sc.SERVER_PORT, sc.URL_SCHEME, sc.POOL_NAME,
        sc.RELEASE_REASON, sc.RELEASE_OUTCOME,
    }  # fmt: skip
    (wait_time,) = rx.metrics(sc.METRIC_WAIT_TIME)[-1:]
    assert list(wait_time.histogram.data_points[0].explicit_bounds) == list(sc.SECONDS_BUCKETS)


def test_configure_otlp_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="'thrift'"):
        configure_otlp(protocol="thrift", set_global=False)
    with pytest.raises(ValueError, match=r"'127\.0\.0\.1:4317'"):
        configure_otlp(endpoint="127.0.0.1:4317", set_global=False)
