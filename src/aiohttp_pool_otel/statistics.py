"""Snapshots of a connector's pool, returned by ``connector.statistics()``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Optional

from .semconv import ReleaseReason


@dataclass(frozen=True)
class HostPoolStatistics:
    """The pool of one key (host, port, scheme) at one moment, plus its cumulative counts.

    ``available`` is how many more connections this key may acquire without waiting,
    ``min(limit - acquired, limit_per_host - acquired for this key)``; ``None`` when
    the connector has no limit at all. Counts are cumulative since the key was first
    seen (a key whose pool emptied may be forgotten once ``max_hosts`` is reached).
    """

    host: str
    port: Optional[int]
    scheme: str
    active: int
    idle: int
    connecting: int
    waiting: int
    available: Optional[int]
    limit: int
    limit_per_host: int
    created: int
    reused: int
    closed: int
    timeouts: int
    releases: Mapping[ReleaseReason, int] = field(default_factory=dict)


@dataclass(frozen=True)
class PoolStatistics:
    """The whole connector at one moment: totals and one entry per pool key.

    ``limit`` / ``limit_per_host`` are the connector's settings (0 means no limit).
    ``hosts`` maps ``(host, port, scheme)`` to that key's statistics.
    """

    active: int
    idle: int
    connecting: int
    waiting: int
    limit: int
    limit_per_host: int
    created: int
    reused: int
    closed: int
    timeouts: int
    releases: Mapping[ReleaseReason, int]
    hosts: Mapping[tuple[str, Optional[int], str], HostPoolStatistics]
