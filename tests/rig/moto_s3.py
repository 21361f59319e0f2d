"""moto's S3 server on 127.0.0.1, in a thread, counting what it answers.

It is what ``moto.server.ThreadedMotoServer`` runs (moto's WSGI dispatcher and request
handler on werkzeug's threaded server), with two additions for the tests: a WSGI wrapper
that logs every request, and a handler that tags each request with the number of the
connection it came on. werkzeug's server closes every connection after one response.
"""

from __future__ import annotations

import itertools
import threading
import urllib.request
from collections.abc import Iterable
from typing import Any, Callable

from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

from .request_log import RequestLog

_CONNECTION_KEY = "rig.connection"
_connection_numbers = itertools.count(1)  # next() is atomic under the GIL

# moto's own control API (state reset); not part of what a test's client sends.
_CONTROL_PREFIX = "/moto-api/"


class _NumberingHandler(MotoRequestHandler):
    """moto's handler, quiet, numbering connections (one handler per connection)."""

    def setup(self) -> None:
        super().setup()
        self.connection_number = next(_connection_numbers)

    def make_environ(self) -> dict[str, Any]:
        environ = super().make_environ()
        environ[_CONNECTION_KEY] = self.connection_number
        return environ

    def log_request(self, *args: Any) -> None:
        pass  # werkzeug would print every request to stderr


class _Logging:
    """WSGI wrapper: logs each request, then lets moto answer it."""

    def __init__(self, app: Callable[..., Iterable[bytes]], log: RequestLog) -> None:
        self._app = app
        self._log = log

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        if not path.startswith(_CONTROL_PREFIX):
            self._log.record(environ["REQUEST_METHOD"], path, environ[_CONNECTION_KEY])
        return self._app(environ, start_response)


class MotoS3Server:
    """moto's server on a free port of 127.0.0.1; ``url`` is its endpoint."""

    def __init__(self) -> None:
        self.log = RequestLog()
        app = _Logging(DomainDispatcherApplication(create_backend_app), self.log)
        self._server = make_server(
            "127.0.0.1", 0, app, threaded=True, request_handler=_NumberingHandler
        )
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="moto-s3", daemon=True
        )
        self._thread.start()

    def reset(self) -> None:
        """Forget every bucket (moto's state is process-wide) and every logged request."""
        request = urllib.request.Request(f"{self.url}{_CONTROL_PREFIX}reset", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
        self.log.clear()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=30)
        self._server.server_close()
