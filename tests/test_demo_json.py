"""`demo --json` from real runs validates against the schema kept in the package
(src/aiohttp_pool_otel/demo/report.schema.json), and docs/demo.md documents every field."""

from __future__ import annotations

import copy
import json
import os
import pathlib
import re
import subprocess
import sys
from typing import Any

import jsonschema
import pytest

import aiohttp_pool_otel.demo

from .rig.otlp_receivers import HttpOtlpReceiver

SCHEMA_PATH = pathlib.Path(aiohttp_pool_otel.demo.__file__).parent / "report.schema.json"
SCHEMA = json.loads(SCHEMA_PATH.read_text())
DEMO_PAGE = (pathlib.Path(__file__).parent.parent / "docs/demo.md").read_text()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def run_json(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "aiohttp_pool_otel", "demo", "--json", "--quiet", *args],
        capture_output=True, text=True, timeout=180, env=dict(os.environ),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def test_the_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("scenario", ["puzzle", "exhaustion", "leak"])
def test_a_real_run_validates(scenario: str) -> None:
    report = run_json("--scenario", scenario)
    VALIDATOR.validate(report)
    assert report["schema_version"] == 1
    assert report["scenario"] == scenario
    if scenario == "leak":
        # The field added within version 1: the leak scenario always reports it.
        assert report["facts"]["gc_releases"] >= 1
        bad = copy.deepcopy(report)
        del bad["facts"]["gc_releases"]
        assert not VALIDATOR.is_valid(bad)
        bad["facts"]["gc_releases"] = -1
        assert not VALIDATOR.is_valid(bad)


def test_an_otlp_run_validates_and_reports_delivery() -> None:
    rx = HttpOtlpReceiver().start()
    try:
        report = run_json("--otlp", rx.endpoint, "--protocol", "http/protobuf")
    finally:
        rx.stop()
    VALIDATOR.validate(report)
    otlp = report["otlp"]
    assert otlp["protocol"] == "http/protobuf"
    assert otlp["spans_delivered"] == otlp["spans"] == len(report["spans"]) == len(rx.spans())
    assert otlp["flush_finished"] is True


def test_the_schema_rejects_what_contradicts_it() -> None:
    report = run_json()
    bad = copy.deepcopy(report)
    bad["facts"]["closed_before_close"] = "yes"
    assert not VALIDATOR.is_valid(bad)
    bad = copy.deepcopy(report)
    bad["rows"][0]["releases"][0]["reason"] = "unknown"
    assert not VALIDATOR.is_valid(bad)
    bad = copy.deepcopy(report)
    del bad["schema_version"]
    assert not VALIDATOR.is_valid(bad)


def field_names(schema: dict[str, Any]) -> set[str]:
    """Every property name the schema defines, at any depth."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "properties" and isinstance(value, dict):
                    names.update(value)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(schema)
    return names


def test_the_demo_page_documents_every_field() -> None:
    start = DEMO_PAGE.index("\n## JSON output\n")
    end = DEMO_PAGE.find("\n## ", start + 1)
    section = DEMO_PAGE[start : end if end != -1 else len(DEMO_PAGE)]
    # Named as `field` or as the last part of a path (`rows[].pools`).
    missing = sorted(
        name
        for name in field_names(SCHEMA)
        if not re.search(rf"`(?:[\w\[\]]+\.)?{re.escape(name)}`", section)
    )
    assert missing == []
