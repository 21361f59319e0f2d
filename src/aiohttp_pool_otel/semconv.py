"""Every name this package emits: spans, events, attributes, metrics, and their values.

Semantic-convention names are reused where OpenTelemetry defines one
(``server.address``, ``http.client.open_connections``, ...); everything else
lives under ``aiohttp.``. The README tables are generated from the same names,
so a rename here is a rename everywhere.
"""

from __future__ import annotations

import enum

# --- spans -----------------------------------------------------------------
SPAN_WAIT = "aiohttp.connection.wait"
SPAN_CREATE = "aiohttp.connection.create"
SPAN_LEASE = "aiohttp.connection.lease"
SPAN_DNS = "aiohttp.dns.resolve"

# --- span events (on the lease span) ---------------------------------------
EVENT_EOF = "eof"
EVENT_RELEASED = "released"
EVENT_CLOSED = "closed"
EVENT_DETACHED = "detached"
EVENT_HELD_TOO_LONG = "held_too_long"
# On a wait span that timed out: one event per pool key (at most 10, busiest first).
EVENT_POOL_KEY = "pool_key"

# --- attributes ------------------------------------------------------------
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
URL_SCHEME = "url.scheme"
HTTP_REQUEST_METHOD = "http.request.method"
NETWORK_PEER_ADDRESS = "network.peer.address"
NETWORK_PEER_PORT = "network.peer.port"
# The connection's own local port: which connection a lease used (one per connection).
NETWORK_LOCAL_PORT = "network.local.port"
ERROR_TYPE = "error.type"
HTTP_CONNECTION_STATE = "http.connection.state"

POOL_NAME = "aiohttp.pool.name"
POOL_QUEUE_DEPTH = "aiohttp.pool.queue_depth"
POOL_BLOCKING_LIMIT = "aiohttp.pool.blocking_limit"
CONNECTION_REUSED = "aiohttp.connection.reused"
CONNECTION_QUEUED = "aiohttp.connection.queued"
CONNECTION_IDLE_TIME = "aiohttp.connection.idle_time"
CONNECTION_HOLD_TIME = "aiohttp.connection.hold_time"
RELEASE_REASON = "aiohttp.connection.release.reason"
RELEASE_PHASE = "aiohttp.connection.release.phase"
RELEASE_OUTCOME = "aiohttp.connection.release.outcome"
DNS_CACHE_HIT = "aiohttp.dns.cache_hit"
POOL_ACTIVE = "aiohttp.pool.active"
POOL_IDLE = "aiohttp.pool.idle"
POOL_WAITING = "aiohttp.pool.waiting"
POOL_OLDEST_LEASE_AGE = "aiohttp.pool.oldest_lease_age"
CODE_FILEPATH = "code.file.path"
CODE_LINENO = "code.line.number"
CODE_FUNCTION = "code.function.name"

# Value of ``server.address`` for hosts beyond ``max_hosts``.
OTHER_HOST = "_OTHER"

# --- metrics ---------------------------------------------------------------
METRIC_OPEN_CONNECTIONS = "http.client.open_connections"
METRIC_AVAILABLE = "aiohttp.client.connection.available"
METRIC_MAX = "aiohttp.client.connection.max"
METRIC_MAX_PER_HOST = "aiohttp.client.connection.max_per_host"
METRIC_PENDING = "aiohttp.client.connection.pending_requests"
METRIC_CREATED = "aiohttp.client.connection.created"
METRIC_REUSED = "aiohttp.client.connection.reused"
METRIC_CLOSED = "aiohttp.client.connection.closed"
METRIC_RELEASES = "aiohttp.client.connection.releases"
METRIC_TIMEOUTS = "aiohttp.client.connection.timeouts"
METRIC_QUEUED = "aiohttp.client.connection.queued"
METRIC_HELD_TOO_LONG = "aiohttp.client.connection.held_too_long"
METRIC_WAIT_TIME = "aiohttp.client.connection.wait_time"
METRIC_CREATE_TIME = "aiohttp.client.connection.create_time"
METRIC_USE_TIME = "aiohttp.client.connection.use_time"
METRIC_CONNECTION_DURATION = "http.client.connection.duration"
METRIC_DNS_DURATION = "dns.lookup.duration"

# Bucket boundaries in seconds, from 0.5 ms to 5 min: the SDK's default
# boundaries are meant for milliseconds and would put every sample in one bucket.
SECONDS_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5,
    0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip


class ReleaseReason(str, enum.Enum):
    """Why a connection left its request: the value of ``aiohttp.connection.release.reason``."""

    EOF = "eof"
    """The body parser reached EOF and aiohttp gave the connection back by itself."""
    RELEASE = "release"
    """``ClientResponse.release()`` (directly, or by ``async with``, redirects,
    ``raise_for_status``) before EOF."""
    CLOSE = "close"
    """``ClientResponse.close()`` (directly or by aiohttp on an error or cancellation)
    before EOF."""
    GC = "gc"
    """An unclosed response or connection was garbage-collected: a bug in the caller."""
    ERROR = "error"
    """Closed internally without a finished response (send failure, writer error)."""
    CONNECTOR_CLOSED = "connector_closed"
    """The connector (or its owning session) closed while the connection was held."""
    UPGRADE = "upgrade"
    """The request upgraded the connection to a WebSocket (``ws_connect``): the lease ends
    with the handshake, and the connection is the WebSocket's until it closes."""

    def __str__(self) -> str:
        return self.value


class ReleasePhase(str, enum.Enum):
    """When an EOF release happened: ``aiohttp.connection.release.phase``."""

    HEADERS = "headers"
    """Before ``session.request()`` returned: the body came with the headers."""
    BODY = "body"
    """Later, when the rest of the body arrived."""

    def __str__(self) -> str:
        return self.value


class ReleaseOutcome(str, enum.Enum):
    """What happened to the connection: ``aiohttp.connection.release.outcome``."""

    POOLED = "pooled"
    """Back in the pool, idle, for the next request."""
    CLOSED = "closed"
    """Closed: counted in ``aiohttp.client.connection.closed`` at once."""
    DETACHED = "detached"
    """Still open but out of the pool's reuse for good (a WebSocket): it holds its slot
    of ``limit`` until it closes, and that close is counted then."""

    def __str__(self) -> str:
        return self.value
