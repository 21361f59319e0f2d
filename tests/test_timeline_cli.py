"""``aiohttp-pool-otel timeline``'s failures: one clear line on stderr and a non-zero
exit, never a traceback, never the URL's secrets; and ``demo --timeline``, which needs
no Jaeger. (Reading a real Jaeger is in test_timeline_pipeline.py.)"""

from __future__ import annotations

import asyncio
import pathlib
import socket
from collections import Counter

import pytest

from aiohttp_pool_otel.cli import main

from .conftest import Server
from .rig.timeline_svg import parse


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("aiohttp-pool-otel timeline: error: "), lines[0]
    return lines[0]


def test_unreachable_jaeger_is_one_line_without_the_urls_secrets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = closed_port()
    code = main(["timeline", "--service", "svc", "--jaeger", f"http://me:s3cret@127.0.0.1:{port}/"])
    assert code == 1
    line = one_error_line(capsys)
    assert f"cannot reach Jaeger at http://127.0.0.1:{port}" in line
    assert "s3cret" not in line and "me:" not in line


async def test_a_server_that_is_not_jaeger_is_named(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    """The wrong port (an aiohttp app here): its 404 to /api/traces, not a traceback."""
    code = await asyncio.to_thread(
        main, ["timeline", "--service", "svc", "--jaeger", server.url("")]
    )
    assert code == 1
    line = one_error_line(capsys)
    assert f"Jaeger at http://127.0.0.1:{server.port} answered HTTP 404 to /api/traces" in line


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--lookback", "15x"], "'15x'"),
        (["--lookback", "0m"], "'0m'"),
        (["--limit", "0"], "not 0"),
        (["--jaeger", "localhost:16686"], "'localhost:16686'"),
    ],
)
def test_bad_options_name_the_bad_value(
    args: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["timeline", "--service", "svc", *args]) == 2
    assert named in one_error_line(capsys)


def test_a_service_is_required(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    assert main(["timeline", "--jaeger", f"http://127.0.0.1:{closed_port()}"]) == 2
    assert "--service is required" in one_error_line(capsys)


def test_the_demo_draws_its_scenario(tmp_path: pathlib.Path) -> None:
    """`demo --timeline` without a Collector: the exhaustion at a glance, from the SDK."""
    path = tmp_path / "exhaustion.svg"
    assert main(["demo", "--scenario", "exhaustion", "--quiet", "--timeline", str(path)]) == 0
    drawing = parse(path.read_text())
    rows = Counter(r["data-kind"] for r in drawing.rows)
    assert rows == {"connection": 2, "queue": 6}  # limit_per_host=2; 6 of 8 requests queue
    assert Counter(b.kind for b in drawing.bars) == {"lease": 8, "dial": 2, "wait": 6}
    assert "limit_per_host=2" in drawing.text
