"""A TCP listener on 127.0.0.1 that accepts every connection and never answers: a
Collector that hangs. It counts the connections it accepted, so a test can wait until
an exporter is really stuck on it."""

from __future__ import annotations

import socket
import threading
import time


class SilentListener:
    """``endpoint`` is ``http://127.0.0.1:PORT``; ``accepted`` counts connections."""

    def __init__(self) -> None:
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(64)
        self._server.settimeout(0.2)  # so the accept loop sees stop() promptly
        self.port = int(self._server.getsockname()[1])
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="silent-listener", daemon=True)

    @property
    def accepted(self) -> int:
        return len(self._conns)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:  # the 0.2 s poll timeout
                continue
            self._conns.append(conn)  # held open, never read, never answered

    def start(self) -> SilentListener:
        self._thread.start()
        return self

    def wait_accepted(self, count: int = 1, timeout: float = 30.0) -> bool:
        """Block (bounded) until ``count`` connections were accepted."""
        deadline = time.monotonic() + timeout
        while self.accepted < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self._conns:
            conn.close()
        self._server.close()
