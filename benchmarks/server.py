"""A cheap HTTP/1.1 keep-alive server, so that the aiohttp *client* is the bottleneck.

A raw ``asyncio.Protocol`` (on uvloop when installed) in its own process, bound to
127.0.0.1 on an ephemeral port. It prints ``PORT <n>`` on stdout, then serves until
stdin reaches EOF (the parent is gone) or ``--max-seconds`` have passed.

Routes (GET, no request bodies; anything else is ``/small``):

* ``/small``: a 13-byte body.
* ``/large``: ``--large-bytes`` (256 KiB) in one write.
* ``/slow``: ``--slow-chunks`` chunks of ``--slow-chunk-bytes``, ``--slow-delay-ms`` apart,
  Content-Length framed. Requests pipelined behind a slow one are answered in order.

    python -m benchmarks.server [--no-uvloop] [--max-seconds 3600]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import select
import subprocess
import sys
import threading
from collections import deque
from typing import Optional

SMALL_BODY = b"Hello, World!"


def _response(body: bytes) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n"
        b"Connection: keep-alive\r\n\r\n" + body
    )


class Config:
    __slots__ = ("large", "slow_chunk", "slow_chunks", "slow_delay", "slow_head", "small")

    def __init__(self, large_bytes: int, chunk_bytes: int, chunks: int, delay_ms: float) -> None:
        self.small = _response(SMALL_BODY)
        self.large = _response(b"L" * large_bytes)
        self.slow_chunk = b"s" * chunk_bytes
        self.slow_chunks = chunks
        self.slow_delay = delay_ms / 1000.0
        self.slow_head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: " + str(chunk_bytes * chunks).encode() + b"\r\n"
            b"Connection: keep-alive\r\n\r\n"
        )


class HttpProtocol(asyncio.Protocol):
    """Parses request heads only (GET), answers from pre-built byte strings."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.buf = b""
        self.transport: Optional[asyncio.Transport] = None
        self.pending: deque[bytes] = deque()  # paths queued behind a slow response
        self.streaming = False
        self.stream_task: Optional[asyncio.Future[None]] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head, buf = buf[:end], buf[end + 4 :]
            line = head.split(b"\r\n", 1)[0].split(b" ")
            path = line[1].split(b"?", 1)[0] if len(line) > 1 else b"/"
            if path == b"/slow" or self.streaming:
                self.pending.append(path)
                if not self.streaming:
                    self.streaming = True
                    self.stream_task = asyncio.ensure_future(self._stream())
            else:
                self._answer_fast(path)
        self.buf = buf

    def _answer_fast(self, path: bytes) -> None:
        if self.transport is not None:
            self.transport.write(self.cfg.large if path == b"/large" else self.cfg.small)

    async def _stream(self) -> None:
        cfg = self.cfg
        try:
            while self.pending and self.transport is not None:
                path = self.pending.popleft()
                if path != b"/slow":
                    self._answer_fast(path)
                    continue
                self.transport.write(cfg.slow_head)
                for _ in range(cfg.slow_chunks):
                    await asyncio.sleep(cfg.slow_delay)
                    if self.transport is None:
                        return
                    self.transport.write(cfg.slow_chunk)
        finally:
            self.streaming = False


async def serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    cfg = Config(args.large_bytes, args.slow_chunk_bytes, args.slow_chunks, args.slow_delay_ms)
    tls = None
    if args.tls_cert:  # HTTPS: a session per request then pays a TLS handshake, as in life
        import ssl

        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    server = await loop.create_server(
        lambda: HttpProtocol(cfg), host="127.0.0.1", port=0, backlog=1024, ssl=tls
    )
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    stop = loop.create_future()

    def stop_soon() -> None:
        if not stop.done():
            stop.set_result(None)

    def watch_stdin() -> None:  # a thread: works for pipes, files and ttys alike
        try:
            while os.read(sys.stdin.fileno(), 4096):
                pass
        except OSError:
            pass
        loop.call_soon_threadsafe(stop_soon)

    if not args.ignore_stdin:
        threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()
    try:
        await asyncio.wait_for(stop, timeout=args.max_seconds)
    except asyncio.TimeoutError:
        print("server: --max-seconds reached, exiting", file=sys.stderr)
    server.close()


def main(argv: Optional[list[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--no-uvloop", action="store_true", help="plain asyncio even if uvloop exists")
    p.add_argument("--large-bytes", type=int, default=256 * 1024)
    p.add_argument("--slow-chunks", type=int, default=4)
    p.add_argument("--slow-chunk-bytes", type=int, default=16 * 1024)
    p.add_argument("--slow-delay-ms", type=float, default=2.0)
    p.add_argument("--max-seconds", type=float, default=3600.0, help="hard lifetime bound")
    p.add_argument("--ignore-stdin", action="store_true", help="do not exit on stdin EOF")
    p.add_argument("--tls-cert", default=None, help="serve HTTPS with this certificate chain")
    p.add_argument("--tls-key", default=None, help="the key of --tls-cert")
    args = p.parse_args(argv)
    if not args.no_uvloop:
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
    asyncio.run(serve(args))


class ServerProcess:
    """``with ServerProcess() as srv:`` runs this server in a child process on 127.0.0.1."""

    def __init__(self, max_seconds: float = 3600.0, extra_args: Optional[list[str]] = None) -> None:
        self.args = [
            sys.executable,
            "-m",
            "benchmarks.server",
            "--max-seconds",
            str(max_seconds),
            *(extra_args or []),
        ]
        self.proc: Optional[subprocess.Popen[str]] = None
        self.port = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> ServerProcess:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.proc = subprocess.Popen(
            self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=root
        )
        assert self.proc.stdout is not None
        ready = select.select([self.proc.stdout], [], [], 30)[0]
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("PORT "):
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise RuntimeError(f"benchmark server did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def __exit__(self, *exc: object) -> None:
        proc = self.proc
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()  # the server exits on stdin EOF
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
