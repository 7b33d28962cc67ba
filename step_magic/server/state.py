"""What one running server shares between its request threads."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from step_magic.server.cache import PromptCache
from step_magic.server.config import ReceivedRequest, ServerConfig
from step_magic.server.faults import FaultSelector


class ServerState:
    """Config, request log, fault counters, prompt cache and open connections of one server.

    ``stopping`` is set once the server stops; every wait in a handler waits on it, so a
    stall or a slow stream ends as soon as the server is asked to stop.
    """

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.faults = FaultSelector()
        self.cache = PromptCache()
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._requests: list[ReceivedRequest] = []
        self._connections: set[socket.socket] = set()

    def record(self, request: ReceivedRequest) -> None:
        """Append one received request to the log."""
        with self._lock:
            self._requests.append(request)

    def requests(self) -> list[ReceivedRequest]:
        """A copy of the log, so callers can iterate while requests keep arriving."""
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        """Forget the log, the fault counters and the prompt cache."""
        with self._lock:
            self._requests.clear()
        self.faults.reset()
        self.cache.clear()

    def open_connection(self, connection: socket.socket) -> None:
        """Track a client connection, or cut it at once if the server is already stopping."""
        with self._lock:
            if not self.stopping.is_set():
                self._connections.add(connection)
                return
        cut(connection)

    def close_connection(self, connection: socket.socket) -> None:
        """Stop tracking a connection its handler has finished with."""
        with self._lock:
            self._connections.discard(connection)

    def cut_connections(self) -> None:
        """Shut every open connection, waking handlers blocked reading or writing."""
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            cut(connection)


def cut(connection: socket.socket) -> None:
    """Shut a socket both ways; the peer sees the body end where it is (a truncation)."""
    with contextlib.suppress(OSError):  # Already closed by the peer: nothing left to cut.
        connection.shutdown(socket.SHUT_RDWR)


class Stopped(Exception):
    """The server is stopping: abandon the reply and close the connection."""


class Pacer:
    """Spaces events at ``tokens_per_second`` without bursting to catch up after a stall."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.due: float | None = None

    def wait(self) -> None:
        """Wait until the next event may go out; raise ``Stopped`` if the server stops."""
        if self.state.stopping.is_set():
            raise Stopped
        rate = self.state.config.tokens_per_second
        if rate <= 0:
            return
        now = time.monotonic()
        self.due = now if self.due is None else max(self.due + 1 / rate, now)
        if self.state.stopping.wait(self.due - now):
            raise Stopped
