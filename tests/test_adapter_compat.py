"""One test per private aiohttp name the adapter relies on, on the running aiohttp: the
version matrix (.ci/aiohttp_matrix.sh) shows exactly which internal moved."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import BaseConnector, ClientResponse

from aiohttp_pool_otel import _aiohttp_adapter as adapter

from .conftest import Server, Telemetry

METHODS = ["connect", "_create_connection", "_release", "_close", "_cleanup",
           "_available_connections"]  # fmt: skip
STATE = ["_conns", "_acquired", "_waiters", "_limit", "_limit_per_host", "_force_close",
         "_closed"]  # fmt: skip


def test_adapter_finds_everything_it_needs() -> None:
    assert adapter.MISSING_INTERNALS == []


@pytest.mark.parametrize("name", METHODS)
def test_connector_method(name: str) -> None:
    assert callable(getattr(BaseConnector, name, None)), name


def test_queue_method_matches_the_version() -> None:
    has = hasattr(BaseConnector, "_wait_for_available_connection")
    assert has == (adapter.AIOHTTP_VERSION >= (3, 10, 11)) == adapter.HAS_WAIT_METHOD


@pytest.mark.parametrize("name", STATE)
async def test_connector_state(name: str) -> None:
    connector = aiohttp.TCPConnector(limit=3, limit_per_host=2)
    try:
        assert hasattr(connector, name), name
        if name in ("_conns", "_waiters"):
            assert len(getattr(connector, name)) == 0  # a mapping of key -> sized container
    finally:
        await connector.close()


def test_response_flags() -> None:
    assert ClientResponse.status is None  # None until start() has parsed the status line
    assert hasattr(ClientResponse, "_closed")
    assert hasattr(ClientResponse, "_released")


async def test_connection_and_key_shape(telemetry: Telemetry, server: Server) -> None:
    connector = telemetry.connector()
    async with aiohttp.ClientSession(connector=connector) as session:
        resp = await session.get(server.url("/endless"))
        conn = resp.connection
        assert conn is not None
        assert conn._protocol is conn.protocol
        key = conn._key
        assert (key.host, key.port, key.is_ssl) == ("127.0.0.1", server.port, False)
        assert adapter.record_of(conn.protocol) is not None
        resp.close()


def test_tracked_response_subclasses_any_response_class() -> None:
    class Custom(ClientResponse):
        pass

    tracked = adapter.tracked_response_class(Custom)
    assert issubclass(tracked, Custom)
    assert adapter.tracked_response_class(Custom) is tracked  # cached
    assert adapter.tracked_response_class(tracked) is tracked
