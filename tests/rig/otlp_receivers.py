"""Real OTLP receivers on 127.0.0.1 for tests: gRPC (grpcio + the opentelemetry-proto
service stubs) and HTTP/protobuf (aiohttp in its own thread). Both keep every decoded
``Export*ServiceRequest`` so tests can check resource, scope, spans and metrics."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent import futures
from typing import Any, Callable, Optional

import grpc
from aiohttp import web
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as msvc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc as mgrpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as tsvc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as tgrpc


class Received:
    """Thread-safe store of what a receiver got."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.trace_requests: list[tsvc.ExportTraceServiceRequest] = []
        self.metric_requests: list[msvc.ExportMetricsServiceRequest] = []

    def add(self, request: Any) -> None:
        with self._cond:
            if isinstance(request, tsvc.ExportTraceServiceRequest):
                self.trace_requests.append(request)
            else:
                self.metric_requests.append(request)
            self._cond.notify_all()

    def spans(self) -> list[Any]:
        with self._cond:
            return [
                span
                for request in self.trace_requests
                for rs in request.resource_spans
                for ss in rs.scope_spans
                for span in ss.spans
            ]

    def metrics(self, name: Optional[str] = None) -> list[Any]:
        with self._cond:
            found = [
                metric
                for request in self.metric_requests
                for rm in request.resource_metrics
                for sm in rm.scope_metrics
                for metric in sm.metrics
            ]
        return [m for m in found if name is None or m.name == name]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Block (bounded) until ``predicate()``; never call from the loop under test."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
            return True


class GrpcOtlpReceiver(Received):
    """An OTLP/gRPC endpoint: ``endpoint`` is ``http://127.0.0.1:PORT``."""

    def __init__(self) -> None:
        super().__init__()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        store = self

        class Traces(tgrpc.TraceServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:
                store.add(request)
                return tsvc.ExportTraceServiceResponse()

        class Metrics(mgrpc.MetricsServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:
                store.add(request)
                return msvc.ExportMetricsServiceResponse()

        tgrpc.add_TraceServiceServicer_to_server(Traces(), self._server)
        mgrpc.add_MetricsServiceServicer_to_server(Metrics(), self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def start(self) -> GrpcOtlpReceiver:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=None).wait(5)


class HttpOtlpReceiver(Received):
    """An OTLP/HTTP protobuf endpoint: ``endpoint`` is ``http://127.0.0.1:PORT``
    (the exporters post to ``/v1/traces`` and ``/v1/metrics``)."""

    def __init__(self) -> None:
        super().__init__()
        self.port = 0
        self.endpoint = ""
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._runner: Optional[web.AppRunner] = None
        self._thread: Optional[threading.Thread] = None

    async def _handle(self, request: web.Request, parse: Any, reply: Any) -> web.Response:
        message = parse()
        message.ParseFromString(await request.read())  # aiohttp already un-gzipped it
        self.add(message)
        return web.Response(
            body=reply().SerializeToString(), content_type="application/x-protobuf"
        )

    async def _traces(self, request: web.Request) -> web.Response:
        return await self._handle(
            request, tsvc.ExportTraceServiceRequest, tsvc.ExportTraceServiceResponse
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        return await self._handle(
            request, msvc.ExportMetricsServiceRequest, msvc.ExportMetricsServiceResponse
        )

    def start(self) -> HttpOtlpReceiver:
        started = threading.Event()

        async def serve() -> None:
            app = web.Application()
            app.router.add_post("/v1/traces", self._traces)
            app.router.add_post("/v1/metrics", self._metrics)
            self._runner = web.AppRunner(app, handle_signals=False)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", 0).start()
            self.port = self._runner.addresses[0][1]
            self.endpoint = f"http://127.0.0.1:{self.port}"
            started.set()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(serve())
            self._loop.run_forever()
            self._loop.close()

        self._thread = threading.Thread(target=run, name="otlp-http-receiver", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the OTLP/HTTP receiver did not start in 10 s")
        return self

    def stop(self) -> None:
        loop, runner = self._loop, self._runner
        if loop is None or runner is None:
            return
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)


def attributes(proto_attributes: Any) -> dict[str, Any]:
    """OTLP ``KeyValue`` list -> plain dict."""
    out: dict[str, Any] = {}
    for kv in proto_attributes:
        which = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, which) if which else None
    return out
