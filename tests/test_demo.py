"""The demo, run as users run it: a subprocess of the console script."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

import pytest

from .rig.otlp_receivers import GrpcOtlpReceiver
from .test_demo_json import VALIDATOR


def demo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aiohttp_pool_otel", *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})},
    )  # fmt: skip


def run_json(*args: str) -> dict[str, Any]:
    done = demo("demo", "--json", "--quiet", *args)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_puzzle_table_and_explanation() -> None:
    done = demo("demo")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    lines = out.splitlines()
    rows = [line for line in lines if line[:2] in {f"{i} " for i in range(1, 7)}]
    assert len(rows) == 6
    assert "small: eof/headers -> pooled" in rows[0] and " new " in rows[0]
    assert "small: eof/headers -> pooled" in rows[1] and " reused " in rows[1]
    assert out.count("slow: close -> closed") == 3
    assert "stayed 5, 5" in out
    assert "went 4, 3, 2" in out
    assert "aiohttp.connection.lease" in out  # the span tree
    assert "http.client.open_connections: small/active=0  small/idle=1  slow/active=3" in out
    assert "request 5 done" in done.stderr  # progress goes to stderr
    # The one option beyond the limits is named, with its default and why.
    assert "OpenTelemetryTCPConnector(limit=25, limit_per_host=5, trace_all_leases=True" in out
    assert "trace_all_leases=True (default False): " in out
    assert "small: request 2 reused the connection" in out  # singular: one request
    assert "request(s)" not in out and "connection(s)" not in out


def test_each_scenario_names_its_options_and_hosts() -> None:
    for scenario, option in [
        ("exhaustion", "trace_all_leases=True (default False): "),
        ("leak", "watchdog_threshold=0.3 (default None): "),
    ]:
        done = demo("demo", "--quiet", "--scenario", scenario)
        assert done.returncode == 0, done.stderr
        assert option in done.stdout
        assert "hosts: small = http://127.0.0.1:" in done.stdout
        assert "(`small /late`: the same after 0.2 s)" in done.stdout
    assert "capture_request_location" not in done.stdout  # the leak scenario does not need it
    # The leak's text names the garbage-collected release and the metric the alert reads.
    assert "small: gc -> closed (held " in done.stdout
    assert "counted 1 release with reason gc" in done.stdout
    assert "aiohttp.client.connection.releases: small/gc/closed=1" in done.stdout


def test_puzzle_json_observations() -> None:
    result = run_json()
    rows = result["rows"]
    assert [r["connection"] for r in rows[:5]] == ["new", "reused", "new", "new", "new"]
    assert [r["pools"]["small"]["available"] for r in rows[:5]] == [5, 5, 5, 5, 5]
    assert [r["pools"]["slow"]["available"] for r in rows[2:5]] == [4, 3, 2]
    assert [r["pools"]["slow"]["active"] for r in rows[2:5]] == [1, 2, 3]
    first = rows[0]["releases"]
    assert [(r["host"], r["reason"], r["phase"], r["outcome"]) for r in first] == [
        ("small", "eof", "headers", "pooled")
    ]
    closing = rows[5]["releases"]
    assert {(r["host"], r["reason"], r["outcome"]) for r in closing} == {
        ("slow", "close", "closed")
    }
    assert len(closing) == 3
    assert any("phase=headers" in line for line in result["explanation"])
    # aiohttp marked the small responses closed at EOF, before the demo closed anything.
    assert result["facts"]["closed_before_close"] == [True, True, False, False, False]
    assert result["facts"]["closed_after_close"] == [True] * 5
    assert result["options"] == {"trace_all_leases": True}
    assert result["otlp"] is None
    assert {s["name"] for s in result["spans"]} >= {
        "aiohttp.connection.create", "aiohttp.connection.lease"
    }  # fmt: skip


def test_exhaustion_shows_queue_waits() -> None:
    result = run_json("--scenario", "exhaustion")
    facts = result["facts"]
    assert facts["requests"] == 8
    assert facts["wait_spans"] == 6
    assert facts["blocking_limits"] == ["limit_per_host"]
    assert facts["peak_waiting"] >= 1
    # The gauge read at the peak agrees with the pool and is printed in the text too.
    assert facts["pending_requests_at_peak"] == facts["peak_waiting"]
    assert any(
        f"pending_requests gauge read {facts['peak_waiting']} at that peak" in line
        for line in result["explanation"]
    )
    assert facts["wait_ms_max"] > 100
    assert sum(s["name"] == "aiohttp.connection.wait" for s in result["spans"]) == 6


def test_leak_is_revealed() -> None:
    result = run_json("--scenario", "leak")
    facts = result["facts"]
    assert facts["timed_out_request"] == 4
    assert facts["wait_error_type"] == "pool_wait_timeout"
    assert facts["wait_pool_active"] == 3
    assert facts["held_too_long_after_timeout"] == 3
    assert facts["responses_dropped"] == 3
    assert facts["active_after_gc"] == 3  # dropping streaming responses frees nothing
    # A response whose body was cut short is freed by the garbage collector, counted as
    # the leak it is: the release table shows it on the small host, closed, not pooled.
    assert facts["gc_releases"] == 1
    rows = result["rows"]
    (cut,) = [r for r in rows if "/cut" in r["action"]]
    assert [(r["host"], r["reason"], r["phase"], r["outcome"]) for r in cut["releases"]] == [
        ("small", "gc", None, "closed")
    ]
    assert cut["connection"] == "new"
    assert cut["pools"]["small"] == {"active": 0, "idle": 0, "waiting": 0, "available": 3}
    assert cut["pools"]["slow"]["active"] == 3  # the streamed ones are still held
    assert any("1 release with reason gc" in line for line in result["explanation"])
    lease = [
        s["attributes"] for s in result["spans"]
        if s["attributes"].get("aiohttp.connection.release.reason") == "gc"
    ]  # fmt: skip
    assert len(lease) == 1 and lease[0]["aiohttp.connection.release.outcome"] == "closed"
    assert result["options"] == {"watchdog_threshold": 0.3}
    last = rows[-1]["releases"]
    assert [r["reason"] for r in last] == ["connector_closed"] * 3


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["demo", "--bogus"], "aiohttp-pool-otel demo: error: unrecognized arguments: --bogus"),
        (["demo", "--scenario", "nope"], "aiohttp-pool-otel demo: error: argument --scenario"),
        (["demo", "--otlp", "127.0.0.1:4317"], "aiohttp-pool-otel demo: error: --otlp: "),
        (["demo", "--otlp", "http://127.0.0.1:1"], "aiohttp-pool-otel demo: error: --otlp: "),
        ([], "aiohttp-pool-otel: error: the following arguments are required"),
        (["demo", "--otlp", "--duration", "0"], "aiohttp-pool-otel demo: error: argument "
         "--duration: '0' is out of range: give more than 0 and at most 600 seconds"),
        (["demo", "--otlp", "--duration", "601"], "aiohttp-pool-otel demo: error: argument "
         "--duration: '601' is out of range"),
        (["demo", "--otlp", "--duration", "1m"], "aiohttp-pool-otel demo: error: argument "
         "--duration: not a number of seconds: '1m'"),
        (["demo", "--duration", "5"], "aiohttp-pool-otel demo: error: --duration needs --otlp"),
    ],
)
def test_bad_options_one_line_exit_2(args: list[str], fragment: str) -> None:
    done = demo(*args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith(fragment), done.stderr


def test_help_explains_every_option() -> None:
    done = demo("demo", "--help")
    assert done.returncode == 0
    for option in ("--scenario", "--otlp", "--protocol", "--json", "--duration", "puzzle",
                   "exhaustion", "leak"):  # fmt: skip
        assert option in done.stdout
    assert "to see the dashboard fill" in " ".join(done.stdout.split())


def test_otlp_option_sends_to_a_collector() -> None:
    receiver = GrpcOtlpReceiver().start()
    try:
        done = demo("demo", "--quiet", "--otlp", receiver.endpoint, "--protocol", "grpc")
        assert done.returncode == 0, done.stderr
        assert f"OTLP: delivered to {receiver.endpoint} (grpc): " in done.stdout
        names = {s.name for s in receiver.spans()}
        assert {"aiohttp.connection.lease", "aiohttp.connection.create"} <= names
        assert receiver.metrics("aiohttp.client.connection.releases")
        # The metric values are shown in OTLP mode as well.
        assert "http.client.open_connections: small/active=0" in done.stdout
    finally:
        receiver.stop()


def queued_totals(receiver: GrpcOtlpReceiver) -> list[int]:
    """The queued-acquisitions counter (cumulative) as each metric export carried it."""
    return [
        sum(p.as_int for p in metric.sum.data_points)
        for metric in receiver.metrics("aiohttp.client.connection.queued")
    ]


def test_duration_replays_the_scenario_and_exports_it_rising() -> None:
    """``--duration`` keeps the scenario going in fresh sessions: the report stays the
    first pass's, the Collector gets every pass's spans, and the counters it receives
    rise export after export (what a scraper needs to see a rate)."""
    receiver = GrpcOtlpReceiver().start()
    try:
        done = demo("demo", "--scenario", "exhaustion", "--json", "--quiet", "--otlp",
                    receiver.endpoint, "--protocol", "grpc", "--duration", "3")  # fmt: skip
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        VALIDATOR.validate(report)
        received_spans = len(receiver.spans())
        queued = queued_totals(receiver)
    finally:
        receiver.stop()
    repeats = report["repeats"]
    # A pass a second at most, none begun after 3 s: the first, then one or two more.
    assert repeats["duration"] == 3 and repeats["passes"] in (1, 2), repeats
    passes = repeats["passes"] + 1
    # The report is one pass's: 8 requests, 6 queued, one row.
    assert report["facts"]["requests"] == 8 and report["facts"]["wait_spans"] == 6
    assert len(report["rows"]) == 1
    # Each replay is the whole scenario again, and every span went out.
    assert repeats["spans"] == repeats["passes"] * len(report["spans"])
    assert report["otlp"]["spans"] == passes * len(report["spans"]) == received_spans
    # 6 of the 8 requests queue in every pass; the exports saw the count grow to that.
    assert queued[-1] == 6 * passes
    assert len(set(queued)) >= 2 and queued == sorted(queued), queued


def test_duration_summarises_the_repeats_after_the_first_pass() -> None:
    """The text report of a longer run: the one-pass report, then one line on the
    repeats before the OTLP line."""
    receiver = GrpcOtlpReceiver().start()
    try:
        done = demo("demo", "--quiet", "--otlp", receiver.endpoint, "--protocol", "grpc",
                    "--duration", "2")  # fmt: skip
    finally:
        receiver.stop()
    assert done.returncode == 0, done.stderr
    sections = done.stdout.strip().split("\n\n")
    repeats = re.fullmatch(
        r"Repeats \(--duration 2\): (\d+) more pass(?:es)? of the scenario in [\d.]+ s after "
        r"the first, each in a fresh session against the same two servers\. The tables, "
        r"spans and metric values above are the first pass's; the OTLP export carries all "
        r"(\d+) passes \((\d+) more spans\)\.",
        " ".join(sections[-2].split()),
    )
    assert repeats, sections[-2]
    assert int(repeats[2]) == int(repeats[1]) + 1
    assert sections[-1].startswith(f"OTLP: delivered to {receiver.endpoint} (grpc): ")
    assert "close all 5 responses" in done.stdout  # the puzzle's table, once
    assert done.stdout.count("What happened:") == 1
