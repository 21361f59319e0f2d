"""A response leaked on purpose: never closed, left to the garbage collector."""

from __future__ import annotations

import gc
import warnings

import aiohttp

from aiohttp_pool_otel import OpenTelemetryTCPConnector, ReleaseReason

from .waiting import wait_until


def gc_releases(connector: OpenTelemetryTCPConnector) -> int:
    """How many of the connector's releases the garbage collector made."""
    return connector.statistics().releases.get(ReleaseReason.GC, 0)


async def leak_a_response(
    session: aiohttp.ClientSession, url: str, connector: OpenTelemetryTCPConnector
) -> int:
    """GET ``url`` (one the server cuts, such as /cut, so aiohttp lets go of it) and drop
    the response unclosed; wait (bounded, collecting) until the connector counted a
    garbage-collected release. Returns the count of those releases then."""
    before = gc_releases(connector)
    leaked = await session.get(url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        del leaked
        gc.collect()
    await wait_until(
        lambda: gc_releases(connector) > before or gc.collect() < 0,
        timeout=30,
        what="the leaked response's garbage-collected release",
    )
    return gc_releases(connector)
