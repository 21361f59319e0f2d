"""Randomized fault injection against one instrumented connector (seeded, bounded,
loopback only). Servers misbehave, clients misbehave; the plugin's books must match
aiohttp's real pool at every check and balance to zero at the end.

    POOL_OTEL_CHAOS_SEED=123 pytest tests/test_chaos.py        # replay a seed
    POOL_OTEL_CHAOS_LONG=1 pytest tests/test_chaos.py          # the long run (minutes)
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import random
import time
import warnings

import aiohttp
import pytest
from aiohttp import web

from aiohttp_pool_otel import OpenTelemetryTCPConnector
from aiohttp_pool_otel import semconv as sc

from .conftest import Server, Telemetry, start_server

LONG = bool(os.environ.get("POOL_OTEL_CHAOS_LONG"))
SEED = int(os.environ.get("POOL_OTEL_CHAOS_SEED", "20261124"))
EPOCHS = 8 if LONG else 3
REQUESTS_PER_EPOCH = 3000 if LONG else 200
CONCURRENCY = 40 if LONG else 24
EPOCH_SECONDS = 240 if LONG else 25  # every epoch stops by itself


async def _reset(request: web.Request) -> web.StreamResponse:
    transport = request.transport
    resp = web.StreamResponse(headers={"Content-Length": "100"})
    await resp.prepare(request)
    if transport is not None:
        transport.abort()  # reset right after the headers
    return resp


async def _chunked(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse()
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    for _ in range(3):
        await resp.write(b"c" * 1000)
        await asyncio.sleep(0.005)
    await resp.write_eof()
    return resp


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(0.05)
    return web.Response(body=b"s" * 2000)


async def _hang(request: web.Request) -> web.Response:
    await asyncio.sleep(0.6)  # longer than the clients' short timeouts
    return web.Response(text="late")


def chaos_app() -> web.Application:
    from .conftest import make_app

    app = make_app()  # /small /empty /late /big /cut /close /redirect /error /endless
    app.router.add_get("/reset", _reset)
    app.router.add_get("/chunked", _chunked)
    app.router.add_get("/slowbody", _slow)
    app.router.add_get("/hang2", _hang)
    return app


PATHS = ["/small", "/empty", "/late", "/big", "/cut", "/close", "/redirect", "/error",
         "/reset", "/chunked", "/slowbody", "/hang2"]  # fmt: skip
ACTIONS = ["read", "read", "release", "close", "abandon", "cancel", "timeout", "raise"]


def real_state(connector: OpenTelemetryTCPConnector) -> dict[str, int]:
    """aiohttp's own pool, read from its internals (tests may)."""
    acquired = list(connector._acquired)
    dialling = sum(type(p).__name__ == "_TransportPlaceholder" for p in acquired)
    return {
        "active": len(acquired) - dialling,
        "connecting": dialling,
        "idle": sum(len(v) for v in connector._conns.values()),
        "waiting": sum(len(v) for v in connector._waiters.values()),
    }


def exported_state(telemetry: Telemetry) -> dict[str, int]:
    m = telemetry.metrics()
    state = {"active": 0, "idle": 0, "waiting": 0}
    for attrs, value in m.get(sc.METRIC_OPEN_CONNECTIONS, []):
        state[str(attrs[sc.HTTP_CONNECTION_STATE])] += int(value)
    state["waiting"] = sum(int(v) for _, v in m.get(sc.METRIC_PENDING, []))
    return state


def check_books(connector: OpenTelemetryTCPConnector, telemetry: Telemetry) -> None:
    if connector.closed:
        # aiohttp stops its own books at close (a dial still in flight then leaves its
        # placeholder in _acquired for good); ours must simply be empty of connections.
        stats = connector.statistics()
        assert (stats.active, stats.idle) == (0, 0), stats
        return
    # No await between these reads: they see one instant of the pool.
    real = real_state(connector)
    stats = connector.statistics()
    exported = exported_state(telemetry)
    mine = {"active": stats.active, "connecting": stats.connecting, "idle": stats.idle,
            "waiting": stats.waiting}  # fmt: skip
    assert mine == real, (mine, real)
    assert exported == {k: real[k] for k in exported}, (exported, real)


class Client:
    """One misbehaving client task's random choices."""

    def __init__(self, rng: random.Random, urls: list[str]) -> None:
        self.rng = rng
        self.urls = urls
        self.abandoned: list[aiohttp.ClientResponse] = []

    async def one(self, session: aiohttp.ClientSession) -> None:
        rng = self.rng
        url = rng.choice(self.urls) + rng.choice(PATHS)
        action = rng.choice(ACTIONS)
        timeout = aiohttp.ClientTimeout(
            total=0.3 if action == "timeout" else 5.0, connect=rng.choice([None, 0.25, 2.0])
        )
        if action == "cancel":  # cancel while queued, dialling, or waiting for headers
            task = asyncio.ensure_future(session.get(url, timeout=timeout))
            await asyncio.sleep(rng.random() * 0.02)
            task.cancel()
            try:
                resp = await task
            except (asyncio.CancelledError, aiohttp.ClientError, asyncio.TimeoutError):
                return
            resp.close()
            return
        try:
            resp = await session.get(url, timeout=timeout, raise_for_status=action == "raise")
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return
        try:
            if action in ("read", "timeout"):
                await resp.read()
            elif action == "release":
                resp.release()
            elif action == "close":
                resp.close()
            elif action == "abandon" and not url.endswith("/big"):
                # (an abandoned, paused 4 MiB body would hold its slot until the end:
                # true, but it only slows the run down)
                self.abandoned.append(resp)
                if len(self.abandoned) > 5:  # drop them: GC or EOF releases them
                    self.abandoned.clear()
                return
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass
        resp.release()


def socket_fds() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            pass
    return count


async def run_epoch(
    telemetry: Telemetry,
    urls: list[str],
    rng: random.Random,
    close_mid_flight: bool,
) -> tuple[OpenTelemetryTCPConnector, int]:
    connector = telemetry.connector(
        limit=8, limit_per_host=3, trace_all_leases=True, watchdog_threshold=0.5
    )
    session = aiohttp.ClientSession(connector=connector)
    clients = [Client(random.Random(rng.random()), urls) for _ in range(CONCURRENCY)]
    left = REQUESTS_PER_EPOCH
    loop = asyncio.get_running_loop()
    deadline = loop.time() + EPOCH_SECONDS
    checks = 0

    async def worker(client: Client) -> None:
        nonlocal left
        while left > 0 and loop.time() < deadline:
            left -= 1
            await client.one(session)

    finished = asyncio.Event()

    async def checker() -> None:
        nonlocal checks
        while not finished.is_set() and loop.time() < deadline:
            check_books(connector, telemetry)
            checks += 1
            if rng.random() < 0.2:
                gc.collect()  # abandoned responses die here
            await asyncio.sleep(rng.random() * 0.03)

    workers = [asyncio.ensure_future(worker(c)) for c in clients]
    watcher = asyncio.ensure_future(checker())
    if close_mid_flight:
        await asyncio.sleep(0.5)
        await session.close()  # while requests are in flight: they fail, books balance
    results = await asyncio.gather(*workers, return_exceptions=True)
    finished.set()
    await watcher
    for r in results:  # after a mid-flight close, requests fail; nothing else may
        # After a mid-flight close, aiohttp fails requests (and cancels queued ones).
        # (aiohttp 3.10 raises AttributeError: the session's connector is gone)
        expected = (RuntimeError, AttributeError, aiohttp.ClientError, asyncio.CancelledError)
        if isinstance(r, BaseException) and not (close_mid_flight and isinstance(r, expected)):
            raise r
    for client in clients:
        for resp in client.abandoned:
            resp.close()
        client.abandoned.clear()
    check_books(connector, telemetry)
    await session.close()
    return connector, checks


async def test_chaos_books_always_balance(
    telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    print(f"chaos seed {SEED} (POOL_OTEL_CHAOS_SEED to replay), long={LONG}")
    rng = random.Random(SEED)
    fds_before = socket_fds()
    servers: list[Server] = [
        await start_server(chaos_app()),
        await start_server(chaos_app(), keepalive_timeout=0.1),  # drops idle connections
    ]
    urls = [s.url("") for s in servers]
    started = time.monotonic()
    plugin_warnings: list[warnings.WarningMessage] = []
    sizes = []
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        for epoch in range(EPOCHS):
            t0 = time.monotonic()
            connector, checks = await run_epoch(
                telemetry, urls, rng, close_mid_flight=epoch % 3 == 2
            )
            print(f"epoch {epoch}: {time.monotonic() - t0:.1f}s, {checks} checks, "
                  f"{connector.statistics()}")
            assert checks > 0
            gc.collect()
            pool = connector._pool_otel
            # The plugin keeps no per-lease table (records live on the protocols).
            sizes.append((len(pool._hosts), len(pool._by_key)))
            stats = connector.statistics()
            # Everything closed: nothing active, idle, dialling or waiting.
            assert (stats.active, stats.idle, stats.connecting, stats.waiting) == (0, 0, 0, 0)
            # Every acquisition ended exactly once, by exactly one reason.
            acquisitions = stats.created + stats.reused
            assert sum(stats.releases.values()) == acquisitions
            leases = [
                s for s in telemetry.spans(sc.SPAN_LEASE)
                if s.attributes.get(sc.POOL_NAME) is None
            ]  # fmt: skip
            assert len(leases) == acquisitions, (len(leases), acquisitions)
            assert all(sc.RELEASE_REASON in s.attributes for s in leases)
            telemetry.spans_exporter.clear()
        plugin_warnings = [
            w for w in caught if "aiohttp_pool_otel" in str(w.filename)
        ]
    for srv in servers:
        await srv.runner.cleanup()
    assert plugin_warnings == []
    assert not [r for r in caplog.records if "Calling end() on an ended span" in r.getMessage()]
    assert not [r for r in caplog.records if "telemetry failed" in r.getMessage()]
    # The plugin's bookkeeping does not grow with requests: same sizes every epoch.
    assert all(hosts <= 2 and keys <= 4 for hosts, keys in sizes), sizes
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert tasks == [] or all(t.done() for t in tasks)
    await asyncio.sleep(0.1)
    gc.collect()
    assert socket_fds() <= fds_before, "sockets left open"
    assert time.monotonic() - started < EPOCHS * (EPOCH_SECONDS + 30)


