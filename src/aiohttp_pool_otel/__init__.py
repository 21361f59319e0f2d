"""aiohttp-pool-otel: OpenTelemetry spans and metrics for aiohttp's client connection pool.

Quick start::

    connector = OpenTelemetryTCPConnector(limit=25, limit_per_host=5)
    session = aiohttp.ClientSession(connector=connector)

or, for every connector in the process, ``AioHttpConnectionPoolInstrumentor().instrument()``.
"""

from ._version import __version__
from .connector import OpenTelemetryTCPConnector, OpenTelemetryUnixConnector, pool_statistics
from .instrumentor import AioHttpConnectionPoolInstrumentor
from .otlp import OtlpProviders, configure_otlp
from .semconv import ReleaseOutcome, ReleasePhase, ReleaseReason
from .statistics import HostPoolStatistics, PoolStatistics
from .trace_config import create_pool_trace_config

__all__ = [
    "AioHttpConnectionPoolInstrumentor",
    "HostPoolStatistics",
    "OpenTelemetryTCPConnector",
    "OpenTelemetryUnixConnector",
    "OtlpProviders",
    "PoolStatistics",
    "ReleaseOutcome",
    "ReleasePhase",
    "ReleaseReason",
    "__version__",
    "configure_otlp",
    "create_pool_trace_config",
    "pool_statistics",
]
