"""What a user expects of the package: the licence in the repository and the wheel, a
changelog, the version in the README, a classifier per supported Python, no invented
URLs, and the extras the code names."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys
import zipfile

import pytest

from aiohttp_pool_otel._version import __version__

ROOT = pathlib.Path(__file__).parent.parent
tomllib = pytest.importorskip("tomllib")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
SUPPORTED = ["3.9", "3.10", "3.11", "3.12", "3.13"]


def test_the_readme_shows_the_package_version() -> None:
    install = (ROOT / "README.md").read_text().split("## Install", 1)[1].split("\n## ", 1)[0]
    (shown,) = re.findall(r"Version \*\*([^*]+)\*\*", install)
    assert shown == __version__


def test_the_changelog_has_this_version_and_an_unreleased_section() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog
    assert re.search(rf"^## \[{re.escape(__version__)}\] - \d{{4}}-\d\d-\d\d$", changelog, re.M)


def test_the_licence_is_the_apache_2_text() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert PROJECT["license"] == "Apache-2.0"
    assert PROJECT["license-files"] == ["LICENSE"]
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert len(text) > 10_000  # the full text, not a pointer to it


def test_a_classifier_for_each_supported_python() -> None:
    assert PROJECT["requires-python"] == f">={SUPPORTED[0]}"
    declared = {
        c.rsplit(" :: ", 1)[1]
        for c in PROJECT["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    }
    assert declared == set(SUPPORTED)
    # ... and each of them is tested: 3.11 by ./run-tests.sh, the others by the matrix.
    matrix = (ROOT / ".ci/python_matrix.sh").read_text()
    (pythons,) = re.findall(r'PYTHONS="\$\{PYTHONS:-([^}]+)\}"', matrix)
    assert set(pythons.split()) | {"3.11"} == set(SUPPORTED)


def test_no_invented_project_urls() -> None:
    # There is no public home for the project yet: no URL rather than a made-up one.
    assert "urls" not in PROJECT


def test_the_instrumentation_extra_brings_base_instrumentor() -> None:
    extras = PROJECT["optional-dependencies"]
    assert any(r.startswith("opentelemetry-instrumentation>=") for r in extras["instrumentation"])
    assert any(r.startswith("opentelemetry-exporter-otlp-proto-grpc") for r in extras["otlp"])


def test_the_wheel_ships_the_licence_and_the_demo_schema(tmp_path: pathlib.Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = tmp_path.glob("aiohttp_pool_otel-*.whl")
    assert wheel.name.startswith(f"aiohttp_pool_otel-{__version__}-")
    names = zipfile.ZipFile(wheel).namelist()
    dist_info = f"aiohttp_pool_otel-{__version__}.dist-info"
    assert f"{dist_info}/licenses/LICENSE" in names
    assert "aiohttp_pool_otel/demo/report.schema.json" in names
    assert "aiohttp_pool_otel/py.typed" in names
    metadata = zipfile.ZipFile(wheel).read(f"{dist_info}/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert "Classifier: Programming Language :: Python :: 3.13" in metadata
    assert "Project-URL" not in metadata
