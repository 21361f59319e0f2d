"""The Grafana dashboard against the real pipeline: the demo's three scenarios
(``demo --scenario puzzle|exhaustion|leak --otlp``) go through the native stack (the
Collector's prometheus exporter, Debian's Prometheus); then every panel's query, with its
variables filled in as Grafana fills them, finds that service's data, and a second
service (the demo again under another OTEL_SERVICE_NAME) never shows up in, nor adds
into, the first one's panels."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Optional

import pytest

from .rig.dashboard import ALL, Value, fill, label_values, load, panel_queries
from .rig.pipeline import UP_TIMEOUT, NativeStack, StackPrometheus, start_native_stack
from .test_pipeline import DEMO_SERVICE, DemoRun, run_demo

pytestmark = [pytest.mark.pipeline, pytest.mark.timeout(UP_TIMEOUT + 600)]

OTHER_SERVICE = "aiohttp-pool-otel-demo-other"
SCENARIOS = ("puzzle", "exhaustion", "leak")
WAIT_PANEL = "Wait time for a slot (p50 / p95 / p99)"
DEMO_HOST = "127.0.0.1"  # the demo's servers listen there
# A scrape every 5 s, a rate needs two: generous, for a busy machine.
SERIES_TIMEOUT = 60.0
Labels = frozenset[tuple[str, str]]


@dataclass
class Demos:
    """The demo's runs: the three scenarios as one service, the leak as another."""

    prometheus: StackPrometheus
    runs: dict[str, DemoRun]
    other: DemoRun

    def instances(self) -> list[str]:
        return [run.instance for run in self.runs.values()]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    yield from start_native_stack(tmp_path_factory.mktemp("dashboard-stack"))


@pytest.fixture(scope="module")
def demos(stack: NativeStack) -> Demos:
    runs = {s: run_demo(stack, s, "http/protobuf") for s in SCENARIOS}
    other = run_demo(stack, "leak", "grpc", service=OTHER_SERVICE)
    prometheus = stack.prometheus
    # Both services' last counts scraped twice before any test looks (a rate needs two
    # samples): the leak's gc release is the last thing that scenario counts. After this
    # the tests query without waiting.
    for run in (runs["leak"], other):
        where = f'instance="{run.instance}", aiohttp_connection_release_reason="gc"'
        expr = f"sum(aiohttp_client_connection_releases_total{{{where}}})"
        got = prometheus.wait_for(expr, lambda r: value_of(r) == 1.0, SERIES_TIMEOUT)
        assert value_of(got) == 1.0, (expr, got)
        expr = f'rate(aiohttp_client_connection_releases_total{{instance="{run.instance}"}}[1m])'
        assert prometheus.wait_for(expr, bool, SERIES_TIMEOUT), expr
    return Demos(prometheus, runs, other)


def value_of(result: list[dict[str, Any]]) -> Optional[float]:
    return float(result[0]["value"][1]) if len(result) == 1 else None


def series(prometheus: StackPrometheus, expr: str, wait: bool = False) -> dict[Labels, str]:
    """The query's series (labels -> value); with ``wait``, polled (bounded) until some."""
    result = prometheus.wait_for(expr, bool, SERIES_TIMEOUT if wait else 0.0)
    return {frozenset(r["metric"].items()): r["value"][1] for r in result}


def label(labels: Labels, name: str) -> str:
    return dict(labels).get(name, "")


def panel_series(
    demos: Demos, wait: bool = False, **values: Value
) -> dict[tuple[str, str], dict[Labels, str]]:
    """Every panel target's series, keyed by (panel title, refId)."""
    return {
        (q.panel, q.ref_id): series(demos.prometheus, fill(q.expr, **values), wait)
        for q in panel_queries()
    }


def test_every_panel_finds_the_demos_data(demos: Demos) -> None:
    """Filtered the way a user looking at the demo filters (its service, its three
    processes, its host), every target of every panel returns series, the hold-time
    panel's included, and only the demo's."""
    found = panel_series(
        demos, wait=True, service=DEMO_SERVICE, instance=demos.instances(), host=DEMO_HOST
    )
    empty = [key for key, got in found.items() if not got]
    for (title, ref), got in sorted(found.items()):
        finite = sum(v not in ("NaN", "+Inf", "-Inf") for v in got.values())
        print(f"{title} [{ref}]: {len(got)} series, {finite} with a finite value")
    assert empty == []
    for key, got in found.items():
        for labels in got:
            assert label(labels, "job") == DEMO_SERVICE, key
            assert label(labels, "instance") in demos.instances(), key
            assert label(labels, "server_address") in (DEMO_HOST, ""), key
    # The leak scenario's signals are its own process's.
    leak = demos.runs["leak"].instance
    for title in ("Connections held too long (watchdog)",):
        assert {label(s, "instance") for s in found[(title, "A")]} == {leak}
    timeouts = found[("Saturation: queued acquisitions by blocking limit, pool-wait "
                      "timeouts (per second)", "B")]  # fmt: skip
    assert leak in {label(s, "instance") for s in timeouts}


def test_a_panel_filtered_to_one_service_shows_only_that_service(demos: Demos) -> None:
    """With two services in Prometheus, each panel filtered to one shows that one's
    series only, the same lines it shows among all services' (nothing summed across
    them), and the other service's filter shows the other's."""
    everything = panel_series(demos)
    mine = panel_series(demos, service=DEMO_SERVICE)
    others = panel_series(demos, service=OTHER_SERVICE)
    both_seen = []
    for key, got in everything.items():
        jobs = {label(s, "job") for s in got}
        assert "" not in jobs, key  # every line names its service
        assert {s for s in got if label(s, "job") == DEMO_SERVICE} == set(mine[key]), key
        assert {s for s in got if label(s, "job") == OTHER_SERVICE} == set(others[key]), key
        assert {label(s, "job") for s in mine[key]} <= {DEMO_SERVICE}, key
        assert {label(s, "job") for s in others[key]} <= {OTHER_SERVICE}, key
        if mine[key] and others[key]:
            both_seen.append(key)
    # Both services answer in every panel but the wait time (the other service ran the
    # leak only, whose one queued request timed out), so each was put to the test.
    assert {title for title, _ in everything} - {title for title, _ in both_seen} == {WAIT_PANEL}


def test_a_panel_filtered_to_one_instance_shows_only_that_process(demos: Demos) -> None:
    """The leak scenario's process alone: its own lines, the same as among all three
    processes; every panel but the wait time, since its one queued request timed out
    (the wait-time histogram holds waits that got a slot)."""
    leak = demos.runs["leak"].instance
    everything = panel_series(demos, service=DEMO_SERVICE)
    alone = panel_series(demos, service=DEMO_SERVICE, instance=leak)
    for key, got in alone.items():
        assert set(got) == {s for s in everything[key] if label(s, "instance") == leak}, key
        assert bool(got) is (key[0] != WAIT_PANEL), key


def test_a_host_filter_keeps_only_that_hosts_series(demos: Demos) -> None:
    """A host the demo never called: the per-host panels go empty; the connector's total
    limit, which belongs to no host, stays."""
    for key, got in panel_series(demos, service=DEMO_SERVICE, host="192.0.2.1").items():
        if key == ("Available slots vs limits", "C"):
            assert got, key
        else:
            assert not got, key


def test_the_variables_list_the_services_instances_and_hosts(demos: Demos) -> None:
    """Each variable's query, as Grafana runs it, lists what the demos exported; the
    instance list follows the chosen service."""
    url = demos.prometheus.url
    queries = {v["name"]: v["query"]["query"] for v in load()["templating"]["list"][1:]}

    def chosen(query: str, service: Value = ALL, instance: Value = ALL) -> str:
        return fill(query, service=service, instance=instance)

    assert {DEMO_SERVICE, OTHER_SERVICE} <= set(label_values(url, queries["service"]))
    instances = label_values(url, chosen(queries["instance"], service=DEMO_SERVICE))
    assert set(demos.instances()) <= set(instances)
    assert demos.other.instance not in instances
    others = label_values(url, chosen(queries["instance"], service=OTHER_SERVICE))
    assert others == [demos.other.instance]
    hosts = label_values(
        url, chosen(queries["host"], service=DEMO_SERVICE, instance=demos.instances())
    )
    assert hosts == [DEMO_HOST]
