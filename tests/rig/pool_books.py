"""The pool's books as ``statistics()`` reports them."""

from __future__ import annotations

import aiohttp

from aiohttp_pool_otel import OpenTelemetryTCPConnector, PoolStatistics


def books(stats: PoolStatistics) -> tuple[int, int]:
    """(created - closed, active + idle + connecting): equal at every quiet point."""
    return stats.created - stats.closed, stats.active + stats.idle + stats.connecting


def assert_books_balance(stats: PoolStatistics, *context: object) -> None:
    """``created - closed == active + idle + connecting``, naming ``context`` if not."""
    opened, held = books(stats)
    assert opened == held, (*context, stats)


def pool_of(session: aiohttp.ClientSession) -> PoolStatistics:
    """The statistics of the session's instrumented connector."""
    assert isinstance(session.connector, OpenTelemetryTCPConnector), session.connector
    return session.connector.statistics()
