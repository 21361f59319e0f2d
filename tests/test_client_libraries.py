"""Libraries that build their own aiohttp connectors, under AioHttpConnectionPoolInstrumentor.

aiobotocore against moto's S3 server, and gql's AIOHTTPTransport against a GraphQL
server on aiohttp (plain HTTP and TLS), all on 127.0.0.1. For each library:

- the pool's books are exact: releases == requests the server answered, created ==
  connections the server accepted, and the plugin's active/idle agree with aiohttp's own
  state of the library's connector while its client is open and after it closed;
- the library's results are identical with and without the plugin, errors included,
  and the server sees the same requests;
- the counters keep the library's counts after its client is closed and collected, and
  never go down on the way.

These need the ``clients`` extra (pinned versions); without it they are skipped.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

CLIENTS_EXTRA = "needs the clients extra: pip install -e '.[clients]'"
for _module in ("aiobotocore.session", "moto.server", "gql.transport.aiohttp", "graphql"):
    pytest.importorskip(_module, reason=CLIENTS_EXTRA)

from aiohttp_pool_otel import AioHttpConnectionPoolInstrumentor  # noqa: E402
from aiohttp_pool_otel import semconv as sc  # noqa: E402

from .client_workloads import (  # noqa: E402
    Outcome,
    PoolWitness,
    See,
    counter_totals,
    gql_workload,
    ignore,
    s3_workload,
    totals,
)
from .conftest import Telemetry, start_server  # noqa: E402
from .rig.graphql_server import Library, graphql_app  # noqa: E402
from .rig.metric_points import collect  # noqa: E402
from .rig.moto_s3 import MotoS3Server  # noqa: E402
from .rig.request_log import RequestLog  # noqa: E402
from .rig.waiting import quiet_point  # noqa: E402


@dataclass
class LibraryCase:
    """A library's workload against its server, and what the server saw of it."""

    log: RequestLog
    reset: Callable[[], None]
    run: Callable[[See], Awaitable[list[Outcome]]]
    errors: list[str]  # the error types the workload's outcomes hold, in order

    def expected_counts(self) -> dict[str, int]:
        """The counters the server's log implies: every request acquired a connection,
        new or reused, and released it; every connection was closed with its client."""
        requests, connections = self.log.requests, self.log.connections
        return {
            "created": connections,
            "reused": requests - connections,
            "closed": connections,
            "releases": requests,
        }


# --- servers --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3Server]:
    """One moto server for the session; each test resets its state."""
    server = MotoS3Server()
    yield server
    server.stop()


@pytest.fixture
def aws_isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AWS configuration of the machine's user reaches botocore."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", f"{tmp_path}/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", f"{tmp_path}/aws-credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def s3_case(request: pytest.FixtureRequest) -> LibraryCase:
    request.getfixturevalue("aws_isolated")
    s3: MotoS3Server = request.getfixturevalue("moto_s3")
    s3.reset()
    return LibraryCase(
        log=s3.log,
        reset=s3.reset,
        run=lambda see: s3_workload(s3.url, see),
        errors=["NoSuchKey", "ClientError", "ClientError", "NoSuchBucket"],
    )


@pytest.fixture(params=["aiobotocore-s3", "gql-http", "gql-https"])
async def library(request: pytest.FixtureRequest) -> AsyncIterator[LibraryCase]:
    """Each library with its server, reset to the same state."""
    if request.param == "aiobotocore-s3":
        yield s3_case(request)
        return
    tls = request.param == "gql-https"
    log, shelf = RequestLog(), Library()
    server_ssl = request.getfixturevalue("tls_server_context") if tls else None
    client_ssl = request.getfixturevalue("client_ssl_context") if tls else True
    server = await start_server(graphql_app(log, shelf), ssl_context=server_ssl)

    def reset() -> None:
        shelf.reset()
        log.clear()

    def run(see: See) -> Awaitable[list[Outcome]]:
        return gql_workload(server.url("/graphql"), server.url("/unavailable"), client_ssl, see)

    yield LibraryCase(
        log=log,
        reset=reset,
        run=run,
        errors=["TransportQueryError", "GraphQLError", "TransportServerError"],
    )
    await server.runner.cleanup()


@pytest.fixture
def instrument(telemetry: Telemetry) -> Iterator[Callable[[], None]]:
    """Turns the instrumentor on with the test's providers; always off afterwards."""
    instrumentor = AioHttpConnectionPoolInstrumentor()

    def on() -> None:
        instrumentor.instrument(
            tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
        )

    yield on
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


# --- tests -----------------------------------------------------------------------------


async def test_pool_books_match_the_server_and_aiohttp(
    library: LibraryCase, instrument: Callable[[], None], telemetry: Telemetry
) -> None:
    instrument()
    witness = PoolWitness()
    await library.run(witness.see)
    witness.check_books_while_open()
    witness.check_closed()
    expected = library.expected_counts()
    assert totals(witness.final_statistics()) == expected
    # The connectors are closed, not yet collected: the reader has the same counts,
    # and no pool state of theirs (their gauges dropped out).
    collection = collect(telemetry.reader)
    assert counter_totals(collection) == expected
    assert collection.of(sc.METRIC_OPEN_CONNECTIONS) == []


async def test_results_identical_with_and_without_the_plugin(
    library: LibraryCase, instrument: Callable[[], None]
) -> None:
    bare = await library.run(ignore)
    bare_requests = library.log.request_lines()
    assert [outcome[1] for outcome in bare if outcome[0] == "error"] == library.errors
    library.reset()
    instrument()
    witness = PoolWitness()
    instrumented = await library.run(witness.see)
    assert instrumented == bare
    assert library.log.request_lines() == bare_requests
    assert witness.sightings  # the plugin really was there


async def test_counters_keep_the_library_counts_after_its_client_is_gone(
    library: LibraryCase, instrument: Callable[[], None], telemetry: Telemetry
) -> None:
    instrument()
    # Not holding the connectors: gql's short-lived sessions may go while the run goes on.
    witness = PoolWitness(telemetry.reader, keep=False)
    await library.run(witness.see)
    after_close = counter_totals(collect(telemetry.reader))
    gc.collect()
    await quiet_point()
    assert [ref() for ref in witness.refs] == [None] * len(witness.refs), "connector alive"
    after_gc = collect(telemetry.reader)
    expected = library.expected_counts()
    assert counter_totals(after_gc) == expected
    assert after_close == expected
    assert after_gc.of(sc.METRIC_OPEN_CONNECTIONS) == []
    # Never down on the way: every counter at every sighting is at most its final value,
    # and no later sighting shows less than an earlier one.
    for name in expected:
        seen = [counts[name] for counts in witness.counts] + [expected[name]]
        assert seen == sorted(seen), (name, seen)
