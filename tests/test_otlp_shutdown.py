"""`OtlpProviders.shutdown()` is bounded by its timeout, for spans and metrics alike,
when the Collector is down (a closed port) or accepts and never answers."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from aiohttp_pool_otel.otlp import DEFAULT_SHUTDOWN_TIMEOUT, configure_otlp

from .rig.ports import unused_port
from .rig.silent_listener import SilentListener

SHUTDOWN_TIMEOUT = 1.0
# Generous: the bound is the timeout; the slack is for a busy shared machine.
BOUND = 3 * SHUTDOWN_TIMEOUT + 5.0


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A listener on 127.0.0.1 that accepts every connection and never answers."""
    listener = SilentListener().start()
    yield listener.port
    listener.stop()


def shutdown_time(port: int, protocol: str) -> tuple[float, bool, int]:
    providers = configure_otlp(
        endpoint=f"http://127.0.0.1:{port}",
        protocol=protocol,
        timeout=30,  # each export may try for 30 s: the shutdown must not wait for it
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        export_interval_millis=60_000,
        set_global=False,
    )
    tracer = providers.tracer_provider.get_tracer("shutdown-test")
    for i in range(1500):  # several batches queued in the span processor
        with tracer.start_as_current_span(f"span {i}"):
            pass
    providers.meter_provider.get_meter("shutdown-test").create_counter("c").add(1)
    t0 = time.monotonic()
    finished = providers.shutdown()
    elapsed = time.monotonic() - t0
    return elapsed, finished, providers.delivery.delivered


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_shutdown_is_bounded_with_the_collector_down(protocol: str) -> None:
    elapsed, finished, delivered = shutdown_time(unused_port(), protocol)
    assert elapsed < BOUND, f"shutdown took {elapsed:.1f} s"
    assert delivered == 0
    assert finished is False  # it says it gave up rather than pretending


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_shutdown_is_bounded_when_the_collector_never_answers(
    silent_port: int, protocol: str
) -> None:
    elapsed, finished, delivered = shutdown_time(silent_port, protocol)
    assert elapsed < BOUND, f"shutdown took {elapsed:.1f} s"
    assert delivered == 0
    assert finished is False


def test_the_documented_default_is_a_few_seconds() -> None:
    assert 1 <= DEFAULT_SHUTDOWN_TIMEOUT <= 10
    providers = configure_otlp(
        endpoint="http://127.0.0.1:4317", export_interval_millis=60_000, set_global=False
    )
    assert providers.shutdown_timeout == DEFAULT_SHUTDOWN_TIMEOUT
    providers.shutdown(timeout=0.5)  # nothing to send; never wait at exit for it
    with pytest.raises(ValueError, match="shutdown_timeout"):
        configure_otlp(endpoint="http://127.0.0.1:4317", shutdown_timeout=0, set_global=False)
