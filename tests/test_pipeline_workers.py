"""Worker processes through the real pipeline: 4 processes, each with its own
instrumented session, export OTLP to the real Collector; Prometheus then holds each
process's counters under its own ``instance`` (the Collector's prometheus exporter makes
it from ``service.instance.id``), so sums over the service are exact. Both ways services
start workers: spawned, each calling configure_otlp() (uvicorn --workers, gunicorn with a
post_fork hook), and forked after the parent configured (gunicorn --preload)."""

from __future__ import annotations

import pathlib
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from .rig.pipeline import UP_TIMEOUT, NativeStack, start_native_stack
from .rig.workers import ThreadedServer, WorkerPlan, configure, run_workers

pytestmark = [
    pytest.mark.pipeline,
    pytest.mark.timeout(UP_TIMEOUT + 600),
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]

WORKERS = 4
REQUESTS = 40
DOC = pathlib.Path(__file__).parent.parent / "docs/workers.md"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    yield from start_native_stack(tmp_path_factory.mktemp("stack"))


@pytest.fixture(scope="module")
def http_server() -> Iterator[ThreadedServer]:
    with ThreadedServer() as server:
        yield server


def doc_queries(service: str) -> list[str]:
    """The PromQL lines of docs/workers.md, for ``service``."""
    blocks = re.findall(r"```promql\n(.*?)```", DOC.read_text(), re.S)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    return [q.replace('job="my-service"', f'job="{service}"') for q in lines
            if q and not q.startswith("#")]  # fmt: skip


def by_instance(result: list[dict[str, Any]]) -> dict[str, float]:
    return {r["metric"].get("instance", ""): float(r["value"][1]) for r in result}


@pytest.mark.parametrize(
    ("mode", "protocol"),
    # Forking after configuring reuses the parent's exporters: gRPC channels are the
    # touchier ones across a fork.
    [("spawn", "http/protobuf"), ("fork", "grpc")],
)
def test_every_worker_counts_under_its_own_instance_in_prometheus(
    stack: NativeStack, http_server: ThreadedServer, mode: str, protocol: str
) -> None:
    service = f"aiohttp-pool-otel-workers-{uuid.uuid4().hex[:8]}"
    endpoint = stack.otlp_grpc if protocol == "grpc" else stack.otlp_http
    plan = WorkerPlan(http_server.url, REQUESTS, endpoint, protocol, service)
    parent = configure(plan) if mode == "fork" else None
    served_before = http_server.requests
    reports = run_workers(mode, plan, WORKERS, providers=parent)

    assert all(r.statuses == (200,) * REQUESTS and r.shutdown_ok for r in reports)
    assert http_server.requests - served_before == WORKERS * REQUESTS
    instances = {r.instance for r in reports}
    assert len(instances) == WORKERS

    prometheus = stack.prometheus
    releases = f'aiohttp_client_connection_releases_total{{job="{service}"}}'
    total = prometheus.wait_for(
        f"sum({releases})",
        lambda r: bool(r) and float(r[0]["value"][1]) == WORKERS * REQUESTS,
        timeout=90,
    )
    assert [float(r["value"][1]) for r in total] == [WORKERS * REQUESTS]
    counted = prometheus.query(f"count(count by (instance) ({releases}))")
    assert [float(r["value"][1]) for r in counted] == [WORKERS]
    per_instance = prometheus.query(f"sum by (instance) ({releases})")
    assert by_instance(per_instance) == dict.fromkeys(instances, float(REQUESTS))
    # One target_info per process: each one's resource, as the worker reported it.
    targets = prometheus.query(f'target_info{{job="{service}"}}')
    assert {t["metric"]["instance"] for t in targets} == instances
    # Every query of docs/workers.md answers, per worker process where it groups so.
    for query in doc_queries(service):
        result = prometheus.wait_for(query, bool, timeout=60)
        assert result, query
        if query.startswith("sum by (instance"):
            assert {r["metric"]["instance"] for r in result} == instances, query
    if parent is not None:
        parent.shutdown(timeout=10)
