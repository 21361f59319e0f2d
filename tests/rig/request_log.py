"""What a test server saw: one entry per HTTP request, with the connection it came on.

The server side's own count is the reference the pool's books are checked against: a
request the server answered is one lease the client released, and a connection the
server accepted is one the client created. Thread-safe, since moto's server answers
on threads of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import NamedTuple


class SeenRequest(NamedTuple):
    """One request as the server saw it (no query string: S3's tokens vary per run)."""

    method: str
    path: str
    connection: Hashable


class RequestLog:
    """Requests a server answered, and the distinct connections they came on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: list[SeenRequest] = []

    def record(self, method: str, path: str, connection: Hashable) -> None:
        """Note one request (called by the server, on whatever thread answers it)."""
        with self._lock:
            self._seen.append(SeenRequest(method, path, connection))

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()

    @property
    def requests(self) -> int:
        with self._lock:
            return len(self._seen)

    @property
    def connections(self) -> int:
        with self._lock:
            return len({seen.connection for seen in self._seen})

    def request_lines(self) -> list[tuple[str, str]]:
        """(method, path) of every request, sorted: concurrent requests arrive in any order."""
        with self._lock:
            return sorted((seen.method, seen.path) for seen in self._seen)
