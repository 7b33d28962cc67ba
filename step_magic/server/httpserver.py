"""The listening side of the local server: threads and connections, with limits.

Kept apart from the request handler (``handler.py``): how many connections are served at
once, and what happens to the one too many, is a concern of its own. A client that floods the
server (slowloris: a thousand connections sending a byte now and then) holds at most
``MAX_CONNECTIONS`` threads, each dropped after ``IDLE_SECONDS`` without data or once a
request has taken ``REQUEST_SECONDS`` to arrive (``RequestReader``), however it trickles in;
the rest are answered 503 at once.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any

from step_magic.server.state import ServerState

MAX_CONNECTIONS = 256  # threads held at once: more connections are refused, not queued forever
IDLE_SECONDS = 30.0  # a client that sends nothing for this long is dropped
REQUEST_SECONDS = 60.0  # to send a whole request (its line, headers and body), from the first wait
MAX_BODY_BYTES = 64_000_000  # a request body above this is refused unread (413)
_BUSY_BODY = json.dumps(
    {"error": {"message": "Too many open connections to the local server.", "type": "overloaded"}}
).encode()
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%b" % (len(_BUSY_BODY), _BUSY_BODY)
)


class StepHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that carries the shared ``ServerState``; it holds at most
    ``MAX_CONNECTIONS`` threads, and answers a connection beyond that with a 503 at once."""

    daemon_threads = True
    request_queue_size = 128  # The default 5 drops connections when a batch fans out.

    def __init__(
        self,
        address: tuple[str, int],
        state: ServerState,
        handler: type[BaseHTTPRequestHandler],
    ) -> None:
        self.state = state
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup, which can take seconds offline."""
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.sendall(BUSY)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread started: its slot is free again
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class RequestReader(io.RawIOBase):
    """A connection's incoming bytes, each read bounded by the time left to send the whole
    request: a client trickling a byte a second would otherwise keep a thread for ever, as
    every read by itself is quick. ``start`` opens the window for the next request."""

    def __init__(self, connection: socket.socket, idle: float) -> None:
        self._connection, self._idle = connection, idle
        self._ends_at = float("inf")

    def start(self) -> None:
        self._ends_at = time.monotonic() + REQUEST_SECONDS

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._ends_at - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the request took over {REQUEST_SECONDS:g} s to arrive")
        self._connection.settimeout(min(self._idle, left))
        return self._connection.recv_into(buffer)
