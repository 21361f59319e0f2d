"""Moved to tests/rig/ (waiting, spans, metric_points, pool_books, hostile_meter,
canned_servers); these names stay importable from here for the files that still do."""

from .rig.canned_servers import (
    CANNED_RESPONSE,
    close_servers,
    gather_bounded,
    port_of,
    start_canned_servers,
)
from .rig.hostile_meter import HostileMeterProvider, RaisingHistogram
from .rig.metric_points import HOST_KEYS, STATE_GAUGES, Collection, collect
from .rig.pool_books import books
from .rig.spans import SpanLedger
from .rig.waiting import quiet_point, wait_until

__all__ = [
    "CANNED_RESPONSE",
    "HOST_KEYS",
    "STATE_GAUGES",
    "Collection",
    "HostileMeterProvider",
    "RaisingHistogram",
    "SpanLedger",
    "books",
    "close_servers",
    "collect",
    "gather_bounded",
    "port_of",
    "quiet_point",
    "start_canned_servers",
    "wait_until",
]
