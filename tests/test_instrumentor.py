"""Auto-instrumentation: through the real ``opentelemetry-instrument`` command, and
in-process instrument/uninstrument with the contrib instrumentor in both orders."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Any

import aiohttp
import pytest
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor

from aiohttp_pool_otel.instrumentor import AioHttpConnectionPoolInstrumentor

from .conftest import Server, Telemetry
from .test_examples import EXAMPLES, console_spans

ORIGINAL_INIT = aiohttp.ClientSession.__dict__["__init__"]


def instrument_command() -> str:
    path = shutil.which("opentelemetry-instrument", path=os.path.dirname(sys.executable))
    assert path is not None, "opentelemetry-instrument is part of the test extra"
    return path


@pytest.mark.parametrize("with_contrib", [True, False])
def test_opentelemetry_instrument_command(with_contrib: bool) -> None:
    env = {
        **os.environ,
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_SERVICE_NAME": "auto",
    }
    if not with_contrib:
        env["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] = "aiohttp-client"
    done = subprocess.run(
        [instrument_command(), sys.executable, "auto_instrumentation.py"],
        capture_output=True, text=True, timeout=120, cwd=EXAMPLES, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # The session's own connector, instrumented where aiohttp defines it.
    assert "connector: TCPConnector" in done.stdout
    assert "created=1 reused=2" in done.stdout
    spans = console_spans(done.stdout)
    names = [s["name"] for s in spans]
    assert names.count("aiohttp.connection.create") == 1
    requests = [s for s in spans if s["name"] == "GET"]
    if with_contrib:
        assert len(requests) == 3  # no duplicate request spans
        ids = {s["context"]["span_id"] for s in requests}  # type: ignore[index]
        pool = [s for s in spans if str(s["name"]).startswith("aiohttp.")]
        assert pool and all(s["parent_id"] in ids for s in pool)
    else:
        assert requests == []


@pytest.fixture
def clean_instrumentors() -> Any:
    yield
    for instrumentor in (AioHttpConnectionPoolInstrumentor(), AioHttpClientInstrumentor()):
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()


@pytest.mark.parametrize("order", ["ours-first", "contrib-first"])
async def test_composes_with_contrib_in_either_order(
    order: str, telemetry: Telemetry, server: Server, clean_instrumentors: Any
) -> None:
    ours, contrib = AioHttpConnectionPoolInstrumentor(), AioHttpClientInstrumentor()
    kwargs = {"tracer_provider": telemetry.tracer_provider}
    first, second = (ours, contrib) if order == "ours-first" else (contrib, ours)
    first.instrument(**kwargs)
    second.instrument(**kwargs)
    async with aiohttp.ClientSession() as session:
        assert type(session.connector) is aiohttp.TCPConnector  # built by aiohttp, as ever
        async with session.get(server.url("/small")) as resp:
            await resp.read()
    spans = telemetry.spans()
    (request,) = [s for s in spans if s.name == "GET"]
    pool = [s for s in spans if s.name.startswith("aiohttp.connection.")]
    assert {s.name for s in pool} == {"aiohttp.connection.create", "aiohttp.connection.lease"}
    assert all(
        s.parent is not None and s.parent.span_id == request.context.span_id for s in pool
    )
    # Undo in reverse order: aiohttp is exactly as before.
    second.uninstrument()
    first.uninstrument()
    assert aiohttp.ClientSession.__dict__["__init__"] is ORIGINAL_INIT


async def test_uninstrument_restores_aiohttp_and_leaves_given_connectors(
    telemetry: Telemetry, clean_instrumentors: Any
) -> None:
    ours = AioHttpConnectionPoolInstrumentor()
    ours.instrument(tracer_provider=telemetry.tracer_provider)
    plain = aiohttp.TCPConnector()
    async with aiohttp.ClientSession(connector=plain) as session:
        assert session.connector is plain  # a connector the user chose is kept
        assert session._trace_configs == []
    ours.uninstrument()
    assert aiohttp.ClientSession.__dict__["__init__"] is ORIGINAL_INIT
    async with aiohttp.ClientSession() as session:
        assert type(session.connector) is aiohttp.TCPConnector
