"""The public surface: exact names, docstrings, typing marker, and one private-API module."""

from __future__ import annotations

import ast
import inspect
import pathlib

import aiohttp_pool_otel

SRC = pathlib.Path(aiohttp_pool_otel.__file__).parent

# Private aiohttp attributes the plugin relies on; only the adapter may name them.
PRIVATE_AIOHTTP_NAMES = {
    "_acquired", "_acquired_per_host", "_conns", "_waiters", "_release", "_close",
    "_cleanup", "_create_connection", "_wait_for_available_connection",
    "_available_connections", "_limit", "_limit_per_host", "_force_close", "_closed",
    "_connector", "_key", "_released",
}  # fmt: skip


def test_all_is_the_documented_api() -> None:
    assert set(aiohttp_pool_otel.__all__) >= {
        "OpenTelemetryTCPConnector",
        "OpenTelemetryUnixConnector",
        "create_pool_trace_config",
        "ReleaseReason",
        "PoolStatistics",
    }
    for name in aiohttp_pool_otel.__all__:
        assert hasattr(aiohttp_pool_otel, name), name


def test_every_public_name_has_a_docstring() -> None:
    for name in aiohttp_pool_otel.__all__:
        if name.startswith("__"):
            continue
        obj = getattr(aiohttp_pool_otel, name)
        assert inspect.getdoc(obj), name


def test_release_reasons_are_the_documented_strings() -> None:
    assert [r.value for r in aiohttp_pool_otel.ReleaseReason] == [
        "eof", "release", "close", "gc", "error", "connector_closed", "upgrade"
    ]  # fmt: skip


def test_py_typed_is_shipped() -> None:
    assert (SRC / "py.typed").exists()


def test_private_aiohttp_internals_are_touched_in_the_adapter_only() -> None:
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.parent.name == "_aiohttp":  # the adapter package
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in PRIVATE_AIOHTTP_NAMES:
                offenders.append(f"{path.name}:{node.lineno} .{node.attr}")
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aiohttp."):
                offenders.append(f"{path.name}:{node.lineno} from {node.module}")
    assert offenders == []


def test_a_base_install_imports_everything_and_names_the_missing_extra() -> None:
    """Without opentelemetry-instrumentation (a base install), ``import *`` works and
    using the instrumentor says, in one line, which extra to install (issue 13)."""
    import subprocess
    import sys

    script = """
import sys
sys.modules["opentelemetry.instrumentation"] = None  # as if it were not installed
sys.modules["opentelemetry.instrumentation.instrumentor"] = None
from aiohttp_pool_otel import *  # noqa: F403
from aiohttp_pool_otel import AioHttpConnectionPoolInstrumentor
try:
    AioHttpConnectionPoolInstrumentor()
except ModuleNotFoundError as exc:
    print("ERROR:", exc)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "ERROR: AioHttpConnectionPoolInstrumentor needs opentelemetry-instrumentation: "
        "pip install 'aiohttp-pool-otel[instrumentation]'"
    )
