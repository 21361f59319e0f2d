"""Every process reports under its own ``service.instance.id``, on every supported SDK:
configure_otlp() sets one when the SDK does not (before 1.43), gives a process forked
after it a new one (the SDK does not before 1.44), keeps one the user set, and a failure
to renew one only warns. Real OTLP receivers on 127.0.0.1; real worker processes."""

from __future__ import annotations

import logging
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from aiohttp_pool_otel import configure_otlp
from aiohttp_pool_otel.otlp import OtlpProviders

from .rig.otlp_receivers import GrpcOtlpReceiver, HttpOtlpReceiver, Received
from .rig.workers import (
    INSTANCE_ID,
    ThreadedServer,
    WorkerPlan,
    configure,
    releases_by_instance,
    run_workers,
    span_instances,
)

REQUESTS = 3
# SDK 1.44+ renews the id in a forked child itself; configure_otlp does it before that.
SDK_RENEWS_ON_FORK = hasattr(TracerProvider, "_handle_fork")

pytestmark = [
    pytest.mark.timeout(300),
    # Forking a process that runs threads (the receivers, the server) is what gunicorn
    # --preload and multiprocessing do; the children here touch none of those threads.
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]


@pytest.fixture(scope="module")
def http_receiver() -> Iterator[HttpOtlpReceiver]:
    rx = HttpOtlpReceiver().start()
    yield rx
    rx.stop()


@pytest.fixture(scope="module")
def grpc_receiver() -> Iterator[GrpcOtlpReceiver]:
    rx = GrpcOtlpReceiver().start()
    yield rx
    rx.stop()


@pytest.fixture(scope="module")
def http_server() -> Iterator[ThreadedServer]:
    with ThreadedServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _no_user_resource(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_RESOURCE_ATTRIBUTES", "OTEL_SERVICE_NAME"):
        monkeypatch.delenv(name, raising=False)


def new_service() -> str:
    """A service name of the test's own: the receivers are shared by the module."""
    return f"workers-{uuid.uuid4().hex[:12]}"


def plan_for(rx: Any, server: ThreadedServer) -> WorkerPlan:
    protocol = "grpc" if isinstance(rx, GrpcOtlpReceiver) else "http/protobuf"
    return WorkerPlan(server.url, REQUESTS, rx.endpoint, protocol, new_service())


def export_one_span(providers: OtlpProviders, name: str = "parent") -> None:
    providers.tracer_provider.get_tracer("test").start_span(name).end()
    assert providers.shutdown(timeout=30)


def is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def instance_of(providers: OtlpProviders) -> str:
    return str(providers.tracer_provider.resource.attributes[INSTANCE_ID])


def wait_for_spans(rx: Received, service: str, want: dict[str, int]) -> dict[str, int]:
    rx.wait_for(lambda: span_instances(rx, service) == want, timeout=30)
    return span_instances(rx, service)


# --- one process ------------------------------------------------------------------------


def test_a_resource_without_an_id_gets_the_processes_on_both_signals(
    http_receiver: HttpOtlpReceiver,
) -> None:
    service = new_service()
    # Resource(...) runs no detector, so no SDK version adds an id to it.
    first = configure_otlp(
        resource=Resource({"service.name": service}), endpoint=http_receiver.endpoint,
        protocol="http/protobuf", set_global=False,
    )  # fmt: skip
    second = configure_otlp(
        service_name=service, endpoint=http_receiver.endpoint, protocol="http/protobuf",
        set_global=False,
    )  # fmt: skip
    instance = instance_of(first)
    assert is_uuid(instance)
    assert instance_of(second) == instance  # one process, one instance
    first.meter_provider.get_meter("test").create_counter("ticks").add(1)
    export_one_span(first)
    export_one_span(second)
    assert wait_for_spans(http_receiver, service, {instance: 2}) == {instance: 2}
    metric_instances = {
        str(a.value.string_value)
        for request in http_receiver.metric_requests
        for rm in request.resource_metrics
        for a in rm.resource.attributes
        if a.key == INSTANCE_ID and any(m.name == "ticks" for s in rm.scope_metrics
                                        for m in s.metrics)
    }  # fmt: skip
    assert metric_instances == {instance}


@pytest.mark.parametrize("how", ["OTEL_RESOURCE_ATTRIBUTES", "resource"])
def test_an_id_the_user_set_is_kept(
    http_receiver: HttpOtlpReceiver, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    service = new_service()
    kwargs: dict[str, Any] = {"service_name": service}
    if how == "resource":
        kwargs["resource"] = Resource({"service.name": "replaced", INSTANCE_ID: "pod-7"})
    else:
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", f"{INSTANCE_ID}=pod-7,team=pool")
    providers = configure_otlp(
        endpoint=http_receiver.endpoint, protocol="http/protobuf", set_global=False, **kwargs
    )
    attrs = providers.tracer_provider.resource.attributes
    assert attrs["service.name"] == service  # service_name wins over the resource's
    assert attrs[INSTANCE_ID] == "pod-7"
    export_one_span(providers)
    assert wait_for_spans(http_receiver, service, {"pod-7": 1}) == {"pod-7": 1}


class UnmergeableResource(Resource):
    """A resource that fails to merge (a broken SDK or subclass)."""

    def merge(self, other: Resource) -> Resource:
        raise RuntimeError("no merge")


def test_failing_to_add_an_id_warns_and_the_providers_still_export(
    http_receiver: HttpOtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    service = new_service()
    with caplog.at_level(logging.WARNING, logger="aiohttp_pool_otel._instance_id"):
        providers = configure_otlp(
            resource=UnmergeableResource({"service.name": service}),
            endpoint=http_receiver.endpoint, protocol="http/protobuf", set_global=False,
        )  # fmt: skip
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "could not give this process a service.instance.id" in warning
    assert "RuntimeError('no merge')" in warning
    export_one_span(providers)
    assert wait_for_spans(http_receiver, service, {"": 1}) == {"": 1}


def test_a_resource_that_is_not_one_is_refused() -> None:
    with pytest.raises(TypeError, match=r"resource must be .*Resource, got \{'service.name'"):
        configure_otlp(resource={"service.name": "x"}, set_global=False)  # type: ignore[arg-type]


# --- worker processes --------------------------------------------------------------------


@pytest.mark.parametrize("receiver", ["grpc", "http/protobuf"])
def test_workers_forked_after_configuring_each_report_a_new_id(
    request: pytest.FixtureRequest, http_server: ThreadedServer, receiver: str
) -> None:
    rx = request.getfixturevalue("grpc_receiver" if receiver == "grpc" else "http_receiver")
    plan = plan_for(rx, http_server)
    parent = configure(plan)  # as gunicorn --preload: configured once, then forked
    reports = run_workers("fork", plan, 2, providers=parent)

    children = {r.instance for r in reports}
    assert len(children) == 2
    assert instance_of(parent) not in children
    assert all(is_uuid(i) for i in children)
    assert all(r.statuses == (200,) * REQUESTS and r.shutdown_ok for r in reports)
    want = dict.fromkeys(children, float(REQUESTS))
    rx.wait_for(lambda: releases_by_instance(rx, plan.service_name) == want, timeout=30)
    assert releases_by_instance(rx, plan.service_name) == want
    # The parent still reports under its own id.
    export_one_span(parent)
    rx.wait_for(lambda: instance_of(parent) in span_instances(rx, plan.service_name), 30)
    spans = span_instances(rx, plan.service_name)
    assert set(spans) == {instance_of(parent), *children}
    assert spans[instance_of(parent)] == 1


def test_a_forked_worker_replaces_an_id_its_parent_was_given(
    http_receiver: HttpOtlpReceiver, http_server: ThreadedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes under one id overwrite each other's counters downstream, so a
    forked child never keeps its parent's id (as SDK 1.44+ does)."""
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", f"{INSTANCE_ID}=the-parent")
    plan = plan_for(http_receiver, http_server)
    parent = configure(plan)
    assert instance_of(parent) == "the-parent"
    (report,) = run_workers("fork", plan, 1, providers=parent)
    assert is_uuid(report.instance)
    want = {report.instance: float(REQUESTS)}
    got = lambda: releases_by_instance(http_receiver, plan.service_name)  # noqa: E731
    http_receiver.wait_for(lambda: got() == want, timeout=30)
    assert got() == want
    assert instance_of(parent) == "the-parent"
    parent.shutdown(timeout=10)


def test_spawned_workers_each_report_their_own_id(
    grpc_receiver: GrpcOtlpReceiver, http_server: ThreadedServer
) -> None:
    plan = plan_for(grpc_receiver, http_server)
    reports = run_workers("spawn", plan, 3)
    instances = {r.instance for r in reports}
    assert len(instances) == 3
    assert all(is_uuid(i) for i in instances)
    want = dict.fromkeys(instances, float(REQUESTS))
    got = lambda: releases_by_instance(grpc_receiver, plan.service_name)  # noqa: E731
    grpc_receiver.wait_for(lambda: got() == want, timeout=30)
    assert got() == want


class UnchangeableResource(Resource):
    """A resource whose attributes cannot be replaced (as a future SDK's might not be):
    renewing its id in a forked child fails."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "_attributes" and hasattr(self, "_attributes"):
            raise AttributeError("read-only")
        super().__setattr__(name, value)


def test_a_child_whose_id_cannot_be_renewed_warns_once_and_still_exports(
    http_receiver: HttpOtlpReceiver, http_server: ThreadedServer, tmp_path: Any
) -> None:
    plan = plan_for(http_receiver, http_server)
    fixed = UnchangeableResource({"service.name": plan.service_name, INSTANCE_ID: "fixed"})
    parents = [
        configure_otlp(resource=fixed, endpoint=plan.endpoint, protocol=plan.protocol,
                       export_interval_millis=60_000, set_global=False)
        for _ in range(2)
    ]  # fmt: skip
    log_file = tmp_path / "child.log"
    handler = logging.FileHandler(log_file)
    logger = logging.getLogger("aiohttp_pool_otel._instance_id")
    logger.addHandler(handler)  # the forked child inherits it and writes to the file
    try:
        (report,) = run_workers("fork", plan, 1, providers=parents[0])
    finally:
        logger.removeHandler(handler)
        handler.close()
    warnings = [line for line in log_file.read_text().splitlines() if "could not give" in line]
    assert report.statuses == (200,) * REQUESTS and report.shutdown_ok
    want = {report.instance: float(REQUESTS)}
    got = lambda: releases_by_instance(http_receiver, plan.service_name)  # noqa: E731
    http_receiver.wait_for(lambda: got() == want, timeout=30)
    assert got() == want  # the child's telemetry still left
    if SDK_RENEWS_ON_FORK:  # the SDK gave the providers a new resource; nothing failed
        assert is_uuid(report.instance)
        assert warnings == []
    else:  # under its parent's id, said once (two resources failed)
        assert report.instance == "fixed"
        assert len(warnings) == 1, warnings
        assert "forked process" in warnings[0] and "configure_otlp() in each worker" in warnings[0]
    for parent in parents:
        parent.shutdown(timeout=10)


FORK_AFTER_AN_EXECUTOR = """
import os, sys, time
from opentelemetry.sdk.resources import Resource
from aiohttp_pool_otel import configure_otlp

configure_otlp(
    resource=Resource({"service.name": "x"}), endpoint="http://127.0.0.1:4318",
    set_global=False,
)
import concurrent.futures.thread  # as later code does (e.g. a loop's default executor)

pid = os.fork()
if pid == 0:
    os._exit(0)
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        sys.exit(os.waitstatus_to_exitcode(status))
    time.sleep(0.05)
os.kill(pid, 9)
sys.exit("the forked child hung in its fork hooks")
"""


def test_a_fork_after_configuring_does_not_hang_the_child() -> None:
    """The SDK's own fork hook (1.44+) submits to an executor: it must not wait on the
    executor lock the fork left held. A fresh interpreter, where configure_otlp comes
    before anything imported the executor module."""
    done = subprocess.run(
        [sys.executable, "-c", FORK_AFTER_AN_EXECUTOR],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
