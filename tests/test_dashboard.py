"""The Grafana dashboard and its provisioning, checked offline: the JSON follows Grafana's
dashboard model (the classic JSON model that file provisioning loads), its variables
chain datasource -> service -> instance -> host, every panel query reads the datasource
variable, filters by every variable and keeps services, processes, pools and hosts apart,
and promtool parses every query once the variables are filled in.

The model's rules are Grafana's: the "Dashboard JSON model" page of its docs, and the
field types and enumerations of the dashboard kind as @grafana/schema 13.2.3 publishes
them (``Dashboard``, ``Panel``, ``GridPos``, ``VariableModel``: ``VariableType``,
``VariableRefresh``, ``VariableHide``, ``VariableSort``). No JSON Schema of it is published
on PyPI or npm (@grafana/schema and both grafana-foundation-sdk packages ship TypeScript or
Python types, not a schema), so the rules are checked here directly."""

from __future__ import annotations

import pathlib
import re
from typing import Any

import pytest
import yaml

from .rig.dashboard import ALL, DASHBOARD, ROOT, fill, load, panel_queries
from .test_alerts import ALERT_LABELS, run_promtool

PROVISIONING = ROOT / "deploy/grafana/provisioning"
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS_CONFIG = ROOT / "deploy/prometheus.yml"

DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}
# The variables, in the order each one's query depends on the ones before it, and the
# label each filters on (the names the Collector's prometheus exporter gives them:
# service.name -> job, service.instance.id -> instance; attributes keep theirs).
VARIABLES = ["datasource", "service", "instance", "host"]
FILTER_LABELS = {"service": "job", "instance": "instance", "host": "server_address"}
# The only metric without host attributes (README, "Metrics"): the connector's total limit.
NO_HOST_METRICS = {"aiohttp_client_connection_max"}
HOST_LABELS = {"server_address", "server_port"}
# Grafana's own variables a query may use besides the dashboard's.
GRAFANA_GLOBALS = {"__rate_interval", "__interval", "__range"}

# The dashboard kind's enumerations (@grafana/schema 13.2.3).
VARIABLE_TYPES = {"query", "adhoc", "groupby", "constant", "datasource", "interval",
                  "textbox", "custom", "system", "snapshot", "switch"}  # fmt: skip
REFRESH = {0, 1, 2}  # never, on dashboard load, on time range change
HIDE = {0, 1, 2, 3}
SORT = set(range(9))
UID = re.compile(r"^[a-zA-Z0-9_-]{1,40}$")  # Grafana's uid rule: at most 40 such chars
GRID_COLUMNS = 24

SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}")
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"')
AGGREGATION = re.compile(r"\b(sum|min|max|avg|count|topk|bottomk|quantile|group)\s*"
                         r"(?:(by|without)\s*\(([^)]*)\)\s*)?\(")  # fmt: skip
VARIABLE_USE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def variables() -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in load()["templating"]["list"]}


def metrics_of(expr: str) -> list[tuple[str, dict[str, tuple[str, str]]]]:
    """(metric, {label: (operator, value)}) of every selector in ``expr``."""
    return [
        (name, {m[0]: (m[1], m[2]) for m in MATCHER.findall(body)})
        for name, body in SELECTOR.findall(expr)
    ]


def test_the_dashboard_has_what_file_provisioning_needs() -> None:
    dashboard = load()
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    assert UID.match(dashboard["uid"]), dashboard["uid"]
    assert dashboard["title"].strip()
    # A provisioned dashboard carries no database id: Grafana assigns one.
    assert dashboard.get("id") is None
    assert isinstance(dashboard["version"], int)
    assert set(dashboard["time"]) == {"from", "to"}
    assert all(isinstance(t, str) for t in dashboard["tags"])
    assert dashboard["annotations"] == {"list": []}
    assert isinstance(dashboard["templating"]["list"], list)
    assert dashboard["panels"]


def test_panels_have_ids_types_a_layout_and_targets() -> None:
    panels = load()["panels"]
    ids = [p["id"] for p in panels]
    assert all(isinstance(i, int) for i in ids) and len(set(ids)) == len(ids)
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        assert panel["type"] == "timeseries" and panel["title"].strip()
        assert panel["description"].strip(), panel["title"]  # what to look for, at 3 a.m.
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) and grid[k] >= 0 for k in ("h", "w", "x", "y"))
        assert grid["h"] > 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= GRID_COLUMNS
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells.get((x, y))}"
                cells[(x, y)] = panel["title"]
        assert set(panel["fieldConfig"]) == {"defaults", "overrides"}
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert ref_ids and len(set(ref_ids)) == len(ref_ids), panel["title"]


def test_the_variables_are_datasource_service_instance_host() -> None:
    listed = load()["templating"]["list"]
    assert [v["name"] for v in listed] == VARIABLES
    for v in listed:
        assert v["type"] in VARIABLE_TYPES and v["label"].strip()
        assert v["hide"] in HIDE and v["refresh"] in REFRESH
        assert isinstance(v["options"], list) and isinstance(v["current"], dict)
    # The data source variable lists the Prometheus data sources; nothing to select All of.
    source = listed[0]
    assert source["type"] == "datasource" and source["query"] == "prometheus"
    assert not source["multi"] and not source["includeAll"]


@pytest.mark.parametrize("position", range(1, len(VARIABLES)))
def test_each_query_variable_chains_on_the_ones_before(position: int) -> None:
    v = load()["templating"]["list"][position]
    assert v["type"] == "query" and v["datasource"] == DATASOURCE_REF
    query = v["query"]["query"]
    assert v["definition"] == query and v["query"]["refId"]
    # label_values(series{a filter by each earlier variable}, the variable's label)
    match = re.fullmatch(r"label_values\((\w+)(?:\{(.*)\})?, (\w+)\)", query)
    assert match, query
    assert match.group(3) == FILTER_LABELS[v["name"]]
    earlier = VARIABLES[1:position]
    wanted = [(FILTER_LABELS[e], "=~", f"${e}") for e in earlier]
    assert MATCHER.findall(match.group(2) or "") == wanted, query
    # Multi-select with All, and All as one regex, not thousands of instances joined.
    assert v["multi"] and v["includeAll"] and v["allValue"] == ALL
    assert v["current"] == {"selected": True, "text": ["All"], "value": ["$__all"]}
    assert v["refresh"] == 2  # new instances appear as the time range moves
    assert v["sort"] in SORT


def test_every_panel_queries_the_chosen_datasource() -> None:
    for panel in load()["panels"]:
        assert panel["datasource"] == DATASOURCE_REF, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE_REF, panel["title"]
            assert target["expr"].strip() and target["legendFormat"].strip()


def test_every_query_filters_by_every_variable_that_applies() -> None:
    defined = set(variables()) | GRAFANA_GLOBALS
    for q in panel_queries():
        used = {a or b for a, b in VARIABLE_USE.findall(q.expr)}
        assert used <= defined, (q.panel, used - defined)
        selectors = metrics_of(q.expr)
        assert selectors, q.expr
        # Every metric the query reads is selected, none read bare (unfiltered).
        bare = re.findall(r"\b((?:aiohttp|http)_client_\w+)\b(?!\{)", q.expr)
        assert not bare, (q.panel, bare)
        for metric, matchers in selectors:
            wanted = {"service", "instance"} if metric in NO_HOST_METRICS else set(FILTER_LABELS)
            for variable in wanted:
                assert matchers.get(FILTER_LABELS[variable]) == ("=~", f"${variable}"), (
                    q.panel, metric, variable)  # fmt: skip


def test_every_aggregation_keeps_services_processes_pools_and_hosts_apart() -> None:
    """Two services, two processes of one, two pools or two hosts never add up into one
    line: every aggregation keeps the labels the alerts keep (one alert, one line)."""
    for q in panel_queries():
        aggregations = AGGREGATION.findall(q.expr)
        assert aggregations, q.expr
        (metric, _), *_ = metrics_of(q.expr)
        keep = ALERT_LABELS - (HOST_LABELS if metric in NO_HOST_METRICS else set())
        for op, mode, labels in aggregations:
            assert mode == "by", (q.panel, op, "an aggregation without `by` mixes them all")
            by = {label.strip() for label in labels.split(",")}
            assert keep <= by, (q.panel, keep - by)
            if "histogram_quantile" in q.expr:
                assert "le" in by, q.panel


def test_every_legend_names_the_series_it_draws() -> None:
    """Whatever a query keeps apart, its legend tells apart."""
    for panel in load()["panels"]:
        for target in panel["targets"]:
            by = set()
            for _, _, labels in AGGREGATION.findall(target["expr"]):
                by |= {label.strip() for label in labels.split(",")} - {"le"}
            shown = set(re.findall(r"\{\{(\w+)\}\}", target["legendFormat"]))
            assert shown == by, (panel["title"], target["refId"], by ^ shown)


@pytest.mark.prometheus
def test_promtool_parses_every_query_with_the_variables_filled_in(
    tmp_path: pathlib.Path,
) -> None:
    values = {"service": ["svc-a", "svc.b"], "instance": "f0e1", "host": "127.0.0.1"}
    exprs = [fill(q.expr) for q in panel_queries()]
    exprs += [fill(q.expr, **values) for q in panel_queries()]  # type: ignore[arg-type]
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(exprs)
    ]}]}  # fmt: skip
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    done = run_promtool("check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in done.stdout


def test_fill_writes_the_variables_as_grafana_does() -> None:
    expr = 'x{job=~"$service", instance=~"${instance}", server_address=~"$host"}[$__rate_interval]'
    assert fill(expr) == 'x{job=~".*", instance=~".*", server_address=~".*"}[1m]'
    filled = fill(expr, service=["a", "b.c"], instance="i-1", host="127.0.0.1")
    assert filled == (
        r'x{job=~"(a|b\\.c)", instance=~"i\\-1", server_address=~"127\\.0\\.0\\.1"}[1m]'
    )


# --- provisioning ------------------------------------------------------------------


def compose_mounts() -> dict[str, str]:
    """The Grafana container's volumes: host path (relative to the repo) -> container path."""
    volumes = yaml.safe_load(COMPOSE.read_text())["services"]["grafana"]["volumes"]
    mounts = {}
    for volume in volumes:
        source, target, *_ = volume.split(":")
        mounts[str(pathlib.Path(source))] = target
    return mounts


def test_provisioning_loads_the_dashboards_folder() -> None:
    mounts = compose_mounts()
    assert mounts["deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    (provider,) = yaml.safe_load((PROVISIONING / "dashboards/dashboards.yaml").read_text())[
        "providers"
    ]
    assert provider["type"] == "file"
    # The provider reads the folder the dashboard is in, as the container sees it.
    assert provider["options"]["path"] == mounts[str(DASHBOARD.parent.relative_to(ROOT))]
    assert DASHBOARD.suffix == ".json"
    assert provider["name"].strip() and isinstance(provider["folder"], str)


def test_the_provisioned_datasource_is_what_the_variable_lists() -> None:
    (source,) = yaml.safe_load((PROVISIONING / "datasources/prometheus.yaml").read_text())[
        "datasources"
    ]
    # The datasource variable lists data sources of this type; this one is the default.
    assert source["type"] == variables()["datasource"]["query"]
    assert source["isDefault"] is True
    # $__rate_interval is at least four scrape intervals: Grafana must know the real one.
    scrape = yaml.safe_load(PROMETHEUS_CONFIG.read_text())["global"]["scrape_interval"]
    assert source["jsonData"]["timeInterval"] == scrape
