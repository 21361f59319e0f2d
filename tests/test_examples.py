"""Every example runs as shipped (bounded, against local servers or a local receiver)."""

from __future__ import annotations

import json
import os
import pathlib
import re
import socket
import subprocess
import sys

from .rig.otlp_receivers import HttpOtlpReceiver

EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True, text=True, timeout=120, cwd=EXAMPLES,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def console_spans(text: str) -> list[dict[str, object]]:
    """The JSON objects the SDK's console exporters print, back to back."""
    decoder, spans, i = json.JSONDecoder(), [], 0
    while (start := text.find("{", i)) != -1:
        try:
            obj, i = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            i = start + 1
            continue
        if isinstance(obj, dict) and "context" in obj:
            spans.append(obj)
    return spans


def test_console_exporters() -> None:
    done = run("console_exporters.py")
    assert done.returncode == 0, done.stderr
    names = [s["name"] for s in console_spans(done.stdout)]
    assert names.count("aiohttp.connection.wait") == 3  # 5 requests, 2 slots
    assert "aiohttp.client.connection.releases" in done.stdout
    assert "PoolStatistics(" in done.stderr


def test_otlp_to_collector() -> None:
    receiver = HttpOtlpReceiver().start()
    try:
        done = run(
            "otlp_to_collector.py", "--endpoint", receiver.endpoint + "/v1/traces",
            "--requests", "20",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        releases = "aiohttp.client.connection.releases"
        assert receiver.metrics(releases)  # flushed before the example exited
        assert {"aiohttp.connection.wait", "aiohttp.connection.lease"} <= {
            s.name for s in receiver.spans()
        }
        match = re.search(r"\(http/protobuf\): (\d+) spans, (\d+) metric data points", done.stdout)
        assert match, done.stdout
        assert int(match.group(1)) == len(receiver.spans())
        points = sum(
            len(getattr(m, str(m.WhichOneof("data"))).data_points) for m in receiver.metrics()
        )
        assert int(match.group(2)) == points
    finally:
        receiver.stop()


def test_otlp_to_collector_says_when_nothing_arrived() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = run("otlp_to_collector.py", "--endpoint", f"http://127.0.0.1:{port}",
               "--protocol", "grpc", "--requests", "5")  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith(
        "otlp_to_collector: error: nothing reached"
    )
    assert "grpc): 0 spans, 0 metric data points" in done.stdout


def test_with_contrib_instrumentation_nests_pool_spans_under_request_spans() -> None:
    done = run("with_contrib_instrumentation.py")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    roots = [line for line in lines if not line.startswith(" ")]
    assert roots == ["GET", "GET"]
    children = [line.strip() for line in lines if line.startswith("  ")]
    # The first request dials (create + its lease); the second queues (wait).
    assert sorted(children) == sorted(
        ["aiohttp.connection.create", "aiohttp.connection.lease", "aiohttp.connection.wait"]
    )


def test_leak_detection_service_reports_the_leak() -> None:
    done = run("leak_detection_service.py", "--duration", "3")
    assert done.returncode == 0, done.stderr
    assert "LEAK:" in done.stdout


def test_auto_instrumentation_example_runs_plain() -> None:
    done = run("auto_instrumentation.py")
    assert done.returncode == 0, done.stderr
    assert "connector: TCPConnector" in done.stdout
