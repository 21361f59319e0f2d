"""``advise`` against workloads whose right answer is known in advance: real aiohttp
servers on 127.0.0.1, an instrumented client driven open-loop at a fixed offered rate,
OTLP to the real Collector, its prometheus exporter scraped by Debian's Prometheus
(deploy/native/stack.sh), then ``aiohttp-pool-otel advise --json`` as a user runs it.
The assertions come from each workload's arithmetic, never from the tool's own output."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from opentelemetry.trace import NoOpTracerProvider

from aiohttp_pool_otel import OpenTelemetryTCPConnector, configure_otlp

from .rig.open_loop import Outcome, Request, leave_body_unread, open_loop, read_body
from .rig.pipeline import UP_TIMEOUT, NativeStack, StackPrometheus, start_native_stack
from .rig.slow_servers import SERVICE_TIME, slow_servers

pytestmark = [pytest.mark.pipeline, pytest.mark.timeout(UP_TIMEOUT + 600)]

# Seconds of offered load per workload (all run at once): longer than a peak rate's range
# (4 scrapes of deploy/prometheus.yml's 5 s), so that one range lies inside the load.
DURATION = 25.0
POOL_WAIT = 1.0  # aiohttp's connect timeout: the longest a request queues for a slot


@dataclass
class Case:
    """One workload: the pool's limits, the hosts it calls, how, and how fast."""

    limit: int
    limit_per_host: int
    rate: float  # requests/s offered, round-robin over the hosts
    hosts: int = 1
    path: str = "/work"
    request: Request = read_body
    connector: dict[str, Any] = field(default_factory=dict)


CASES = {
    # 100/s x 50 ms = 5 busy on average; 2 slots serve at most 40/s.
    "per_host": Case(limit=100, limit_per_host=2, rate=100, connector={"record_hold_time": True}),
    # Ten hosts, 10/s each: 5 busy on average across them; the total limit is 2.
    "total": Case(limit=2, limit_per_host=0, rate=100, hosts=10,
                  connector={"record_hold_time": True}),
    # 20/s x 50 ms = 1 busy on average, 10 slots.
    "healthy": Case(limit=100, limit_per_host=10, rate=20, connector={"record_hold_time": True}),
    # The next three record no hold time: advise estimates it (and says so).
    "unread": Case(limit=100, limit_per_host=10, rate=20, path="/drip", request=leave_body_unread),
    "force_close": Case(limit=100, limit_per_host=10, rate=20, connector={"force_close": True}),
    # Keep-alive shorter than the 50 ms between requests: every pooled connection expires.
    "idle_expiry": Case(limit=100, limit_per_host=10, rate=20,
                        connector={"keepalive_timeout": 0.01}),
}  # fmt: skip


@dataclass
class Run:
    """One workload's run: its service name, when its baseline was in Prometheus, what
    the client saw, and (later) the advice."""

    case: Case
    service: str
    baseline_at: float = 0.0
    outcome: Outcome = field(default_factory=Outcome)
    advice: dict[str, Any] = field(default_factory=dict)
    text: str = ""

    @property
    def offered(self) -> int:
        return self.outcome.offered

    def host(self, port: int) -> dict[str, Any]:
        (host,) = [h for h in self.advice["hosts"] if h["server_port"] == port]
        return host

    def kinds(self) -> set[str]:
        return {f["kind"] for f in self.advice["findings"]}


def _count(prometheus: StackPrometheus, expr: str) -> float:
    return sum(float(r["value"][1]) for r in prometheus.query(expr))


async def _until(prometheus: StackPrometheus, expr: str, want: float, what: str) -> None:
    """Poll (bounded) until ``expr`` sums to ``want``: the Collector exported and
    Prometheus scraped."""
    deadline = time.monotonic() + 45
    got = -1.0
    while time.monotonic() < deadline:
        got = await asyncio.to_thread(_count, prometheus, expr)
        if got == want:
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"{what}: Prometheus has {got} for {expr}, want {want}")


async def drive(stack: NativeStack, run: Run, ports: list[int]) -> None:
    """Warm the host series up (so Prometheus holds a baseline, as for a service already
    running), offer the load, then wait until every count reached Prometheus."""
    case, prometheus = run.case, stack.prometheus
    otel = configure_otlp(
        service_name=run.service, endpoint=stack.otlp_http, protocol="http/protobuf",
        export_interval_millis=1000, set_global=False,
    )  # fmt: skip
    connector = OpenTelemetryTCPConnector(
        limit=case.limit, limit_per_host=case.limit_per_host,
        tracer_provider=NoOpTracerProvider(), meter_provider=otel.meter_provider,
        **case.connector,
    )  # fmt: skip
    urls = [f"http://127.0.0.1:{port}{case.path}" for port in ports[: case.hosts]]
    selector = f'{{job="{run.service}"}}'
    counted = " + ".join(
        f"sum(aiohttp_client_connection_{c}_total{selector})"
        for c in ("created", "reused", "timeouts")
    )
    timeout = aiohttp.ClientTimeout(total=10, connect=POOL_WAIT)
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            for url in urls:
                await read_body(session, url)
            await _until(prometheus, f"count(aiohttp_client_connection_created_total{selector})",
                         case.hosts, f"{run.service}: warm-up series")  # fmt: skip
            run.baseline_at = time.time()
            run.outcome = await open_loop(session, urls, case.rate, DURATION, case.request)
            stats = connector.statistics()
            await _until(prometheus, counted, stats.created + stats.reused + stats.timeouts,
                         f"{run.service}: final counts")  # fmt: skip
            await _until(prometheus, f"sum(aiohttp_client_connection_releases_total{selector})",
                         sum(stats.releases.values()), f"{run.service}: releases")  # fmt: skip
    finally:
        await asyncio.to_thread(otel.shutdown)


def advise(stack: NativeStack, run: Run, *options: str) -> str:
    """``aiohttp-pool-otel advise`` over a window from just before the baseline."""
    window = math.ceil(time.time() - run.baseline_at) + 10
    done = subprocess.run(
        [sys.executable, "-m", "aiohttp_pool_otel", "advise", *options,
         "--prometheus", stack.url("STACK_PROMETHEUS_PORT"), "--service", run.service,
         "--window", f"{window}s"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    yield from start_native_stack(tmp_path_factory.mktemp("stack"))


@pytest.fixture(scope="module")
def runs(stack: NativeStack) -> dict[str, tuple[Run, list[int]]]:
    """Every workload at once (each its own service), then the advice of each."""
    tag = uuid.uuid4().hex[:8]
    runs = {name: Run(case, f"advise-{name}-{tag}") for name, case in CASES.items()}
    t0 = time.monotonic()
    with slow_servers(10) as ports:

        async def drive_all() -> None:
            await asyncio.gather(*(drive(stack, run, ports) for run in runs.values()))

        asyncio.run(drive_all())
    t1 = time.monotonic()
    for name, run in runs.items():
        run.advice = json.loads(advise(stack, run, "--json"))
        print(f"\n{name}: offered {run.offered}, ended {dict(run.outcome.ended)}\n"
              f"{json.dumps(run.advice, indent=1)}")  # fmt: skip
    runs["per_host"].text = advise(stack, runs["per_host"])
    print(f"\n{runs['per_host'].text}")
    print(f"\nworkloads {t1 - t0:.1f} s, advice {time.monotonic() - t1:.1f} s")
    return {name: (run, ports) for name, run in runs.items()}


def _offered_seen(host: dict[str, Any]) -> float:
    e = host["evidence"]
    return float(e["acquisitions"] + e["pool_wait_timeouts"])


def test_a_per_host_bottleneck_is_sized_by_littles_law(runs: dict[str, Any]) -> None:
    run, ports = runs["per_host"]
    host = run.host(ports[0])
    assert host["limit_per_host"] == 2
    assert host["blocking_limit"] == "per_host"
    # 100/s x 50 ms = 5 busy; any sound headroom lands within 5..25.
    assert 5 <= host["recommended_limit_per_host"] <= 25, host
    # What Prometheus counted is what the client offered (served or timed out).
    assert _offered_seen(host) == pytest.approx(run.offered, rel=0.1)
    assert run.outcome.ended["timeout"] > 0
    assert host["evidence"]["pool_wait_timeouts"] == pytest.approx(
        run.outcome.ended["timeout"], rel=0.1
    )
    assert host["evidence"]["hold_source"] == "use_time"
    assert SERVICE_TIME <= host["evidence"]["hold_p50_s"] <= 4 * SERVICE_TIME
    assert run.advice["limit"] == 100 and run.advice["recommended_limit"] == 100
    assert "pool_wait_timeouts" in run.kinds()
    # The text says the same, first of all.
    change = f"limit_per_host 2 -> {host['recommended_limit_per_host']}"
    assert run.text.splitlines()[1].startswith(f"change: {change} for 127.0.0.1:{ports[0]}")
    assert f"127.0.0.1:{ports[0]}   {change}" in run.text


def test_a_tight_total_limit_is_named_and_raised(runs: dict[str, Any]) -> None:
    run, ports = runs["total"]
    hosts = [run.host(port) for port in ports]
    # aiohttp checks limit only when a request must dial (an idle connection of its host
    # is handed out regardless), so only the hosts that had to dial queued; each of those
    # names the total limit, and none the per-host one, which is unset.
    queued = [h for h in hosts if h["evidence"]["queued"] > 0]
    assert len(queued) >= 5, hosts
    assert {h["blocking_limit"] for h in queued} == {"total"}
    for host in hosts:
        assert host["limit_per_host"] == 0 and host["recommended_limit_per_host"] == 0
    assert run.advice["limit"] == 2
    # 10 hosts x 10/s x 50 ms = 5 busy: the same 5..25 band, for the total.
    assert 5 <= run.advice["recommended_limit"] <= 25, run.advice
    assert "total_limit_blocking" in run.kinds()
    assert sum(_offered_seen(h) for h in hosts) == pytest.approx(run.offered, rel=0.1)


def test_a_healthy_pool_gets_no_change(runs: dict[str, Any]) -> None:
    run, ports = runs["healthy"]
    host = run.host(ports[0])
    assert run.outcome.ended == {"ok": run.offered, "cancelled": 0}
    assert host["recommended_limit_per_host"] == host["limit_per_host"] == 10
    assert run.advice["recommended_limit"] == run.advice["limit"] == 100
    assert host["blocking_limit"] is None
    assert SERVICE_TIME <= host["evidence"]["hold_mean_s"] <= 4 * SERVICE_TIME
    assert run.advice["findings"] == []


def test_without_use_time_the_hold_time_is_estimated_and_said(runs: dict[str, Any]) -> None:
    run, ports = runs["force_close"]
    host = run.host(ports[0])
    assert host["evidence"]["hold_source"] == "little"
    assert "hold_time_not_recorded" in run.kinds()
    assert host["recommended_limit_per_host"] == 10  # 20/s x ~50 ms: fits 10


def test_unread_bodies_are_found(runs: dict[str, Any]) -> None:
    run, ports = runs["unread"]
    (finding,) = [f for f in run.advice["findings"] if f["kind"] == "unread_bodies"]
    assert finding["server_address"] == "127.0.0.1"
    host = run.host(ports[0])
    assert host["evidence"]["releases"].get("release/closed", 0) == pytest.approx(
        run.offered, rel=0.1
    )


def test_force_close_is_found_as_keepalive_defeated(runs: dict[str, Any]) -> None:
    run, _ = runs["force_close"]
    (finding,) = [f for f in run.advice["findings"] if f["kind"] == "keepalive_defeated"]
    assert "force_close" in finding["message"]
    assert "unread_bodies" not in run.kinds()


def test_an_expiring_keepalive_is_found_as_keepalive_defeated(runs: dict[str, Any]) -> None:
    run, _ = runs["idle_expiry"]
    (finding,) = [f for f in run.advice["findings"] if f["kind"] == "keepalive_defeated"]
    assert "closed while idle" in finding["message"]
    assert "keepalive_timeout" in finding["message"]
