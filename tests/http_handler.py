"""A tiny HTTP server for tests that play another server (a proxy, a FastAPI app, a gateway):
a handler base whose ``reply`` sends one whole response, and ``serving`` to start it on
127.0.0.1. Raw byte-level control is ``sse_peer.SSEPeer``'s job; this is for status codes,
headers and redirects."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, as real servers speak it; nothing is logged."""

    protocol_version = "HTTP/1.1"

    def body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def reply(
        self, status: int, body: bytes = b"", kind: str = "application/json", **headers: str
    ) -> None:
        """One whole response; ``Retry_After="0"`` is the header ``Retry-After: 0``."""
        self.send_response(status)
        self.send_header("Content-Type", kind)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(ConnectionError):  # a client that read enough hangs up
            self.wfile.write(body)

    def answer(self, text: str = "Hi.", **headers: str) -> None:
        """A streamed Chat Completions reply of one chunk, then ``[DONE]``."""
        chunk = {"id": "c", "choices": [{"delta": {"content": text}, "finish_reason": "stop"}]}
        stream = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
        self.reply(200, stream, "text/event-stream", **headers)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serving(handler: type[BaseHTTPRequestHandler], **state: Any) -> ThreadingHTTPServer:
    """``handler`` served on a free port of 127.0.0.1; ``state`` set on the server, where the
    handler finds it (``self.server.seen``); ``shutdown()`` and ``server_close()`` end it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    for name, value in state.items():
        setattr(server, name, value)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@contextlib.contextmanager
def served(handler: type[BaseHTTPRequestHandler], **state: Any) -> Iterator[ThreadingHTTPServer]:
    """``serving``, shut down when the block ends."""
    server = serving(handler, **state)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def url_of(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/v1"
