"""The alerting rules in the native stack (deploy/native/stack.sh: the real Collector and
Debian's Prometheus started with deploy/prometheus.yml, which names deploy/alerts.yml):
every rule is loaded and evaluates cleanly, and the demo's `leak` scenario, sent over OTLP
through the Collector, raises the pool-wait-timeout alert for its own process."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from .rig.pipeline import UP_TIMEOUT, NativeStack, start_native_stack

pytestmark = [pytest.mark.pipeline, pytest.mark.timeout(UP_TIMEOUT + 300)]

RULES = pathlib.Path(__file__).parent.parent / "deploy/alerts.yml"


def alert_names() -> set[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"] for group in groups for rule in group["rules"]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    yield from start_native_stack(tmp_path_factory.mktemp("alerts-stack"))


def poll(check: Any, timeout: float) -> Any:
    """Call ``check()`` (bounded) until it returns something truthy; returns the last."""
    deadline = time.monotonic() + timeout
    result = check()
    while not result and time.monotonic() < deadline:
        time.sleep(0.5)
        result = check()
    return result


def test_the_stack_loads_and_evaluates_every_alerting_rule(stack: NativeStack) -> None:
    def evaluated() -> list[dict[str, Any]]:
        rules = stack.prometheus.alerting_rules()
        return rules if rules and all(r["health"] != "unknown" for r in rules) else []

    rules = poll(evaluated, timeout=60)
    assert {r["name"] for r in rules} == alert_names()
    for rule in rules:
        assert rule["health"] == "ok" and not rule.get("lastError"), rule


def test_the_demos_leak_over_otlp_raises_the_timeout_alert(stack: NativeStack) -> None:
    instance = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["OTEL_RESOURCE_ATTRIBUTES"] = f"service.instance.id={instance}"
    done = subprocess.run(
        [sys.executable, "-m", "aiohttp_pool_otel", "demo", "--scenario", "leak",
         "--otlp", stack.otlp_grpc, "--protocol", "grpc", "--json", "--quiet"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    slow_port = report["hosts"]["slow"].rsplit(":", 1)[1]

    def mine() -> list[dict[str, Any]]:
        return [
            a
            for a in stack.prometheus.alerts()
            if a["labels"].get("instance") == instance
            and a["labels"]["alertname"] == "AiohttpPoolWaitTimeouts"
        ]

    # The Collector exports, Prometheus scrapes and evaluates every 5 s.
    alerts = poll(mine, timeout=90)
    series = stack.prometheus.query(
        f'{{__name__=~"aiohttp_client_connection_(timeouts_total|held_too_long|available)",'
        f'instance="{instance}"}}'
    )
    assert alerts, f"no timeout alert for {instance}: {stack.prometheus.alerts()}; {series}"
    (alert,) = alerts
    labels = alert["labels"]
    assert labels["job"] == "aiohttp-pool-otel-demo"  # service.name, kept by honor_labels
    assert labels["server_port"] == slow_port and labels["aiohttp_pool_name"] == "demo"
    assert alert["state"] == "firing"
    assert f"in aiohttp-pool-otel-demo ({instance})" in alert["annotations"]["description"]
