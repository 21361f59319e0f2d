"""pytest plugin: run someone else's test suite with the pool instrumentor active.

Loaded by ``.ci/third_party_suites.sh`` with ``-p pool_otel_plugin`` (this folder on
``PYTHONPATH``). At the start of the session it calls
``AioHttpConnectionPoolInstrumentor().instrument()`` with in-memory providers of its own
(so the suite's own exporters and global providers are untouched), and at the end it
uninstruments and writes a JSON summary to ``$POOL_OTEL_SUMMARY`` (if set):

- ``pool_spans``: finished spans whose name starts with ``aiohttp.`` (proof that the
  plugin was really at work, so an empty comparison cannot pass silently);
- ``metric_points``: data points the meter provider collected at the end;
- ``plugin_errors``: records at ERROR or above from the ``aiohttp_pool_otel`` loggers
  (the plugin must never complain about someone else's objects, e.g. a test's ``Mock``);
- ``restored``: whether ``uninstrument()`` put every attribute of aiohttp's connector,
  session, response and connection classes back (compared by identity).

The file has no tests of its own and is not collected (its name has no ``test_`` prefix).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Optional

import aiohttp
import aiohttp.client_reqrep
import aiohttp.connector
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from aiohttp_pool_otel import AioHttpConnectionPoolInstrumentor

# The classes the plugin may patch: uninstrument() must leave each exactly as found.
_CLASSES = (
    aiohttp.connector.BaseConnector,
    aiohttp.connector.TCPConnector,
    aiohttp.connector.UnixConnector,
    aiohttp.ClientSession,
    aiohttp.client_reqrep.ClientResponse,
    aiohttp.connector.Connection,
)


class _ErrorCounter(logging.Handler):
    """Keeps every ERROR-or-worse record of the plugin's loggers."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        where = _State.current_test or "outside any test"
        error = ""
        if record.exc_info and record.exc_info[1] is not None:
            error = f" [{type(record.exc_info[1]).__name__}: {record.exc_info[1]}]"
        self.messages.append(f"{where}: {record.name}: {record.getMessage()}{error}")


class _State:
    current_test: Optional[str] = None
    instrumentor: Optional[Any] = None
    exporter: Optional[InMemorySpanExporter] = None
    reader: Optional[InMemoryMetricReader] = None
    tracer_provider: Optional[TracerProvider] = None
    meter_provider: Optional[MeterProvider] = None
    errors = _ErrorCounter()
    before: dict[type, dict[str, Any]] = {}


def pytest_configure(config: pytest.Config) -> None:
    """Instrument aiohttp before any test module is imported."""
    _State.before = {cls: dict(vars(cls)) for cls in _CLASSES}
    logging.getLogger("aiohttp_pool_otel").addHandler(_State.errors)
    _State.exporter = InMemorySpanExporter()
    _State.tracer_provider = TracerProvider()
    _State.tracer_provider.add_span_processor(SimpleSpanProcessor(_State.exporter))
    _State.reader = InMemoryMetricReader()
    _State.meter_provider = MeterProvider(metric_readers=[_State.reader])
    _State.instrumentor = AioHttpConnectionPoolInstrumentor()
    _State.instrumentor.instrument(
        tracer_provider=_State.tracer_provider, meter_provider=_State.meter_provider
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: Optional[pytest.Item]) -> Any:
    """Remember which test is running, to name it in an error the plugin logs."""
    _State.current_test = item.nodeid
    try:
        return (yield)
    finally:
        _State.current_test = None


def _metric_points(reader: InMemoryMetricReader) -> int:
    data = reader.get_metrics_data()
    if data is None:
        return 0
    return sum(
        len(metric.data.data_points)
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    """Uninstrument, check aiohttp is restored, and write the summary."""
    if _State.instrumentor is None:
        return
    assert _State.exporter is not None and _State.reader is not None
    points = _metric_points(_State.reader)
    # A suite may itself uninstrument every BaseInstrumentor it finds; do not fail on that.
    if _State.instrumentor.is_instrumented_by_opentelemetry:
        _State.instrumentor.uninstrument()
    changed = sorted(
        f"{cls.__qualname__}.{name}"
        for cls, attrs in _State.before.items()
        for name in set(attrs) | set(vars(cls))
        if attrs.get(name, _MISSING) is not vars(cls).get(name, _MISSING)
    )
    spans = [s.name for s in _State.exporter.get_finished_spans()]
    summary = {
        "pool_spans": sum(1 for name in spans if name.startswith("aiohttp.")),
        "span_names": sorted(set(spans)),
        "metric_points": points,
        "plugin_errors": _State.errors.messages,
        "restored": not changed,
        "changed_attributes": changed,
    }
    path = os.environ.get("POOL_OTEL_SUMMARY")
    if path:
        with open(path, "w", encoding="utf-8") as out:
            json.dump(summary, out, indent=1)
    assert _State.tracer_provider is not None and _State.meter_provider is not None
    _State.tracer_provider.shutdown()
    _State.meter_provider.shutdown()
    _State.instrumentor = None


_MISSING = object()
