"""A tiny raw-socket HTTP peer that answers every request with the exact bytes a test chose.

The bundled ``LocalServer`` speaks the protocol correctly by construction; this peer lets a
test decide where the network cuts the reply (inside a UTF-8 sequence, inside ``data:``,
between ``\\r`` and ``\\n``) and whether TLS is in the way. Each piece is one ``sendall`` with
TCP_NODELAY, with an optional pause between pieces so the client really reads them apart.
Loopback only; every thread it starts is joined by ``stop()``.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType

RESPONSE_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/event-stream\r\n"
    b"Cache-Control: no-cache\r\n"
    b"X-Trace-Id: sse-peer-trace\r\n"
    b"Connection: close\r\n"
    b"\r\n"
)
# A server that answers a streamed request with one JSON object (it ignored ``stream``).
JSON_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/json\r\n"
    b"X-Trace-Id: sse-peer-trace\r\n"
    b"Connection: close\r\n"
    b"\r\n"
)
ACCEPT_POLL_SECONDS = 0.05
IO_TIMEOUT_SECONDS = 10.0
JOIN_SECONDS = 5.0


class SSEPeer:
    """Answer any POST with ``head`` (``200 text/event-stream``), then ``pieces`` one write
    each, then close.

    ``pieces`` may be replaced between requests (property tests reuse one peer); with
    ``replies`` the n-th request gets the n-th pieces instead (the last one again after
    that), for a tool loop's turns. Every request's body is kept in ``bodies``. With
    ``tls`` the accepted sockets are wrapped server-side; a client that refuses the
    certificate shows up in ``handshake_failures``.
    """

    def __init__(
        self,
        pieces: Sequence[bytes] = (),
        *,
        pause: float = 0.0,
        tls: ssl.SSLContext | None = None,
        head: bytes = RESPONSE_HEAD,
        replies: Sequence[Sequence[bytes]] = (),
    ) -> None:
        self.pieces: Sequence[bytes] = pieces
        self.pause = pause
        self.head = head
        self.replies = replies
        self.requests = 0
        self.bodies: list[bytes] = []
        self.handshake_failures: list[str] = []
        self._tls = tls
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._port: int | None = None
        self._threads: list[threading.Thread] = []

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("start() the peer first")
        return self._port

    @property
    def base_url(self) -> str:
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}/v1"

    def start(self) -> SSEPeer:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        listener.settimeout(ACCEPT_POLL_SECONDS)
        self._listener = listener
        self._port = int(listener.getsockname()[1])
        self._spawn(self._accept_loop, "sse-peer-accept")
        return self

    def stop(self) -> None:
        """Stop accepting, let connections in progress end, and join every thread."""
        self._stopping.set()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(JOIN_SECONDS)
        if self._listener is not None:
            self._listener.close()

    def __enter__(self) -> SSEPeer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._spawn(self._serve, "sse-peer-connection", connection)

    def _serve(self, raw: socket.socket) -> None:
        raw.settimeout(IO_TIMEOUT_SECONDS)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = raw
        try:
            if self._tls is not None:
                try:
                    connection = self._tls.wrap_socket(raw, server_side=True)
                except (ssl.SSLError, OSError) as err:
                    with self._lock:
                        self.handshake_failures.append(str(err))
                    return
            request = _read_request(connection)
            with self._lock:
                turn = min(self.requests, len(self.replies) - 1)
                pieces = list(self.replies[turn] if self.replies else self.pieces)
                self.requests += 1
                self.bodies.append(request.partition(b"\r\n\r\n")[2])
            connection.sendall(self.head)
            for piece in pieces:
                if self.pause:
                    time.sleep(self.pause)
                connection.sendall(piece)
            if self._tls is None:
                connection.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the client went away early: routine for a peer that only writes
        finally:
            connection.close()


def _read_request(connection: socket.socket) -> bytes:
    """Read one request (head and Content-Length body) so closing never resets the client."""
    data = bytearray()
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return bytes(data)
        data += chunk
    head, _, rest = bytes(data).partition(b"\r\n\r\n")
    body = bytearray(rest)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip() or 0)
    while len(body) < length:
        chunk = connection.recv(max(65536, length - len(body)))
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + bytes(body)
