"""What the client-library tests make aiobotocore and gql do, and how they compare results.

Each workload drives a library the way an application does, against a server on
127.0.0.1, and returns its outcomes in a comparable form: a result with what varies per
run (request ids, dates) taken out, or an error as its type and what the library says
about it. ``see(connector)`` is called while the library's client is open, with the
aiohttp connector the library built, so a test can check the pool's books right there.

Imports the libraries of the ``clients`` extra: import it after checking they exist.
"""

from __future__ import annotations

import asyncio
import datetime
import weakref
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, Callable, Optional

import aiohttp
from aiobotocore.session import get_session
from botocore.exceptions import ClientError
from gql import Client, GraphQLRequest
from gql.transport.aiohttp import AIOHTTPTransport
from graphql import print_schema
from opentelemetry.sdk.metrics.export import MetricReader

from aiohttp_pool_otel import PoolStatistics, pool_statistics
from aiohttp_pool_otel import semconv as sc

from .rig.metric_points import Collection, collect
from .rig.pool_books import books

Outcome = tuple[Any, ...]
See = Callable[[Optional[aiohttp.BaseConnector]], None]

BUCKET = "pool-books"
LARGE = 1024 * 1024  # larger than aiohttp buffers unread: its lease is still active

# The pool's counters, by the names PoolStatistics and the tests use.
COUNTERS = {
    "created": sc.METRIC_CREATED,
    "reused": sc.METRIC_REUSED,
    "closed": sc.METRIC_CLOSED,
    "releases": sc.METRIC_RELEASES,
}


def ignore(connector: Optional[aiohttp.BaseConnector]) -> None:
    """A ``see`` for runs without the plugin."""


# --- the pool as the plugin and as aiohttp see it ----------------------------------


@dataclass(frozen=True)
class Sighting:
    """The plugin's statistics of a connector and aiohttp's own state, at one moment."""

    statistics: PoolStatistics
    aiohttp_active: int
    aiohttp_idle: int


def aiohttp_open(connector: aiohttp.BaseConnector) -> tuple[int, int]:
    """(active, idle) from aiohttp's private books: a cross-check, read in tests only."""
    idle = sum(len(pool) for pool in connector._conns.values())
    return len(connector._acquired), idle


def counter_totals(collection: Collection) -> dict[str, int]:
    """The pool's counters as a reader collected them, summed over their series."""
    return {name: int(collection.value(metric) or 0) for name, metric in COUNTERS.items()}


class PoolWitness:
    """Every connector a library built, with what was seen of it while its client was open.

    ``keep``: hold the connectors, so their final statistics can be read after the
    library closed them (else they may be collected as soon as the library drops them).
    With a ``reader``, each sighting also collects the pool's counters.
    """

    def __init__(self, reader: Optional[MetricReader] = None, keep: bool = True) -> None:
        self.connectors: list[aiohttp.BaseConnector] = []
        self.refs: list[weakref.ref[aiohttp.BaseConnector]] = []
        self.sightings: list[Sighting] = []
        self.counts: list[dict[str, int]] = []
        self._reader = reader
        self._keep = keep

    def see(self, connector: Optional[aiohttp.BaseConnector]) -> None:
        assert connector is not None, "the library's client has no connector while open"
        if all(ref() is not connector for ref in self.refs):
            self.refs.append(weakref.ref(connector))
            if self._keep:
                self.connectors.append(connector)
        statistics = pool_statistics(connector)
        assert statistics is not None, f"the instrumentor did not adopt {connector!r}"
        self.sightings.append(Sighting(statistics, *aiohttp_open(connector)))
        if self._reader is not None:
            self.counts.append(counter_totals(collect(self._reader)))

    def final_statistics(self) -> list[PoolStatistics]:
        finals = [pool_statistics(connector) for connector in self.connectors]
        assert all(s is not None for s in finals), "a closed connector lost its statistics"
        return [s for s in finals if s is not None]

    def check_books_while_open(self) -> None:
        """At every sighting the plugin's active/idle are aiohttp's, and created - closed
        is what is open."""
        assert self.sightings, "the workload never showed its connector"
        # Not vacuous: at some sighting aiohttp held connections (S3's unread large body,
        # gql's idle keep-alive connections).
        assert any(seen.aiohttp_active + seen.aiohttp_idle for seen in self.sightings)
        for seen in self.sightings:
            stats = seen.statistics
            assert (stats.active, stats.idle) == (seen.aiohttp_active, seen.aiohttp_idle), seen
            created_minus_closed, open_now = books(stats)
            assert created_minus_closed == open_now, seen

    def check_closed(self) -> None:
        """Every connector the library built is closed, empty, and closed all it created."""
        for connector, final in zip(self.connectors, self.final_statistics()):
            assert connector.closed, f"the library left {connector!r} open"
            assert aiohttp_open(connector) == (0, 0)
            assert (final.active, final.idle, final.connecting, final.waiting) == (0, 0, 0, 0)
            assert final.closed == final.created, final


def totals(statistics: list[PoolStatistics]) -> dict[str, int]:
    """The counts summed over connectors, named as the metrics' last word."""
    return {
        "created": sum(s.created for s in statistics),
        "reused": sum(s.reused for s in statistics),
        "closed": sum(s.closed for s in statistics),
        "releases": sum(sum(s.releases.values()) for s in statistics),
    }


# --- aiobotocore against moto's S3 -------------------------------------------------


def _plain(value: Any) -> Any:
    """A response with what differs per run (request ids, dates, headers) taken out."""
    if isinstance(value, Mapping):
        out = {k: _plain(v) for k, v in value.items() if k != "ResponseMetadata"}
        if "ResponseMetadata" in value:
            out["HTTPStatusCode"] = value["ResponseMetadata"]["HTTPStatusCode"]
        return out
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, datetime.datetime):
        return "<datetime>"
    return value


async def _s3_result(response: Mapping[str, Any]) -> Outcome:
    body = response.get("Body")
    if body is None:
        return ("ok", _plain(response))
    async with body as stream:  # a streaming body: its bytes, read to the end
        data = await stream.read()
    return ("ok", _plain({k: v for k, v in response.items() if k != "Body"}), data)


async def s3_outcome(call: Awaitable[Any]) -> Outcome:
    """The result of one S3 call, or its error as botocore describes it."""
    try:
        response = await call
    except ClientError as error:
        meta = error.response.get("ResponseMetadata", {})
        return ("error", type(error).__name__, str(error), error.response.get("Error"),
                meta.get("HTTPStatusCode"))  # fmt: skip
    return await _s3_result(response)


def _s3_connector(client: Any) -> Optional[aiohttp.BaseConnector]:
    # aiobotocore keeps one ClientSession per proxy URL and offers no public accessor.
    sessions = client._endpoint.http_session._sessions
    (session,) = sessions.values()
    connector: Optional[aiohttp.BaseConnector] = session.connector
    return connector


async def s3_workload(endpoint: str, see: See) -> list[Outcome]:
    """A bucket's life: puts (8 at once), reads, pages, a copy, four errors, deletes.

    23 requests, one S3 client (one aiobotocore connector, ``limit`` 10).
    """
    keys = [f"k{i}" for i in range(8)]
    session = get_session()
    async with session.create_client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    ) as s3:  # fmt: skip
        out = [await s3_outcome(s3.create_bucket(Bucket=BUCKET))]
        out += await asyncio.gather(
            *(s3_outcome(s3.put_object(Bucket=BUCKET, Key=k, Body=k.encode() * 3)) for k in keys)
        )
        out.append(await s3_outcome(s3.put_object(Bucket=BUCKET, Key="large", Body=b"L" * LARGE)))
        out.append(await s3_outcome(s3.head_object(Bucket=BUCKET, Key="k3")))
        large = await s3.get_object(Bucket=BUCKET, Key="large")
        see(_s3_connector(s3))  # the large body is unread: its lease is active
        out.append(await _s3_result(large))
        out.append(await s3_outcome(s3.get_object(Bucket=BUCKET, Key="k5")))
        paginator = s3.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=BUCKET, PaginationConfig={"PageSize": 4}):
            out.append(("ok", _plain(page)))  # 9 keys, 4 a page: 3 pages
        copy = {"Bucket": BUCKET, "Key": "k1"}
        out.append(await s3_outcome(s3.copy_object(Bucket=BUCKET, Key="copy", CopySource=copy)))
        out.append(await s3_outcome(s3.get_object(Bucket=BUCKET, Key="missing")))
        out.append(await s3_outcome(s3.head_object(Bucket=BUCKET, Key="missing")))
        out.append(await s3_outcome(s3.delete_bucket(Bucket=BUCKET)))  # not empty
        out.append(await s3_outcome(s3.get_object(Bucket="no-such-bucket", Key="k0")))
        doomed = [{"Key": k} for k in [*keys, "large", "copy"]]
        out.append(await s3_outcome(s3.delete_objects(Bucket=BUCKET, Delete={"Objects": doomed})))
        out.append(await s3_outcome(s3.delete_bucket(Bucket=BUCKET)))
        see(_s3_connector(s3))
    return out


# --- gql against a GraphQL server on aiohttp ---------------------------------------

BOOK = "query Book($id: Int!) { book(id: $id) { id title author } }"
SHELF = "{ books { id title } }"
ADD_BOOK = (
    "mutation Add($title: String!, $author: String!) "
    "{ addBook(title: $title, author: $author) { id title author } }"
)
BROKEN = "{ books { id } broken }"  # a resolver error: data and errors
UNKNOWN_FIELD = "{ book(id: 1) { isbn } }"  # invalid: gql rejects it before sending


async def gql_outcome(session: Any, source: Any, **variables: Any) -> Outcome:
    """The data of one GraphQL operation, or its error as gql describes it."""
    request = GraphQLRequest(source, variable_values=variables or None)
    try:
        return ("ok", await session.execute(request))
    except Exception as error:
        details = [getattr(error, name, None) for name in ("errors", "data", "code")]
        return ("error", type(error).__name__, str(error), *details)


async def gql_workload(url: str, down_url: str, ssl: Any, see: See) -> list[Outcome]:
    """One client that fetches the schema and runs 7 operations (4 at once), three
    clients of one query each (a session per operation), one against a 503 endpoint.

    12 requests over 5 aiohttp sessions, each with the connector aiohttp made for it.
    """
    transport = AIOHTTPTransport(url=url, ssl=ssl)
    async with Client(transport=transport, fetch_schema_from_transport=True) as session:
        assert session.client.schema is not None
        out: list[Outcome] = [("ok", print_schema(session.client.schema))]
        out += await asyncio.gather(*(gql_outcome(session, BOOK, id=i) for i in (1, 2, 3, 4)))
        added = {"title": "The Dispossessed", "author": "Ursula K. Le Guin"}
        out.append(await gql_outcome(session, ADD_BOOK, **added))
        out.append(await gql_outcome(session, SHELF))
        out.append(await gql_outcome(session, BROKEN))
        out.append(await gql_outcome(session, UNKNOWN_FIELD))
        see(transport.session.connector if transport.session else None)
    for book_id in (1, 3, 99):
        transport = AIOHTTPTransport(url=url, ssl=ssl)
        async with Client(transport=transport) as session:
            out.append(await gql_outcome(session, BOOK, id=book_id))
            see(transport.session.connector if transport.session else None)
    transport = AIOHTTPTransport(url=down_url, ssl=ssl)
    async with Client(transport=transport) as session:
        out.append(await gql_outcome(session, SHELF))
        see(transport.session.connector if transport.session else None)
    return out
