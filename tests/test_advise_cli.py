"""``aiohttp-pool-otel advise`` as a command: its exits when Prometheus cannot answer
(unreachable, no series of the service) and its advice read from a real Prometheus
(Debian's package) scraping a real instrumented app, without the Go stack."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import re
import socket
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from aiohttp_pool_otel import OpenTelemetryTCPConnector
from aiohttp_pool_otel.advise import findings
from aiohttp_pool_otel.cli import build_parser, main

from .conftest import Server
from .rig.prometheus import PrometheusServer, prometheus_binary
from .test_prometheus import exporter, prometheus  # noqa: F401 (fixtures)


def advise(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the command in-process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main(["advise", *args])
    out, err = capsys.readouterr()
    return code, out, err


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_prometheus_exits_3_with_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = closed_port()
    url = f"http://ops:s3cret@127.0.0.1:{port}/?token=abc"
    code, out, err = advise(capsys, "--prometheus", url, "--service", "checkout")
    assert code == 3 and out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"aiohttp-pool-otel advise: error: cannot reach Prometheus at "
                          f"http://127.0.0.1:{port}: ")  # fmt: skip
    assert "s3cret" not in err and "token" not in err and "ops" not in err


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [("--window", "30x", "'30x'"), ("--rate-interval", "0s", "'0s'"),
     ("--prometheus", "prometheus:9090", "http(s)")],
)  # fmt: skip
def test_a_bad_option_exits_2_naming_it(
    capsys: pytest.CaptureFixture[str], option: str, value: str, named: str
) -> None:
    args = {"--prometheus": "http://127.0.0.1:9", "--service": "checkout", option: value}
    code, _, err = advise(capsys, *(x for kv in args.items() for x in kv))
    assert code == 2
    assert err.startswith(f"aiohttp-pool-otel advise: error: {option}: ") and named in err


@pytest.fixture(scope="module")
def empty_prometheus() -> Iterator[PrometheusServer]:
    binary = prometheus_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus missing in CI: .ci/install_prometheus.sh must install it")
        pytest.skip("Debian's prometheus is not installed (apt-get install prometheus)")
    prom = PrometheusServer(binary, []).start()
    yield prom
    prom.stop()


@pytest.mark.prometheus
def test_a_prometheus_without_pool_series_exits_1(
    capsys: pytest.CaptureFixture[str], empty_prometheus: PrometheusServer
) -> None:
    code, out, err = advise(
        capsys, "--prometheus", empty_prometheus.url, "--service", "checkout", "--window", "1h"
    )
    assert (code, out) == (1, "")
    assert err == (
        f"aiohttp-pool-otel advise: error: Prometheus at {empty_prometheus.url} holds no "
        "series of service 'checkout' (label job) in the last 3600s; it holds no "
        "aiohttp-pool-otel series at all (is the Collector's prometheus exporter scraped?)\n"
    )


@pytest.mark.prometheus
async def test_advice_from_a_real_prometheus_scraping_the_app(
    exporter: tuple[Any, int],  # noqa: F811
    prometheus: PrometheusServer,  # noqa: F811
    server: Server,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """60 requests, 4 at a time through limit_per_host=2: the advice reads back the
    configured limits, the exact counts, which limit blocked, and the hold time."""
    meter_provider, _ = exporter
    connector = OpenTelemetryTCPConnector(
        limit=10, limit_per_host=2, meter_provider=meter_provider, record_hold_time=True,
        pool_name="cli",
    )  # fmt: skip
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for _ in range(15):
                async with session.get(server.url("/late")) as resp:
                    await resp.read()

        await asyncio.gather(*(worker() for _ in range(4)))
        stats = connector.statistics()
        assert stats.created + stats.reused == 60
        counted = " + ".join(
            f'sum(aiohttp_client_connection_{c}_total{{server_port="{server.port}"}})'
            for c in ("created", "reused")
        )
        await asyncio.to_thread(
            prometheus.wait_for, counted, lambda r: bool(r) and r[0]["value"][1] == "60", 30
        )
        args = ("--prometheus", prometheus.url, "--service", "plugin", "--window", "5m")
        code, out, err = await asyncio.to_thread(advise, capsys, *args, "--json")
        assert code == 0, err
        data = json.loads(out)
        (host,) = [h for h in data["hosts"] if h["server_port"] == server.port]
        evidence = host["evidence"]
        assert (data["service"], data["limit"], host["limit_per_host"]) == ("plugin", 10, 2)
        assert evidence["pool_name"] == "cli"
        assert evidence["acquisitions"] == 60
        assert evidence["created"] == stats.created and evidence["reused"] == stats.reused
        assert host["blocking_limit"] == "per_host"
        # /late holds its connection ~200 ms: the measured hold time says so.
        assert evidence["hold_source"] == "use_time" and 0.15 <= evidence["hold_mean_s"] <= 2
        assert evidence["releases"] == {"eof/pooled": 60}

        code, out, _ = await asyncio.to_thread(advise, capsys, *args)
        assert code == 0
        assert f"127.0.0.1:{server.port} (pool cli)   limit_per_host 2" in out

        code, _, err = await asyncio.to_thread(
            advise, capsys, "--prometheus", prometheus.url, "--service", "checkout"
        )
        assert code == 1
        assert "holds no series of service 'checkout'" in err
        assert err.rstrip().endswith("services with pool series: plugin")


def test_the_docs_describe_every_option_and_every_finding() -> None:
    docs = (pathlib.Path(__file__).parent.parent / "docs/advise.md").read_text()
    parsed = build_parser().parse_args(["advise", "--prometheus", "x", "--service", "y"])
    options = [f"--{k.replace('_', '-')}" for k in vars(parsed) if k not in ("command", "run")]
    assert len(options) == 5
    for option in options:
        assert f"| `{option}" in docs, option
    emitted = set(re.findall(r'Finding\(\s*"(\w+)"', pathlib.Path(findings.__file__).read_text()))
    assert emitted == set(findings.KINDS)
    for kind in findings.KINDS:
        assert f"| `{kind}` |" in docs, kind
