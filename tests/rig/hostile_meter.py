"""A meter provider whose histograms raise on every record: a broken exporter pipeline,
a buggy SDK. The plugin must never let that reach a request."""

from __future__ import annotations

from typing import Any, Optional, Union

from opentelemetry.context import Context
from opentelemetry.metrics import Histogram, NoOpHistogram, NoOpMeter, NoOpMeterProvider
from opentelemetry.util.types import Attributes


class RaisingHistogram(NoOpHistogram):
    """A histogram whose ``record`` raises."""

    def record(
        self,
        amount: Union[int, float],
        attributes: Optional[Attributes] = None,
        context: Optional[Context] = None,
    ) -> None:
        raise RuntimeError("hostile histogram: record() failed")


class _HostileMeter(NoOpMeter):
    def create_histogram(self, name: str, *args: Any, **kwargs: Any) -> Histogram:
        return RaisingHistogram(name)


class HostileMeterProvider(NoOpMeterProvider):
    """A MeterProvider (of the API) whose histograms raise on every record."""

    def get_meter(self, name: str, *args: Any, **kwargs: Any) -> NoOpMeter:
        return _HostileMeter(name)
