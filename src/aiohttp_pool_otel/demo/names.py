"""The span, attribute and metric names the demo reads, as the README documents them.

The demo observes the package the way a user does, by its documented names, so it
does not import the package's internal constants."""

from __future__ import annotations

SPAN_WAIT = "aiohttp.connection.wait"
SPAN_LEASE = "aiohttp.connection.lease"

SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
URL_SCHEME = "url.scheme"
POOL_NAME = "aiohttp.pool.name"
ERROR_TYPE = "error.type"
POOL_BLOCKING_LIMIT = "aiohttp.pool.blocking_limit"
POOL_ACTIVE = "aiohttp.pool.active"
POOL_OLDEST_LEASE_AGE = "aiohttp.pool.oldest_lease_age"
CONNECTION_HOLD_TIME = "aiohttp.connection.hold_time"
RELEASE_REASON = "aiohttp.connection.release.reason"
RELEASE_PHASE = "aiohttp.connection.release.phase"
RELEASE_OUTCOME = "aiohttp.connection.release.outcome"

METRIC_PENDING = "aiohttp.client.connection.pending_requests"
METRIC_HELD_TOO_LONG = "aiohttp.client.connection.held_too_long"
