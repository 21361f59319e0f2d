"""Randomized fault injection against one instrumented connector per epoch (seeded,
bounded, loopback only). Servers misbehave, clients misbehave, providers misbehave; the
plugin's books must match aiohttp's real pool at every check and balance at the end.

Invariants: at every quiet point ``created - closed == active + idle +
connecting``; after the connector closes ``created == closed`` with one
``http.client.connection.duration`` record each; every span ended exactly once; pool-wait
timeouts counted exactly as the callers observed them; host series bounded by
``max_hosts + 1``. Fault kinds include a server closing idle keep-alive connections,
responses abandoned inside reference cycles (freed by ``gc.collect``), timeouts with
``ClientTimeout(total=)`` only, the connector closed while dials are in progress (a slow
resolver), and a meter whose histogram ``record`` raises. Short-lived sessions (one
request each) open and close beside the chaos: between collections no counter series
ever goes down or vanishes, and at the end their releases, dials and closes are all
still counted.

    POOL_OTEL_CHAOS_SEED=123 pytest tests/test_chaos.py        # replay a seed
    POOL_OTEL_CHAOS_LONG=1 pytest tests/test_chaos.py          # the long run (minutes)
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import random
import socket
import time
import warnings
from types import SimpleNamespace
from typing import Any, Callable, Optional

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver
from opentelemetry.trace import Tracer

from aiohttp_pool_otel import OpenTelemetryTCPConnector
from aiohttp_pool_otel import semconv as sc

from .conftest import Server, Telemetry, start_server
from .rig.hostile_meter import HostileMeterProvider
from .rig.metric_points import Collection, collect
from .rig.pool_books import books
from .rig.spans import SpanLedger
from .rig.waiting import quiet_point

LONG = bool(os.environ.get("POOL_OTEL_CHAOS_LONG"))
SEED = int(os.environ.get("POOL_OTEL_CHAOS_SEED", "20261124"))
EPOCHS = 9 if LONG else 3  # kinds rotate: plain, hostile meter, closed during dials
REQUESTS_PER_EPOCH = 3000 if LONG else 150
WAVES = 6 if LONG else 3  # quiet points per epoch: every request done, then checked
CONCURRENCY = 40 if LONG else 24
EPOCH_SECONDS = 240 if LONG else 20  # every epoch stops by itself
MAX_HOSTS = 2  # of the 3 host keys: one is folded into _OTHER
HOSTILE, CLOSE_DURING_DIALS = 1, 2  # epoch kinds (epoch % 3); 0 is plain


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
ACTIONS = ["read", "read", "release", "close", "abandon", "abandon_cycle", "cancel",
           "timeout", "timeout_total", "raise", "pause"]  # fmt: skip
# Names only ChaosResolver knows, one per server: dials go through a (slow) resolver.
HOST_NAMES = ["chaos-a.test", "chaos-b.test", "chaos-c.test"]


class ChaosResolver(AbstractResolver):
    """A real aiohttp resolver answering 127.0.0.1 after a random short delay: dials take
    long enough to be caught in progress when the connector closes."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[dict[str, Any]]:  # aiohttp's ResolveResult (3.10+): a dict
        await asyncio.sleep(self.rng.random() * 0.02)
        return [
            {"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET,
             "proto": 0, "flags": socket.AI_NUMERICHOST}
        ]  # fmt: skip

    async def close(self) -> None:
        pass


def queue_tracker() -> aiohttp.TraceConfig:
    """aiohttp's own queue signals, per request: is it queued for a slot right now?"""
    config = aiohttp.TraceConfig()

    async def start(session: Any, ctx: Any, params: Any) -> None:
        ctx.trace_request_ctx.queued = True
        ctx.trace_request_ctx.history.append("queued")

    async def end(session: Any, ctx: Any, params: Any) -> None:
        ctx.trace_request_ctx.queued = False
        ctx.trace_request_ctx.history.append("slot")

    config.on_connection_queued_start.append(start)
    config.on_connection_queued_end.append(end)
    return config


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


def exported_state(m: Collection, pool_name: str) -> dict[str, int]:
    state = {"active": 0, "idle": 0, "waiting": 0}
    for attrs, dp in m.of(sc.METRIC_OPEN_CONNECTIONS):
        if attrs.get(sc.POOL_NAME) == pool_name:
            state[str(attrs[sc.HTTP_CONNECTION_STATE])] += int(dp.value)
    state["waiting"] = sum(
        int(dp.value) for a, dp in m.of(sc.METRIC_PENDING) if a.get(sc.POOL_NAME) == pool_name
    )
    return state


def check_books(
    connector: OpenTelemetryTCPConnector,
    export: Optional[Callable[[], Collection]],
    pool_name: str,
) -> None:
    if connector.closed:
        # aiohttp stops its own books at close (a dial still in flight then leaves its
        # placeholder in _acquired for good); ours must simply be empty of connections.
        stats = connector.statistics()
        assert (stats.active, stats.idle) == (0, 0), stats
        return
    # No await between these reads: they see one instant of the pool.
    real = real_state(connector)
    stats = connector.statistics()
    mine = {"active": stats.active, "connecting": stats.connecting, "idle": stats.idle,
            "waiting": stats.waiting}  # fmt: skip
    assert mine == real, (mine, real)
    if export is not None:  # collected after the reads above, still with no await between
        state = exported_state(export(), pool_name)
        assert state == {k: real[k] for k in state}, (state, real)


COUNTERS = (sc.METRIC_CREATED, sc.METRIC_REUSED, sc.METRIC_CLOSED, sc.METRIC_RELEASES,
            sc.METRIC_QUEUED, sc.METRIC_TIMEOUTS)  # fmt: skip


class CounterWatch:
    """Every counter series, collection after collection: none may go down or vanish,
    whatever connectors were closed or collected in between."""

    def __init__(self) -> None:
        self.last: dict[tuple[str, frozenset[Any]], float] = {}
        self.collections = 0

    def observe(self, m: Collection) -> None:
        now = {
            (name, frozenset(a.items())): float(dp.value)
            for name in COUNTERS for a, dp in m.of(name)
        }  # fmt: skip
        vanished = set(self.last) - set(now)
        assert not vanished, f"counter series vanished: {sorted(map(str, vanished))[:3]}"
        went_down = {k: (v, now[k]) for k, v in self.last.items() if now[k] < v}
        assert not went_down, f"counters went down: {list(went_down.items())[:3]}"
        self.last = now
        self.collections += 1


class Churn:
    """Short-lived sessions beside the chaos, one request each (a session per request),
    on the same providers: their counts must outlive them."""

    POOL = "chaos-churn"

    def __init__(self, telemetry: Telemetry, url: str, rng: random.Random) -> None:
        self.telemetry = telemetry
        self.url = url
        self.rng = rng
        self.requests = 0

    async def one(self) -> None:
        connector = self.telemetry.connector(pool_name=self.POOL)
        async with aiohttp.ClientSession(connector=connector) as session, session.get(
            self.url
        ) as resp:
            await resp.read()
        self.requests += 1
        if self.rng.random() < 0.3:
            gc.collect()


class Client:
    """One misbehaving client task's random choices, and what it observed."""

    def __init__(self, rng: random.Random, urls: list[str]) -> None:
        self.rng = rng
        self.urls = urls
        self.abandoned: list[Any] = []
        self.wait_timeouts = 0  # aiohttp timeouts raised while queued for a slot
        # trace id -> what a request that failed while it had queued saw (for replay).
        self.failures: dict[int, dict[str, Any]] = {}

    def _observe(self, exc: BaseException, tracker: SimpleNamespace) -> None:
        counted = isinstance(exc, asyncio.TimeoutError) and tracker.queued
        if counted:
            self.wait_timeouts += 1
        if tracker.history or counted:
            self.failures[tracker.trace_id] = {
                "wait_timeout": counted, "error": type(exc).__name__, "aiohttp": tracker.history,
                "action": tracker.action, "url": tracker.url, "timeout": tracker.timeout,
            }  # fmt: skip

    async def one(self, session: aiohttp.ClientSession, tracer: Tracer) -> None:
        with tracer.start_as_current_span("chaos request") as span:
            await self._one(session, span.get_span_context().trace_id)

    async def _one(self, session: aiohttp.ClientSession, trace_id: int) -> None:
        rng = self.rng
        url = rng.choice(self.urls) + rng.choice(PATHS)
        action = rng.choice(ACTIONS)
        if action == "pause":  # idle keep-alive connections go stale meanwhile
            await asyncio.sleep(rng.random() * 0.15)
            action = "read"
        if action == "timeout_total":  # aiohttp's default timeout shape: total only
            timeout = aiohttp.ClientTimeout(total=0.25)
        else:
            timeout = aiohttp.ClientTimeout(
                total=0.3 if action == "timeout" else 5.0, connect=rng.choice([None, 0.25, 2.0])
            )
        tracker = SimpleNamespace(
            queued=False, history=[], trace_id=trace_id, action=action, url=url, timeout=timeout
        )
        get = session.get(
            url, timeout=timeout, raise_for_status=action == "raise", trace_request_ctx=tracker
        )
        if action == "cancel":  # cancel while queued, dialling, or waiting for headers
            task = asyncio.ensure_future(get)
            await asyncio.sleep(rng.random() * 0.02)
            task.cancel()
            try:
                resp = await task
            except (asyncio.CancelledError, aiohttp.ClientError, asyncio.TimeoutError) as exc:
                self._observe(exc, tracker)
                return
            resp.close()
            return
        try:
            resp = await get
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            self._observe(exc, tracker)
            return
        try:
            if action in ("read", "timeout", "timeout_total"):
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
            elif action == "abandon_cycle" and not url.endswith("/big"):
                cycle: list[Any] = [resp]
                cycle.append(cycle)  # only the cyclic GC frees it, wherever it runs
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


class Epoch:
    """One connector's life under chaos, and what the callers observed."""

    def __init__(
        self, telemetry: Telemetry, urls: list[str], rng: random.Random, n: int,
        watch: CounterWatch, churn: Churn,
    ) -> None:  # fmt: skip
        self.kind = n % 3
        self.watch = watch
        self.churn = churn
        self.pool_name = f"chaos-{n}"
        self.telemetry = telemetry
        self.sdk = self.kind != HOSTILE
        meter_provider: Any = telemetry.meter_provider if self.sdk else HostileMeterProvider()
        self.connector = OpenTelemetryTCPConnector(
            tracer_provider=telemetry.tracer_provider,
            meter_provider=meter_provider,
            pool_name=self.pool_name,
            max_hosts=MAX_HOSTS,
            limit=8,
            limit_per_host=3,
            trace_all_leases=True,
            watchdog_threshold=0.5,
            resolver=ChaosResolver(random.Random(rng.random())),
            use_dns_cache=False,
        )
        self.session = aiohttp.ClientSession(
            connector=self.connector, trace_configs=[queue_tracker()]
        )
        self.tracer = telemetry.tracer_provider.get_tracer("chaos")
        self.rng = rng
        self.clients = [Client(random.Random(rng.random()), urls) for _ in range(CONCURRENCY)]
        self.checks = 0
        self.quiet_checks = 0
        self.dials_caught_by_close = -1

    @property
    def wait_timeouts(self) -> int:
        return sum(c.wait_timeouts for c in self.clients)

    def check(self) -> None:
        collections: list[Collection] = []

        def export() -> Collection:
            collections.append(collect(self.telemetry.reader))
            return collections[-1]

        check_books(self.connector, export if self.sdk else None, self.pool_name)
        self.watch.observe(collections[-1] if collections else export())

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + EPOCH_SECONDS
        for wave in range(WAVES):
            last = wave == WAVES - 1
            await self._wave(REQUESTS_PER_EPOCH // WAVES, deadline,
                             close=last and self.kind == CLOSE_DURING_DIALS)  # fmt: skip
            # A quiet point: no request in flight (abandoned responses may hold slots).
            await quiet_point()
            if not self.connector.closed:
                stats = self.connector.statistics()
                assert books(stats)[0] == books(stats)[1], (self.pool_name, wave, stats)
                self.check()
                self.quiet_checks += 1
        for client in self.clients:
            for resp in client.abandoned:
                resp.close()
            client.abandoned.clear()
        gc.collect()  # the abandoned cycles die here at the latest
        await quiet_point()
        if not self.connector.closed:
            stats = self.connector.statistics()
            assert books(stats)[0] == books(stats)[1], (self.pool_name, stats)
            self.check()
        await self.session.close()
        await quiet_point()

    async def _wave(self, requests: int, deadline: float, close: bool) -> None:
        loop = asyncio.get_running_loop()
        left = requests
        finished = asyncio.Event()

        async def worker(client: Client) -> None:
            nonlocal left
            while left > 0 and loop.time() < deadline:
                left -= 1
                await client.one(self.session, self.tracer)

        async def checker() -> None:
            while not finished.is_set() and loop.time() < deadline:
                if self.rng.random() < 0.5:
                    await self.churn.one()
                self.check()
                self.checks += 1
                if self.rng.random() < 0.2:
                    gc.collect()  # abandoned responses die here
                await asyncio.sleep(self.rng.random() * 0.03)

        async def closer() -> None:
            # Close while a dial is in progress (bounded: or when the wave ends).
            while left > 0 and loop.time() < deadline:
                if self.connector.statistics().connecting > 0:
                    break
                await asyncio.sleep(0.001)
            self.dials_caught_by_close = self.connector.statistics().connecting
            await self.session.close()  # requests in flight fail, dials are dropped

        workers = [asyncio.ensure_future(worker(c)) for c in self.clients]
        watcher = asyncio.ensure_future(checker())
        closing = asyncio.ensure_future(closer()) if close else None
        results = await asyncio.gather(*workers, return_exceptions=True)
        finished.set()
        await watcher
        if closing is not None:
            await closing
        for r in results:
            # After a mid-flight close, aiohttp fails requests (and cancels queued ones).
            # (aiohttp 3.10 raises AttributeError: the session's connector is gone)
            expected = (RuntimeError, AttributeError, aiohttp.ClientError, asyncio.CancelledError)
            if isinstance(r, BaseException) and not (close and isinstance(r, expected)):
                raise r

    def check_closed(self, ledger: SpanLedger) -> None:
        """The invariants after the connector closed."""
        stats = self.connector.statistics()
        name = self.pool_name
        # Everything closed: nothing active, idle, dialling or waiting.
        assert (stats.active, stats.idle, stats.connecting, stats.waiting) == (0, 0, 0, 0)
        # Every dialled connection closed exactly once.
        assert stats.created == stats.closed, (name, stats)
        # Every lease ended exactly once, by exactly one reason (a dial the closing
        # connector dropped was dialled but never leased).
        acquisitions = stats.created + stats.reused
        ended = sum(stats.releases.values())
        leases = [s for s in ledger.spans(sc.SPAN_LEASE) if s.attributes.get(sc.POOL_NAME) == name]
        if self.kind == CLOSE_DURING_DIALS:
            assert ended <= acquisitions, (name, stats)
            assert len(leases) >= ended, (len(leases), ended)
        else:
            assert ended == acquisitions, (name, stats)
            assert len(leases) == ended, (len(leases), ended)
        assert all(sc.RELEASE_REASON in s.attributes for s in leases if s.attributes)
        # Pool-wait timeouts: exactly what the callers got, on stats and on wait spans.
        waits = [
            s for s in ledger.spans(sc.SPAN_WAIT)
            if s.attributes.get(sc.POOL_NAME) == name
            and s.attributes.get(sc.ERROR_TYPE) == "pool_wait_timeout"
        ]  # fmt: skip
        failures = {t: f for c in self.clients for t, f in c.failures.items()}
        observed = {t for t, f in failures.items() if f["wait_timeout"]}
        spans = {s.context.trace_id for s in waits if s.context is not None}
        differ = {
            f"{t:032x}": {
                "caller": failures.get(t, "no error seen by the caller"),
                "wait spans": [
                    (s.attributes.get(sc.ERROR_TYPE), s.status.status_code.name)
                    for s in ledger.spans(sc.SPAN_WAIT)
                    if s.context is not None and s.context.trace_id == t
                ],
            }
            for t in observed ^ spans
        }
        assert not differ, f"{name}: pool-wait timeouts, callers vs wait spans, differ: {differ}"
        assert len(waits) == stats.timeouts, (name, len(waits), stats.timeouts)
        assert stats.timeouts == self.wait_timeouts, (name, stats.timeouts, self.wait_timeouts)
        # Host keys: 3 servers, at most MAX_HOSTS of their own plus _OTHER.
        assert len(stats.hosts) <= MAX_HOSTS + 1, list(stats.hosts)
        if self.sdk:
            m = collect(self.telemetry.reader)
            durations = sum(
                int(dp.count) for a, dp in m.of(sc.METRIC_CONNECTION_DURATION)
                if a.get(sc.POOL_NAME) == name
            )  # fmt: skip
            assert durations == stats.closed, (name, durations, stats.closed)
            for metric, points in m.points.items():
                hosts = {
                    (a.get(sc.SERVER_ADDRESS), a.get(sc.SERVER_PORT), a.get(sc.URL_SCHEME))
                    for a, _ in points if a.get(sc.POOL_NAME) == name
                }  # fmt: skip
                assert len(hosts) <= MAX_HOSTS + 1, (metric, sorted(map(str, hosts)))


async def test_chaos_books_always_balance(
    telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    print(f"chaos seed {SEED} (POOL_OTEL_CHAOS_SEED to replay), long={LONG}")
    rng = random.Random(SEED)
    ledger = SpanLedger()
    telemetry.tracer_provider.add_span_processor(ledger)
    fds_before = socket_fds()
    watch = CounterWatch()
    servers: list[Server] = [
        await start_server(chaos_app()),
        await start_server(chaos_app(), keepalive_timeout=0.05),  # drops idle connections
        await start_server(chaos_app()),
    ]
    urls = [s.url("", host=name) for s, name in zip(servers, HOST_NAMES)]
    churn = Churn(telemetry, servers[0].url("/small"), random.Random(rng.random()))
    started = time.monotonic()
    plugin_warnings: list[warnings.WarningMessage] = []
    kinds_seen: dict[int, int] = {}
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        for n in range(EPOCHS):
            t0 = time.monotonic()
            caplog.clear()
            epoch = Epoch(telemetry, urls, rng, n, watch, churn)
            await epoch.run()
            stats = epoch.connector.statistics()
            print(f"epoch {n} (kind {epoch.kind}): {time.monotonic() - t0:.1f}s, "
                  f"{epoch.checks} checks, {epoch.quiet_checks} quiet points, "
                  f"{epoch.wait_timeouts} wait timeouts, dials caught by close "
                  f"{epoch.dials_caught_by_close}, {stats}")  # fmt: skip
            assert epoch.checks > 0 and epoch.quiet_checks > 0
            epoch.check_closed(ledger)
            # Every span the plugin started (and ours) ended, exactly once.
            assert ledger.unended() == [], ledger.unended()
            assert ledger.ended_twice() == []
            if epoch.kind != HOSTILE:  # a hostile meter may be reported, once
                failed = [r for r in caplog.records if "telemetry failed" in r.getMessage()]
                assert failed == [], [r.getMessage() for r in failed]
            assert not [
                r for r in caplog.records if "Calling end() on an ended span" in r.getMessage()
            ]
            kinds_seen[epoch.kind] = kinds_seen.get(epoch.kind, 0) + 1
            if epoch.kind == CLOSE_DURING_DIALS:
                assert epoch.dials_caught_by_close >= 0
        plugin_warnings = [w for w in caught if "aiohttp_pool_otel" in str(w.filename)]
    # Every short-lived session's release is still counted, long after it was collected.
    gc.collect()
    final = collect(telemetry.reader)
    watch.observe(final)
    assert churn.requests > 0 and watch.collections > 10
    assert final.value(sc.METRIC_RELEASES, aiohttp__pool__name=Churn.POOL) == churn.requests
    assert final.value(sc.METRIC_CREATED, aiohttp__pool__name=Churn.POOL) == churn.requests
    assert final.value(sc.METRIC_CLOSED, aiohttp__pool__name=Churn.POOL) == churn.requests
    for srv in servers:
        await srv.runner.cleanup()
    assert plugin_warnings == []
    assert sorted(kinds_seen) == [0, 1, 2][: min(EPOCHS, 3)]
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert tasks == [] or all(t.done() for t in tasks)
    await asyncio.sleep(0.1)
    gc.collect()
    assert socket_fds() <= fds_before, "sockets left open"
    assert time.monotonic() - started < EPOCHS * (EPOCH_SECONDS + 30)
