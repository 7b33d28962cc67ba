"""``LocalServer``: start, inspect, reset and stop a local StepFun-compatible server."""

from __future__ import annotations

import threading
from types import TracebackType

from step_magic.server.config import ReceivedRequest, ServerConfig
from step_magic.server.handler import StepRequestHandler
from step_magic.server.httpserver import StepHTTPServer
from step_magic.server.state import ServerState

# How often the accept loop checks for shutdown; bounds how long stop() takes.
POLL_SECONDS = 0.05
JOIN_SECONDS = 5


class LocalServer:
    """A StepFun-compatible HTTP server on a background daemon thread.

    Port 0 picks a free port; read the real one from ``base_url`` after ``start()``.
    ``config`` may be changed between (or during) requests.
    """

    def __init__(
        self, config: ServerConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._state = ServerState(config if config is not None else ServerConfig())
        self.host = host
        self.port = port
        self._httpd: StepHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def config(self) -> ServerConfig:
        """The live configuration; assigning a new one takes effect on the next request."""
        return self._state.config

    @config.setter
    def config(self, value: ServerConfig) -> None:
        self._state.config = value

    def start(self) -> LocalServer:
        """Bind and start serving; returns ``self`` so it chains after the constructor."""
        if self._httpd is not None:
            raise RuntimeError("this LocalServer was already started; create a new one")
        self._httpd = StepHTTPServer((self.host, self.port), self._state, StepRequestHandler)
        self.port = self._httpd.server_port
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": POLL_SECONDS},
            name=f"step-magic-server:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, e.g. ``http://127.0.0.1:8765/v1``."""
        if self._httpd is None:
            raise RuntimeError("start() the server before asking for its base_url")
        return f"http://{self.host}:{self.port}/v1"

    @property
    def requests(self) -> list[ReceivedRequest]:
        """A snapshot of the requests received so far, oldest first."""
        return self._state.requests()

    def reset(self) -> None:
        """Forget received requests, fault counters and the prompt cache."""
        self._state.reset()

    def stop(self) -> None:
        """Stop serving, ending stalls and streams in progress; safe to call twice."""
        if self._httpd is None or self._state.stopping.is_set():
            return
        self._state.stopping.set()
        self._httpd.shutdown()
        self._state.cut_connections()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(JOIN_SECONDS)

    def __enter__(self) -> LocalServer:
        return self if self._httpd is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
