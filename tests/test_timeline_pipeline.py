"""``aiohttp-pool-otel timeline`` against the real pipeline: the demo's exhaustion
scenario goes over OTLP through the real Collector into the real Jaeger v2, the
command reads it back from Jaeger's query API, and the picture is checked against
the spans Jaeger holds (tests/rig/pipeline.py starts the native stack)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Optional

import pytest

from .rig.pipeline import UP_TIMEOUT, NativeStack, spans_of, start_native_stack
from .rig.timeline_svg import (
    Drawing,
    check_bars_match_spans,
    check_colours,
    parse,
    pool_spans,
    tags,
)

pytestmark = [pytest.mark.pipeline, pytest.mark.timeout(UP_TIMEOUT + 600)]

DEMO_SERVICE = "aiohttp-pool-otel-demo"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    yield from start_native_stack(tmp_path_factory.mktemp("stack"))


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aiohttp_pool_otel", *args],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@dataclass
class Exhaustion:
    """The demo's exhaustion run, what Jaeger holds of it, and both pictures of it."""

    traces: list[dict[str, Any]]
    report: dict[str, Any]
    timeline: subprocess.CompletedProcess[str]
    from_jaeger: Drawing
    from_demo: Drawing
    output: pathlib.Path


@pytest.fixture(scope="module")
def exhaustion(stack: NativeStack, tmp_path_factory: pytest.TempPathFactory) -> Exhaustion:
    out = tmp_path_factory.mktemp("timeline")
    instance = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["OTEL_RESOURCE_ATTRIBUTES"] = f"service.instance.id={instance}"
    start_us = int((time.time() - 5) * 1e6)
    demo = cli("demo", "--scenario", "exhaustion", "--otlp", stack.otlp_grpc,
               "--protocol", "grpc", "--json", "--quiet", "--timeline", str(out / "demo.svg"),
               env=env)  # fmt: skip
    assert demo.returncode == 0, demo.stderr
    report = json.loads(demo.stdout)
    names = Counter(s["name"] for s in report["spans"])
    traces = stack.wait_for_traces(
        DEMO_SERVICE, instance, start_us,
        lambda ts: Counter(s["operationName"] for s in spans_of(ts)) == names,
    )  # fmt: skip
    assert Counter(s["operationName"] for s in spans_of(traces)) == names
    output = out / "jaeger.svg"
    timeline = cli("timeline", "--jaeger", stack.jaeger, "--service", DEMO_SERVICE,
                   "--instance", instance, "--lookback", "10m", "--output", str(output),
                   env=env)  # fmt: skip
    assert timeline.returncode == 0, timeline.stderr
    return Exhaustion(
        traces, report, timeline, parse(output.read_text()),
        parse((out / "demo.svg").read_text()), output,
    )  # fmt: skip


def test_every_pool_span_in_jaeger_is_a_bar_where_it_is(exhaustion: Exhaustion) -> None:
    spans = pool_spans(exhaustion.traces)
    assert Counter(s["operationName"] for s in spans) == {
        "aiohttp.connection.lease": 8,
        "aiohttp.connection.create": 2,
        "aiohttp.connection.wait": 6,
    }
    check_bars_match_spans(exhaustion.from_jaeger, spans)
    check_colours(exhaustion.from_jaeger, spans)
    assert exhaustion.timeline.stdout == (
        f"wrote {exhaustion.output}: 2 connections (8 leases, 2 dials) and 6 queued "
        "requests on 1 host over "
        f"{exhaustion.timeline.stdout.rsplit(' over ', 1)[1]}"
    )


def test_the_exhaustion_at_a_glance(exhaustion: Exhaustion) -> None:
    """limit_per_host=2: two connection rows, each opened by its dial and busy with 4
    back-to-back leases; six queued requests, each wait ending where a lease begins."""
    drawing = exhaustion.from_jaeger
    rows = [r for r in drawing.rows if r["data-kind"] == "connection"]
    assert len(rows) == exhaustion.report["limit_per_host"] == 2
    by_id = {s["spanID"]: tags(s) for s in pool_spans(exhaustion.traces)}
    for row in rows:
        bars = sorted((b for b in drawing.bars if b.row == int(row["data-row"])), key=lambda b: b.x)
        assert [b.kind for b in bars] == ["dial"] + ["lease"] * 4
        # The row is one connection: every lease on it carries its local port.
        assert {by_id[b.span_id]["network.local.port"] for b in bars} == {
            int(row["data-local-port"])
        }
    waits = [b for b in drawing.bars if b.kind == "wait"]
    assert len(waits) == 6 and {b.row_kind for b in waits} == {"queue"}
    assert {b.attrib["data-blocking-limit"] for b in waits} == {"limit_per_host"}
    queued_leases = [
        b for b in drawing.bars
        if b.kind == "lease" and by_id[b.span_id]["aiohttp.connection.queued"]
    ]  # fmt: skip
    assert len(queued_leases) == 6
    for wait in waits:
        end = wait.x + wait.width
        assert any(abs(lease.x - end) <= 1.0 for lease in queued_leases), end


def test_the_demos_own_timeline_is_the_same_picture(exhaustion: Exhaustion) -> None:
    """`demo --timeline` draws from the SDK's spans what `timeline` draws from Jaeger."""

    def picture(d: Drawing) -> dict[str, tuple[str, str, Optional[int]]]:
        return {b.span_id: (b.kind, b.row_kind, b.local_port) for b in d.bars}

    assert picture(exhaustion.from_demo) == picture(exhaustion.from_jaeger)
    for bar in exhaustion.from_jaeger.bars:
        same = exhaustion.from_demo.bar(bar.span_id)
        assert abs(same.x - bar.x) <= 1.0 and abs(same.width - bar.width) <= 1.0


def test_no_traces_for_the_service_is_one_clear_line(
    stack: NativeStack, exhaustion: Exhaustion, tmp_path: pathlib.Path
) -> None:
    done = cli("timeline", "--jaeger", stack.jaeger, "--service", "no-such-service",
               "--output", str(tmp_path / "t.svg"), env=dict(os.environ))  # fmt: skip
    assert done.returncode == 1
    assert done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(
        "aiohttp-pool-otel timeline: error: no traces of service 'no-such-service' in the "
        f"last 15m at {stack.jaeger} (Jaeger has: "
    ), line
    assert DEMO_SERVICE in line
    assert not (tmp_path / "t.svg").exists()
