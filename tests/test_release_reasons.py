"""Every release is classified exactly once, by the reason users need to see."""

from __future__ import annotations

import gc
import ssl
import warnings
from typing import Any, Optional

import aiohttp
import pytest

from aiohttp_pool_otel import OpenTelemetryTCPConnector, ReleaseReason
from aiohttp_pool_otel import semconv as sc

from .conftest import Server, Telemetry, body_cut, serving
from .rig.pool_books import pool_of
from .rig.waiting import wait_until


def lease_releases(telemetry: Telemetry) -> list[tuple[Any, Any, Any]]:
    """(reason, phase, outcome) of every ended lease span, in end order."""
    return [
        (
            s.attributes.get(sc.RELEASE_REASON),
            s.attributes.get(sc.RELEASE_PHASE),
            s.attributes.get(sc.RELEASE_OUTCOME),
        )
        for s in telemetry.spans(sc.SPAN_LEASE)
    ]


@pytest.fixture
async def session_of(telemetry: Telemetry) -> Any:
    sessions: list[aiohttp.ClientSession] = []

    def make(**connector_kwargs: Any) -> aiohttp.ClientSession:
        connector_kwargs.setdefault("trace_all_leases", True)
        session = aiohttp.ClientSession(
            connector=telemetry.connector(**connector_kwargs),
            trace_configs=[telemetry.trace_config()],
        )
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        await session.close()


@pytest.fixture
async def session(session_of: Any) -> aiohttp.ClientSession:
    """A session on an instrumented connector (every lease traced) and the trace config."""
    return session_of()  # type: ignore[no-any-return]


async def test_small_body_is_released_at_headers_before_request_returns(
    telemetry: Telemetry, server: Server, session: aiohttp.ClientSession
) -> None:
    resp = await session.get(server.url("/small"))
    # Not read, not closed: aiohttp already gave the connection back.
    assert resp.connection is None
    assert lease_releases(telemetry) == [("eof", "headers", "pooled")]
    stats = pool_of(session)
    assert stats.active == 0 and stats.idle == 1
    assert stats.releases == {ReleaseReason.EOF: 1}
    resp.release()
    # A later release of an already released response is not a second release.
    assert pool_of(session).releases == {ReleaseReason.EOF: 1}


@pytest.mark.parametrize(("method", "path"), [("HEAD", "/small"), ("GET", "/empty")])
async def test_bodiless_responses_release_at_headers(
    telemetry: Telemetry, server: Server, session: aiohttp.ClientSession, method: str, path: str
) -> None:
    async with session.request(method, server.url(path)) as resp:
        assert resp.connection is None
    assert lease_releases(telemetry) == [("eof", "headers", "pooled")]


async def test_body_completing_after_headers_releases_in_body_phase_unread(
    telemetry: Telemetry, server: Server, session: aiohttp.ClientSession
) -> None:
    resp = await session.get(server.url("/late"))
    assert resp.connection is not None
    assert pool_of(session).active == 1
    # Nobody reads: EOF still arrives and aiohttp releases in the background.
    await wait_until(lambda: resp.connection is None)
    assert lease_releases(telemetry) == [("eof", "body", "pooled")]
    stats = pool_of(session)
    assert (stats.active, stats.idle) == (0, 1)


async def test_read_body_is_eof_body(
    telemetry: Telemetry, server: Server, session: aiohttp.ClientSession
) -> None:
    async with session.get(server.url("/late")) as resp:
        assert await resp.read() == b"0123456789"
    # The EOF came in aiohttp's transport callback: its telemetry follows on the loop.
    await wait_until(lambda: bool(lease_releases(telemetry)), what="the lease span")
    assert lease_releases(telemetry) == [("eof", "body", "pooled")]


async def test_close_before_eof_is_close_and_closes(
    telemetry: Telemetry, server: Server, session: aiohttp.ClientSession
) -> None:
    resp = await session.get(server.url("/endless"))
    resp.close()
    assert lease_releases(telemetry) == [("close", None, "closed")]
    stats = pool_of(session)
    assert (stats.active, stats.idle, stats.closed) == (0, 0, 1)


async def test_context_exit_without_reading_is_release(
    telemetry: Telemetry, server: Server, session: aiohttp.ClientSession
) -> None:
    async with session.get(server.url("/endless")) as resp:
        assert resp.status == 200
    # An unfinished body cannot go back to the pool: released, but closed.
    assert lease_releases(telemetry) == [("release", None, "closed")]


async def test_big_unread_body_release_closes(
    telemetry: Telemetry, server: Server, session: aiohttp.ClientSession
) -> None:
    resp = await session.get(server.url("/big"))
    # Part of the 4 MiB body is buffered, unread (aiohttp pauses reading long before
    # all of it arrives): releasing now cannot give the connection back.
    await wait_until(lambda: resp.content.total_bytes > 0, what="part of the body")
    assert not resp.content.is_eof()
    resp.release()
    assert lease_releases(telemetry) == [("release", None, "closed")]


async def test_connection_close_header_is_eof_closed(
    telemetry: Telemetry, server: Server, session: aiohttp.ClientSession
) -> None:
    async with session.get(server.url("/close")) as resp:
        assert await resp.text() == "bye"
    assert lease_releases(telemetry) == [("eof", "headers", "closed")]
    assert pool_of(session).closed == 1


async def test_redirect_releases_each_hop_and_reuses(
    telemetry: Telemetry, server: Server, session: aiohttp.ClientSession
) -> None:
    async with session.get(server.url("/redirect")) as resp:
        assert resp.status == 200
    assert lease_releases(telemetry) == [("eof", "headers", "pooled")] * 2
    stats = pool_of(session)
    assert (stats.created, stats.reused) == (1, 1)
    leases = telemetry.spans(sc.SPAN_LEASE)
    assert [s.attributes[sc.CONNECTION_REUSED] for s in leases] == [False, True]


async def test_raise_for_status_releases_before_eof(
    telemetry: Telemetry, server: Server, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(aiohttp.ClientResponseError):
        await session.get(server.url("/error"), raise_for_status=True)
    reasons = lease_releases(telemetry)
    assert len(reasons) == 1
    assert reasons[0][0] in ("release", "eof")  # eof when the 1 MiB body won the race
    assert pool_of(session).active == 0


async def test_unclosed_response_garbage_collected_is_gc(
    telemetry: Telemetry, server: Server, session: aiohttp.ClientSession
) -> None:
    resp: Optional[aiohttp.ClientResponse] = await session.get(server.url("/cut"))
    assert pool_of(session).active == 1
    # While the body streams, aiohttp itself keeps the response alive (protocol ->
    # payload -> EOF callback); once the server cut the body, the response can die.
    await body_cut(resp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        del resp
        gc.collect()
    # A finalizer only records the fact; the loop turns it into telemetry.
    await wait_until(lambda: lease_releases(telemetry) == [("gc", None, "closed")])
    span = telemetry.spans(sc.SPAN_LEASE)[0]
    assert span.status.status_code.name == "ERROR"
    assert "garbage-collected" in (span.status.description or "")
    assert pool_of(session).active == 0


async def test_session_close_with_outstanding_response_is_connector_closed(
    telemetry: Telemetry, server: Server, session: aiohttp.ClientSession
) -> None:
    connector = session.connector
    assert isinstance(connector, OpenTelemetryTCPConnector)
    resp = await session.get(server.url("/endless"))
    await session.close()
    assert lease_releases(telemetry) == [("connector_closed", None, "closed")]
    resp.close()  # a no-op for aiohttp, and not a second release
    stats = connector.statistics()
    assert (stats.active, stats.idle, stats.closed) == (0, 0, 1)
    assert stats.releases == {ReleaseReason.CONNECTOR_CLOSED: 1}
    assert len(telemetry.spans(sc.SPAN_LEASE)) == 1


async def test_tls_connection_is_https_and_classified(
    telemetry: Telemetry,
    tls_server: Server,
    session_of: Any,
    client_ssl_context: ssl.SSLContext,
) -> None:
    session = session_of(ssl=client_ssl_context)
    for _ in range(2):
        async with session.get(tls_server.url("/small")) as resp:
            assert await resp.text() == "hello"
    assert lease_releases(telemetry) == [("eof", "headers", "pooled")] * 2
    (host,) = pool_of(session).hosts.values()
    assert (host.scheme, host.created, host.reused) == ("https", 1, 1)


async def test_server_closing_idle_connection_then_reuse_attempt(
    telemetry: Telemetry, session: aiohttp.ClientSession
) -> None:
    async with serving(keepalive_timeout=0.05) as srv:
        async with session.get(srv.url("/small")) as resp:
            await resp.read()
        # The server drops the idle connection (its keep-alive is 50 ms); wait until
        # aiohttp's pool (tests may read it) holds it as closed, so the next request
        # finds it stale.
        idle = [proto for conns in session.connector._conns.values() for proto, _ in conns]
        assert len(idle) == 1
        await wait_until(lambda: not idle[0].is_connected(), what="the server's close")
        async with session.get(srv.url("/small")) as resp:
            assert await resp.text() == "hello"
        stats = pool_of(session)
        # The dead idle connection was discarded, a new one dialled: two leases.
        assert stats.created == 2
        assert stats.releases == {ReleaseReason.EOF: 2}
        assert stats.active == 0
