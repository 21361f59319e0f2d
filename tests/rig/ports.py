"""Ports on 127.0.0.1."""

from __future__ import annotations

import socket


def unused_port() -> int:
    """A 127.0.0.1 port nobody listens on (bound once, then let go): a connection to it
    is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
