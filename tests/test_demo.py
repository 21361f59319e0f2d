"""The demo, run as users run it: a subprocess of the console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from .rig.otlp_receivers import GrpcOtlpReceiver


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
    assert facts["wait_ms_max"] > 100
    assert sum(s["name"] == "aiohttp.connection.wait" for s in result["spans"]) == 6


def test_leak_is_revealed() -> None:
    result = run_json("--scenario", "leak")
    facts = result["facts"]
    assert facts["timed_out_request"] == 4
    assert facts["error_type"] == "pool_wait_timeout"
    assert facts["pool_active"] == 3
    assert facts["held_too_long"] == 3
    assert facts["active_after_gc"] == 3  # dropping streaming responses frees nothing
    last = result["rows"][-1]["releases"]
    assert [r["reason"] for r in last] == ["connector_closed"] * 3


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["demo", "--bogus"], "unrecognized arguments: --bogus"),
        (["demo", "--scenario", "nope"], "invalid choice: 'nope'"),
        (["demo", "--otlp", "127.0.0.1:4317"], "got '127.0.0.1:4317'"),
        ([], "required"),
    ],
)
def test_bad_options_one_line_exit_2(args: list[str], fragment: str) -> None:
    done = demo(*args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert fragment in done.stderr


def test_help_explains_every_option() -> None:
    done = demo("demo", "--help")
    assert done.returncode == 0
    for option in ("--scenario", "--otlp", "--protocol", "--json", "puzzle", "exhaustion", "leak"):
        assert option in done.stdout


def test_otlp_option_sends_to_a_collector() -> None:
    receiver = GrpcOtlpReceiver().start()
    try:
        done = demo("demo", "--quiet", "--otlp", receiver.endpoint)
        assert done.returncode == 0, done.stderr
        assert "exported over OTLP" in done.stdout
        names = {s.name for s in receiver.spans()}
        assert {"aiohttp.connection.lease", "aiohttp.connection.create"} <= names
        assert receiver.metrics("aiohttp.client.connection.releases")
    finally:
        receiver.stop()
