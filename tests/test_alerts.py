"""The alerting rules (deploy/alerts.yml): promtool accepts them, their unit tests
(deploy/alerts.test.yml) pass and can fail, every alert carries what on-call needs, and
docs/alerts.md is their runbook, one entry per alert."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from .rig.docs import anchor, headings, section

ROOT = pathlib.Path(__file__).parent.parent
RULES = ROOT / "deploy/alerts.yml"
RULE_TESTS = ROOT / "deploy/alerts.test.yml"
RUNBOOK = ROOT / "docs/alerts.md"
# The aggregation every rule keeps: one alert per process and per pool and host.
ALERT_LABELS = {"job", "instance", "aiohttp_pool_name", "server_address", "server_port"}


def promtool() -> str:
    path = os.environ.get("PROMTOOL_BIN") or shutil.which("promtool")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("promtool missing in CI: .ci/install_prometheus.sh must install it")
        pytest.skip("Debian's promtool is not installed (apt-get install prometheus)")
    return path


def run_promtool(*args: str, cwd: pathlib.Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def alert_names() -> list[str]:
    return [rule["alert"] for rule in rules()]


@pytest.mark.prometheus
def test_promtool_check_rules_is_clean() -> None:
    done = run_promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules())} rules found" in done.stdout
    assert "WARNING" not in done.stdout + done.stderr


@pytest.mark.prometheus
def test_promtool_unit_tests_pass() -> None:
    done = run_promtool("test", "rules", str(RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@pytest.mark.prometheus
@pytest.mark.parametrize(
    ("alert", "original", "broken"),
    [
        # each guard removed in turn: the unit tests must notice
        ("AiohttpPoolSaturated", "        for: 5m\n", "        for: 0m\n"),
        ("AiohttpPoolSlowWaits", ") >= 5\n", ") >= 0\n"),
        ("AiohttpPoolWaitTimeouts", "aiohttp_client_connection_timeouts_total offset 5m",
         "aiohttp_client_connection_timeouts_total"),
        ("AiohttpPoolConnectionLeak", 'reason="gc"} offset 15m', 'reason="gc"}'),
        ("AiohttpPoolConnectionsHeldTooLong", "held_too_long[2m]", "held_too_long[10m]"),
        ("AiohttpPoolConnectionChurn", ") >= 0.1\n", ") >= 0\n"),
    ],
)  # fmt: skip
def test_unit_tests_catch_a_broken_rule(
    tmp_path: pathlib.Path, alert: str, original: str, broken: str
) -> None:
    text = RULES.read_text()
    start = text.index(f"- alert: {alert}\n")
    end = text.find("- alert: ", start + 1)
    end = len(text) if end < 0 else end
    rule = text[start:end]
    assert original in rule, (alert, original)
    (tmp_path / "alerts.yml").write_text(text[:start] + rule.replace(original, broken) + text[end:])
    shutil.copy(RULE_TESTS, tmp_path / "alerts.test.yml")
    done = run_promtool("test", "rules", "alerts.test.yml", cwd=tmp_path)
    assert done.returncode != 0, done.stdout
    assert f"alertname: {alert}" in done.stdout + done.stderr


def test_every_alert_has_what_on_call_needs() -> None:
    text = RULES.read_text()
    assert len(rules()) >= 6
    for rule in rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        notes = rule["annotations"]
        assert set(notes) == {"summary", "description", "runbook"}, name
        assert notes["runbook"] == runbook_of(name), name
        for label in ("server_address", "server_port", "aiohttp_pool_name", "job", "instance"):
            assert f"$labels.{label}" in notes["description"], (name, label)
        assert "for" in rule, name
        # every aggregation keeps exactly the alert labels (plus `le` for the quantile)
        for by in re.findall(r"by \(([^)]*)\)", rule["expr"]):
            assert {b.strip() for b in by.split(",")} - {"le"} == ALERT_LABELS, (name, by)
        # the reason for the threshold and `for:` is written beside the rule
        before = text[: text.index(f"- alert: {name}\n")].rstrip().splitlines()
        assert before[-1].strip().startswith("#"), name


def test_every_alert_has_unit_tests_that_fire_it_and_that_do_not() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())
    assert tests["rule_files"] == ["alerts.yml"]
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case["alert_rule_test"]:
            (fired if check["exp_alerts"] else quiet).add(check["alertname"])
            for alert in check["exp_alerts"]:
                assert set(alert["exp_annotations"]) == {"summary", "description", "runbook"}
    assert fired == set(alert_names())
    assert quiet == set(alert_names())


def test_prometheus_config_loads_the_rules_and_compose_mounts_them() -> None:
    config = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]  # relative: next to the config
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    volumes = compose["services"]["prometheus"]["volumes"]
    assert "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in volumes
    assert "./deploy/alerts.yml:/etc/prometheus/alerts.yml:ro" in volumes


def runbook_of(alert: str) -> str:
    """The annotation that points at ``alert``'s entry in the runbook."""
    return f"docs/alerts.md#{anchor(alert)}"


def test_the_runbook_has_an_entry_for_every_alert_and_no_other() -> None:
    text = RUNBOOK.read_text()
    entries = [h for h in headings(text) if h.startswith("Aiohttp")]
    assert sorted(entries) == sorted(alert_names())
    for rule in rules():
        entry = section(text, rule["alert"])
        assert f"Severity: **{rule['labels']['severity']}**." in entry, rule["alert"]
        for part in ("**Expression**", "**Fires when**", "**What to do first.**"):
            assert part in entry, (rule["alert"], part)
