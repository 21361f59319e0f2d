"""One test per private aiohttp name the adapter relies on, on the running aiohttp: the
version matrix (.ci/aiohttp_matrix.sh) shows exactly which internal moved."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp import BaseConnector, ClientResponse

from aiohttp_pool_otel import ReleaseReason
from aiohttp_pool_otel._aiohttp import classify, probe
from aiohttp_pool_otel._aiohttp.hooks import state_of

from .conftest import Server, Telemetry

METHODS = ["connect", "_create_connection", "_release", "_close", "_cleanup",
           "_available_connections"]  # fmt: skip
STATE = ["_conns", "_acquired", "_waiters", "_limit", "_limit_per_host", "_force_close",
         "_closed"]  # fmt: skip


def test_adapter_finds_everything_it_needs() -> None:
    assert probe.MISSING_INTERNALS == []


@pytest.mark.parametrize("name", METHODS)
def test_connector_method(name: str) -> None:
    assert callable(getattr(BaseConnector, name, None)), name


def test_queue_method_matches_the_version() -> None:
    has = hasattr(BaseConnector, "_wait_for_available_connection")
    assert has == (probe.AIOHTTP_VERSION >= (3, 10, 11)) == probe.HAS_WAIT_METHOD


@pytest.mark.parametrize("name", STATE)
async def test_connector_state(name: str) -> None:
    connector = aiohttp.TCPConnector(limit=3, limit_per_host=2)
    try:
        assert hasattr(connector, name), name
        if name in ("_conns", "_waiters"):
            assert len(getattr(connector, name)) == 0  # a mapping of key -> sized container
    finally:
        await connector.close()


def test_release_callers_are_the_methods_aiohttp_calls_from() -> None:
    # classify() names a release by the aiohttp method on the stack: each must exist
    # as a plain Python function of this aiohttp, or the map would hold stale code.
    from aiohttp.connector import Connection

    from aiohttp_pool_otel._aiohttp.internals import support

    assert support().hooks  # resolved at first use, never at import
    for cls, name in [(ClientResponse, "_response_eof"), (ClientResponse, "release"),
                      (ClientResponse, "close"), (ClientResponse, "__del__"),
                      (Connection, "__del__")]:  # fmt: skip
        code = getattr(cls, name).__code__
        assert code in classify._REASON_OF_CALLER, (cls, name)


async def test_protocol_payload_is_at_eof_when_the_body_completed(server: Server) -> None:
    # The cheap EOF test of classify(): the protocol keeps the finished body's reader.
    async with aiohttp.ClientSession() as session:
        async with session.get(server.url("/small")) as resp:
            await resp.read()
        (protocol, _), = next(iter(session.connector._conns.values()))  # type: ignore[union-attr]
        assert protocol._payload is not None and protocol._payload.is_eof()
        async with session.get(server.url("/endless")) as resp:
            await resp.content.readany()
            assert resp.connection is not None
            assert not resp.connection.protocol._payload.is_eof()  # type: ignore[union-attr]


async def test_connection_and_key_shape(telemetry: Telemetry, server: Server) -> None:
    connector = telemetry.connector()
    async with aiohttp.ClientSession(connector=connector) as session:
        resp = await session.get(server.url("/endless"))
        conn = resp.connection
        assert conn is not None
        assert conn._protocol is conn.protocol
        key = conn._key
        assert (key.host, key.port, key.is_ssl) == ("127.0.0.1", server.port, False)
        state = state_of(connector)
        assert state is not None and state.ledger.record_of(conn.protocol) is not None
        resp.close()


async def test_a_custom_response_class_is_classified(
    telemetry: Telemetry, server: Server
) -> None:
    calls = []

    class Custom(ClientResponse):
        def release(self) -> Any:
            calls.append("release")
            return super().release()

    connector = telemetry.connector()
    async with aiohttp.ClientSession(connector=connector, response_class=Custom) as session:
        resp = await session.get(server.url("/endless"))
        assert isinstance(resp, Custom)
        resp.release()
        resp = await session.get(server.url("/small"))
        await resp.read()
        stats = connector.statistics()
    assert calls == ["release"]
    assert stats.releases == {ReleaseReason.RELEASE: 1, ReleaseReason.EOF: 1}
