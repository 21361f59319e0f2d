"""`demo --otlp` and `configure_otlp()` tell the truth about delivery: the count they
print is what a real OTLP receiver on 127.0.0.1 got, and nothing delivered (no
Collector, the wrong protocol) is an error in one line, not a success."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from aiohttp_pool_otel.otlp import configure_otlp, resolve_protocol

from .rig.otlp_receivers import GrpcOtlpReceiver, HttpOtlpReceiver, Received
from .rig.ports import unused_port

DELIVERED = re.compile(
    r"^OTLP: delivered to (\S+) \((grpc|http/protobuf)\): (\d+) of (\d+) spans and (\d+) "
    r"metric data points",
    re.M,
)


def demo(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return subprocess.run(
        [sys.executable, "-m", "aiohttp_pool_otel", "demo", "--quiet", *args],
        capture_output=True, text=True, timeout=180, env=env,
    )  # fmt: skip


def points(rx: Received) -> int:
    return sum(len(getattr(m, str(m.WhichOneof("data"))).data_points) for m in rx.metrics())


@pytest.fixture
def grpc_rx() -> Iterator[GrpcOtlpReceiver]:
    rx = GrpcOtlpReceiver().start()
    yield rx
    rx.stop()


@pytest.fixture
def http_rx() -> Iterator[HttpOtlpReceiver]:
    rx = HttpOtlpReceiver().start()
    yield rx
    rx.stop()


def check_delivered(done: subprocess.CompletedProcess[str], rx: Received, protocol: str) -> None:
    assert done.returncode == 0, done.stderr
    match = DELIVERED.search(done.stdout)
    assert match, done.stdout[-2000:]
    _, said_protocol, spans, made, metric_points = match.groups()
    assert said_protocol == protocol
    assert int(spans) == int(made) > 0  # every span the demo made arrived...
    assert int(metric_points) > 0
    # ... and the printed counts are what the receiver stored (the demo flushed before
    # printing, so nothing more is on its way).
    assert int(spans) == len(rx.spans())
    assert int(metric_points) == points(rx)
    assert done.stderr == ""


def test_demo_grpc_counts_what_the_receiver_got(grpc_rx: GrpcOtlpReceiver) -> None:
    done = demo("--otlp", grpc_rx.endpoint, "--protocol", "grpc")
    check_delivered(done, grpc_rx, "grpc")


def test_demo_http_endpoint_as_copied_needs_no_protocol(http_rx: HttpOtlpReceiver) -> None:
    # A signal URL as Collector docs print it: the /v1/ path says HTTP.
    done = demo("--otlp", http_rx.endpoint + "/v1/traces")
    check_delivered(done, http_rx, "http/protobuf")
    assert f"delivered to {http_rx.endpoint} " in done.stdout


def check_nothing_delivered(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("aiohttp-pool-otel demo: error: nothing reached ")
    match = DELIVERED.search(done.stdout)
    assert match, done.stdout[-2000:]
    assert match.group(3) == "0" and match.group(5) == "0"


def test_demo_without_a_collector_fails_in_one_line() -> None:
    done = demo("--otlp", f"http://127.0.0.1:{unused_port()}", "--protocol", "grpc")
    check_nothing_delivered(done)


def test_demo_wrong_protocol_fails_in_one_line(http_rx: HttpOtlpReceiver) -> None:
    # gRPC spoken to an OTLP/HTTP receiver: it gets nothing it can store.
    done = demo("--otlp", http_rx.endpoint, "--protocol", "grpc")
    check_nothing_delivered(done)
    assert http_rx.spans() == [] and points(http_rx) == 0


@pytest.mark.parametrize(
    ("endpoint", "fragment"),
    [
        ("http://127.0.0.1:9", "cannot tell which OTLP protocol"),
        ("127.0.0.1:4317", "must be a URL"),
    ],
)
def test_demo_ambiguous_endpoint_is_rejected_with_a_hint(endpoint: str, fragment: str) -> None:
    done = demo("--otlp", endpoint)
    assert done.returncode == 2
    assert done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("aiohttp-pool-otel demo: error: --otlp: ")
    assert fragment in line


@pytest.mark.parametrize(
    ("endpoint", "protocol", "expected"),
    [
        ("http://collector:4317", None, "grpc"),
        ("https://collector:4317", None, "grpc"),
        ("http://collector:4318", None, "http/protobuf"),
        ("http://collector:4318/v1/traces", None, "http/protobuf"),
        ("https://otlp.example/v1/metrics", None, "http/protobuf"),
        ("http://collector:55681", "http/protobuf", "http/protobuf"),
        ("http://collector:4318", "grpc", "grpc"),  # said explicitly: believed
        (None, None, "grpc"),  # the SDK default, localhost:4317
    ],
)
def test_protocol_follows_the_otlp_port_convention(
    endpoint: str | None, protocol: str | None, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert resolve_protocol(endpoint, protocol) == expected


def test_protocol_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_PROTOCOL", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    assert resolve_protocol(None, None) == "http/protobuf"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:1234")
    with pytest.raises(ValueError, match="cannot tell"):
        resolve_protocol(None, None)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    assert resolve_protocol(None, None) == "http/protobuf"


@pytest.mark.parametrize(
    ("endpoint", "protocol", "fragment"),
    [
        ("http://collector:1234", None, "cannot tell which OTLP protocol"),
        ("http://collector:4318/v1/traces", "grpc", "gRPC does not use"),
        ("collector:4317", None, "must be a URL"),
        ("http://collector:4317", "thrift", "'thrift'"),
    ],
)
def test_ambiguous_or_contradictory_endpoints_are_rejected(
    endpoint: str, protocol: str | None, fragment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match=fragment) as info:
        configure_otlp(endpoint=endpoint, protocol=protocol, set_global=False)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_configure_otlp_counts_what_arrived(protocol: str) -> None:
    rx: Any = GrpcOtlpReceiver() if protocol == "grpc" else HttpOtlpReceiver()
    rx.start()
    try:
        providers = configure_otlp(
            endpoint=rx.endpoint, protocol=protocol, export_interval_millis=60_000,
            set_global=False,
        )  # fmt: skip
        tracer = providers.tracer_provider.get_tracer("delivery-test")
        for i in range(25):
            with tracer.start_as_current_span(f"span {i}"):
                pass
        counter = providers.meter_provider.get_meter("delivery-test").create_counter("things")
        counter.add(1, {"kind": "a"})
        counter.add(1, {"kind": "b"})
        assert providers.shutdown() is True
    finally:
        rx.stop()
    d = providers.delivery
    assert (d.spans_delivered, d.spans_failed) == (25, 0)
    assert d.metric_points_delivered == points(rx) >= 2
    assert d.metric_points_failed == 0
    assert len(rx.spans()) == 25
    assert providers.protocol == protocol
    assert providers.endpoint == rx.endpoint
