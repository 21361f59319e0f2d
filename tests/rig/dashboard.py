"""The Grafana dashboard (deploy/grafana/dashboards/aiohttp-pool.json) as the tests read
it: its panels' queries, and those queries with the template variables filled in the way
Grafana fills them before it sends a query to Prometheus."""

from __future__ import annotations

import json
import math
import pathlib
import re
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Union

ROOT = pathlib.Path(__file__).parent.parent.parent
DASHBOARD = ROOT / "deploy/grafana/dashboards/aiohttp-pool.json"

#: The service, instance and host variables' "All" value (their ``allValue``).
ALL = ".*"
#: What ``$__rate_interval`` becomes here: Grafana makes it at least four scrape
#: intervals (5 s in deploy/prometheus.yml), so a minute is what a user sees zoomed out.
RATE_INTERVAL = "1m"

Value = Union[str, Sequence[str]]


@dataclass(frozen=True)
class PanelQuery:
    """One target of one panel, its expression as the JSON holds it."""

    panel: str
    ref_id: str
    expr: str


def load() -> dict[str, Any]:
    """The dashboard's JSON."""
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def panel_queries() -> list[PanelQuery]:
    """Every target of every panel, in the dashboard's order."""
    return [
        PanelQuery(panel["title"], target["refId"], target["expr"])
        for panel in load()["panels"]
        for target in panel["targets"]
    ]


def regex_value(value: Value) -> str:
    """A variable's value inside a PromQL ``=~"..."`` matcher, as Grafana writes it: the
    All value as is; chosen values regex-escaped, several joined as ``(a|b)``; then
    escaped once more for the PromQL string literal."""
    if isinstance(value, str):
        if value == ALL:
            return ALL
        value = [value]
    escaped = [re.escape(v) for v in value]
    joined = escaped[0] if len(escaped) == 1 else f"({'|'.join(escaped)})"
    return joined.replace("\\", "\\\\")


def fill(
    expr: str,
    *,
    service: Value = ALL,
    instance: Value = ALL,
    host: Value = ALL,
    rate_interval: str = RATE_INTERVAL,
) -> str:
    """``expr`` with the dashboard's variables replaced (default: All everywhere)."""
    values = {"service": service, "instance": instance, "host": host}
    for name, value in values.items():
        expr = expr.replace(f"${{{name}}}", regex_value(value))
        expr = expr.replace(f"${name}", regex_value(value))
    return expr.replace("$__rate_interval", rate_interval)


def label_values(prometheus_url: str, query: str) -> list[str]:
    """A ``label_values(series, label)`` variable query, answered the way Grafana's
    Prometheus data source answers it: the label's values among the series that match."""
    match = re.fullmatch(r"label_values\((.+), (\w+)\)", query)
    if match is None:
        raise ValueError(f"not a label_values(series, label) query: {query!r}")
    series, label = match.groups()
    params = urllib.parse.urlencode({"match[]": series})
    with urllib.request.urlopen(
        f"{prometheus_url}/api/v1/label/{label}/values?{params}", timeout=30
    ) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return sorted(body["data"])


def has_finite_value(result: list[dict[str, Any]]) -> bool:
    """Whether an instant query's result has a number Grafana would draw (not NaN)."""
    return any(math.isfinite(float(r["value"][1])) for r in result)
