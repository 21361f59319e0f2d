"""The Go tools the native stack builds are pinned to approved releases only.

The Go module proxy serves releases that are not approved for this project (for
Jaeger, v1.76.0 is served and is not an approved release), and `go get -tool` takes
the newest it is served. So every version the build reads is written here with the
reason it is allowed; a bump must change this list, on purpose, with its reason.
"""

from __future__ import annotations

import pathlib
import re

import yaml

ROOT = pathlib.Path(__file__).parent.parent
NATIVE = ROOT / "deploy/native"
MANIFEST = ROOT / "deploy/otelcol-builder.yaml"

CORE = "the Collector core release approved with otelcol and service v0.165.0"
STABLE = "the stable core modules of that release (v0.165.0 goes with v1.71.0)"
CONTRIB = "the contrib release that goes with core v0.165.0 (and the compose image)"

# go.mod of ours -> (tool module, approved version, why).
TOOLS = {
    "jaeger/go.mod": (
        "github.com/jaegertracing/jaeger",
        "v1.75.0",
        "Jaeger 2.12.0, the approved release; v1.76.0 is served but is not an approved release",
    ),
    "otelcol-builder/go.mod": ("go.opentelemetry.io/collector/cmd/builder", "v0.165.0", CORE),
}
# Every module the Collector manifest builds in -> (approved version, why).
COLLECTOR_MODULES = {
    "go.opentelemetry.io/collector/receiver/otlpreceiver": ("v0.165.0", CORE),
    "go.opentelemetry.io/collector/processor/batchprocessor": ("v0.165.0", CORE),
    "go.opentelemetry.io/collector/exporter/otlpexporter": ("v0.165.0", CORE),
    "github.com/open-telemetry/opentelemetry-collector-contrib/exporter/prometheusexporter": (
        "v0.165.1",
        CONTRIB,
    ),
    "github.com/open-telemetry/opentelemetry-collector-contrib/extension/healthcheckextension": (
        "v0.165.1",
        CONTRIB,
    ),
    "go.opentelemetry.io/collector/confmap/provider/envprovider": ("v1.71.0", STABLE),
    "go.opentelemetry.io/collector/confmap/provider/fileprovider": ("v1.71.0", STABLE),
}
# The Go language version our go.mod files declare: 1.26 builds with the machines' Go;
# a newer one would need GOTOOLCHAIN=go1.27.3 in every shell, CI script and the docs.
GO_DIRECTIVE = "1.26.0"


def required(go_mod: str, module: str) -> list[str]:
    """The versions ``go_mod`` requires of ``module`` (one, in a tidy go.mod)."""
    return re.findall(rf"^\s*(?:require\s+)?{re.escape(module)} (v\S+)", go_mod, re.M)


def test_every_go_mod_of_ours_is_listed() -> None:
    assert {str(p.relative_to(NATIVE)) for p in NATIVE.rglob("go.mod")} == set(TOOLS)


def test_each_go_tool_is_at_its_approved_version() -> None:
    for path, (module, version, why) in TOOLS.items():
        go_mod = (NATIVE / path).read_text()
        tools = re.findall(r"^tool (\S+)", go_mod, re.M)
        assert len(tools) == 1 and tools[0].startswith(module), (path, tools)
        assert required(go_mod, module) == [version], (path, module, why)
        assert re.findall(r"^go (\S+)", go_mod, re.M) == [GO_DIRECTIVE], path
        assert not re.search(r"^toolchain ", go_mod, re.M), path  # machines ignore it


def test_go_sum_holds_only_the_approved_tool_release() -> None:
    for path, (module, version, why) in TOOLS.items():
        go_sum = (NATIVE / path).with_name("go.sum").read_text()
        versions = set(re.findall(rf"^{re.escape(module)} (v[^/\s]+)", go_sum, re.M))
        assert versions == {version}, (path, versions, why)


def test_the_collector_manifest_builds_only_approved_modules() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    entries = [
        entry["gomod"]
        for kind in ("receivers", "processors", "exporters", "extensions", "providers")
        for entry in manifest.get(kind, [])
    ]
    pinned = dict(entry.split() for entry in entries)
    assert len(pinned) == len(entries)  # no module twice
    assert pinned == {module: version for module, (version, _) in COLLECTOR_MODULES.items()}
    # The binary's own version is the contrib release it is assembled from.
    assert manifest["dist"]["version"] == "0.165.1"
