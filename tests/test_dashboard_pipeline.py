"""The Grafana dashboard against the real pipeline: the demo's three scenarios
(``demo --scenario puzzle|exhaustion|leak --otlp --duration``, as concurrent processes)
go through the native stack (the Collector's prometheus exporter, Debian's Prometheus);
then every panel's query, with its variables filled in as Grafana fills them, draws that
service's data (a number in every panel, a rate above 0 in every rate panel, a wait and
a hold time), and a second service (the demo again under another OTEL_SERVICE_NAME)
never shows up in, nor adds into, the first one's panels."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Optional

import pytest

from .rig.dashboard import ALL, Value, fill, label_values, load, panel_queries
from .rig.pipeline import UP_TIMEOUT, NativeStack, StackPrometheus, start_native_stack
from .test_pipeline import DEMO_SERVICE, DemoRun, run_demo

pytestmark = [pytest.mark.pipeline, pytest.mark.timeout(UP_TIMEOUT + 300)]

OTHER_SERVICE = "aiohttp-pool-otel-demo-other"
SCENARIOS = ("puzzle", "exhaustion", "leak")
# Each demo's --duration: Prometheus scrapes every 5 s, so three scrapes or more see the
# counts rise (one pass alone ends before a second scrape: rates 0, percentiles NaN).
DURATION_S = 15.0
WAIT_PANEL = "Wait time for a slot (p50 / p95 / p99)"
OPEN_PANEL = "Open connections by state and host"
DEMO_HOST = "127.0.0.1"  # the demo's servers listen there
# A scrape every 5 s, a rate needs two: generous, for a busy machine.
SERIES_TIMEOUT = 30.0
Labels = frozenset[tuple[str, str]]
PanelSeries = dict[tuple[str, str], dict[Labels, str]]


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
    jobs = [(s, "http/protobuf", None) for s in SCENARIOS] + [("leak", "grpc", OTHER_SERVICE)]
    # Four processes at once: the test waits one --duration, not four.
    with ThreadPoolExecutor(len(jobs)) as pool:
        done = list(pool.map(lambda j: run_demo(stack, *j, duration=DURATION_S), jobs))
    ended = time.time()
    runs, other = dict(zip(SCENARIOS, done)), done[-1]
    for run in done:
        assert run.report["otlp"]["flush_finished"], run.report["otlp"]
        assert run.report["repeats"]["passes"] >= 2, run.report["repeats"]
    prometheus = stack.prometheus
    # A scrape after every demo's final flush, so the tests see their last counts...
    expr = 'timestamp(up{job="otel-collector"})'
    got = prometheus.wait_for(expr, lambda r: (value_of(r) or 0) > ended + 1, SERIES_TIMEOUT)
    assert (value_of(got) or 0) > ended + 1, (expr, got, ended)
    # ... as the leak's gc releases show: one per pass, all of them in Prometheus.
    for run in (runs["leak"], other):
        passes = run.report["repeats"]["passes"] + 1
        where = f'instance="{run.instance}", aiohttp_connection_release_reason="gc"'
        expr = f"sum(aiohttp_client_connection_releases_total{{{where}}})"
        got = prometheus.wait_for(expr, lambda r, n=passes: value_of(r) == n, SERIES_TIMEOUT)
        assert value_of(got) == passes, (expr, got)
    return Demos(prometheus, runs, other)


def value_of(result: list[dict[str, Any]]) -> Optional[float]:
    return float(result[0]["value"][1]) if len(result) == 1 else None


def series(prometheus: StackPrometheus, expr: str, wait: bool = False) -> dict[Labels, str]:
    """The query's series (labels -> value); with ``wait``, polled (bounded) until some."""
    result = prometheus.wait_for(expr, bool, SERIES_TIMEOUT if wait else 0.0)
    return {frozenset(r["metric"].items()): r["value"][1] for r in result}


def finite(value: str) -> bool:
    """Whether Grafana draws the value (Prometheus writes NaN, +Inf, -Inf as such)."""
    return math.isfinite(float(value))


def label(labels: Labels, name: str) -> str:
    return dict(labels).get(name, "")


def panel_series(demos: Demos, wait: bool = False, **values: Value) -> PanelSeries:
    """Every panel target's series, keyed by (panel title, refId)."""
    return {
        (q.panel, q.ref_id): series(demos.prometheus, fill(q.expr, **values), wait)
        for q in panel_queries()
    }


def show(found: PanelSeries) -> None:
    """Each target's values, printed (``pytest -s``): what the panels draw."""
    for (title, ref), got in sorted(found.items()):
        shown = ", ".join(f"{v:.4g}" for v in sorted(float(v) for v in got.values()))
        print(f"{title} [{ref}]: {len(got)} series: {shown}")


def undrawn(found: PanelSeries) -> list[tuple[str, str]]:
    """Targets with no series, or with one Grafana leaves blank (NaN)."""
    return [key for key, got in found.items() if not got or not all(map(finite, got.values()))]


def flat_rates(found: PanelSeries) -> list[tuple[str, str]]:
    """Targets over a rate() (rates, and quantiles of rates) with no line above 0."""
    exprs = {(q.panel, q.ref_id): q.expr for q in panel_queries()}
    return [
        key for key, got in found.items()
        if "rate(" in exprs[key] and not any(float(v) > 0 for v in got.values())
    ]  # fmt: skip


def foreign(found: PanelSeries, demos: Demos) -> list[tuple[tuple[str, str], Labels]]:
    """Series of another service, process or host than the ones filtered to."""
    return [
        (key, labels) for key, got in found.items() for labels in got
        if label(labels, "job") != DEMO_SERVICE
        or label(labels, "instance") not in demos.instances()
        or label(labels, "server_address") not in (DEMO_HOST, "")
    ]  # fmt: skip


def test_every_panel_draws_the_demos_data(demos: Demos) -> None:
    """Filtered the way a user looking at the demo filters (its service, its three
    processes, its host), every target of every panel draws the demo's lines and only
    theirs: numbers, not NaN; in every rate panel, a rate above 0 (each is exercised by
    some scenario: creates, reuses, closes, releases, queueing, a pool-wait timeout);
    wait and hold times above 0."""
    found = panel_series(
        demos, wait=True, service=DEMO_SERVICE, instance=demos.instances(), host=DEMO_HOST
    )
    show(found)
    assert undrawn(found) == []
    assert flat_rates(found) == []
    assert foreign(found, demos) == []
    # Open connections are told apart by state.
    states = {label(s, "http_connection_state") for s in found[(OPEN_PANEL, "A")]}
    assert states and states <= {"active", "idle"}, states
    # The leak scenario's signals are its own process's.
    leak = demos.runs["leak"].instance
    held = found[("Connections held too long (watchdog)", "A")]
    assert {label(s, "instance") for s in held} == {leak}
    timeouts = found[("Saturation: queued acquisitions by blocking limit, pool-wait "
                      "timeouts (per second)", "B")]  # fmt: skip
    assert {label(s, "instance") for s, v in timeouts.items() if float(v) > 0} == {leak}


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
