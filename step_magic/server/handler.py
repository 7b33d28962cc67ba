"""The HTTP side: one handler per connection, speaking StepFun's wire protocol.

HTTP/1.1 with keep-alive, so clients reuse connections as they do with the real API;
streamed replies use chunked transfer-encoding, so cutting the socket before the final
empty chunk is a truncation the client can detect, exactly like a dropped connection.
"""

from __future__ import annotations

import hmac
import io
import json
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from step_magic.core.models import MODELS
from step_magic.server.completion import (
    Completion,
    completion_body,
    plan_completion,
    reasoning_field,
)
from step_magic.server.config import ReceivedRequest, redact_headers
from step_magic.server.errors import ApiError, invalid_key
from step_magic.server.faults import STATUS_FAULTS
from step_magic.server.httpserver import (
    IDLE_SECONDS,
    MAX_BODY_BYTES,
    RequestReader,
    StepHTTPServer,
)
from step_magic.server.messages import (
    MESSAGES_PATH,
    error_body,
    message_body,
    message_steps,
    parse_messages_request,
)
from step_magic.server.replies import (
    build_reply,
    chatty_reply,
    message_tokens,
    recorded_reply,
    tool_tokens,
)
from step_magic.server.responses import (
    RESPONSES_PATH,
    parse_responses_request,
    response_body,
    response_steps,
)
from step_magic.server.state import Pacer, ServerState, Stopped, cut
from step_magic.server.stream import Action, Step, stream_steps
from step_magic.server.validation import ReceivedChat, parse_chat_request

CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
MODELS_CREATED = 1_767_225_600  # A fixed date keeps /v1/models byte-for-byte stable.


JSON = "application/json"
HTML_PAGE = b"<!doctype html><html><body><h1>Sign in to continue</h1></body></html>"


class StepRequestHandler(BaseHTTPRequestHandler):
    """Routes, authenticates and answers one request at a time on a kept-alive connection."""

    protocol_version = "HTTP/1.1"
    server_version = "step-magic-local"
    sys_version = ""
    disable_nagle_algorithm = True  # One small write per event must leave at once.
    timeout = IDLE_SECONDS  # every read and write of the socket: idle clients are dropped
    server: StepHTTPServer

    def setup(self) -> None:
        """Register the connection so ``stop()`` can cut it; read it through a reader that
        gives each request a time limit."""
        super().setup()
        self._reader = RequestReader(self.connection, self.timeout)
        self.rfile = io.BufferedReader(self._reader)
        self.server.state.open_connection(self.connection)

    def handle_one_request(self) -> None:
        """One request, which must arrive whole in time; the reply is then written with the
        idle limit only (a long answer streams for as long as it takes)."""
        self._reader.start()
        super().handle_one_request()

    def handle(self) -> None:
        """Serve the connection; a client hanging up is routine, not an error to print."""
        try:
            super().handle()
        except ConnectionError:
            self.close_connection = True

    def finish(self) -> None:
        """Unregister the connection whatever happened to it."""
        try:
            super().finish()
        except OSError:
            pass  # The socket was cut (a drop fault or stop); nothing left to flush.
        finally:
            self.server.state.close_connection(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: test output and a teacher's terminal have no use for access logs."""

    def do_GET(self) -> None:
        """Answer GET requests (``/v1/models``; anything else is a 404)."""
        self._handle()

    def do_POST(self) -> None:
        """Answer POST requests (``/v1/chat/completions``, ``/v1/messages``, ``/v1/responses``;
        else a 404)."""
        self._handle()

    do_PUT = do_PATCH = do_DELETE = do_POST

    @property
    def state(self) -> ServerState:
        """The state shared by every connection of this server."""
        return self.server.state

    def _handle(self) -> None:
        self.trace_id = uuid.uuid4().hex
        try:
            body = self._read_json()
        except ApiError as error:
            self._send_json(error.status, error.body(), error.headers)
            return
        self.state.record(
            ReceivedRequest(
                method=self.command,
                path=self.path,
                headers=redact_headers(list(self.headers.items())),
                body=body,
                received_at=time.time(),
                peer=f"{self.client_address[0]}:{self.client_address[1]}",
            )
        )
        try:
            self._check_key()
            self._route(body)
        except ApiError as error:
            self._send_json(error.status, error.body(), error.headers)
        except (Stopped, OSError):
            self._abandon()

    def _read_json(self) -> Any:
        length = self.headers.get("Content-Length", "0")
        counted = length.isascii() and length.isdigit()  # not "²", which int() refuses
        if counted and int(length) > MAX_BODY_BYTES:
            raise ApiError(  # the body is not read: the connection cannot go on
                413,
                "request_too_large",
                f"The request body is over {MAX_BODY_BYTES:,} bytes.",
                {"Connection": "close"},  # (send_header also marks it to close)
            )
        raw = self.rfile.read(int(length)) if counted else b""
        self.connection.settimeout(self.timeout)  # the request is in: back to the idle limit
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return None

    def _check_key(self) -> None:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        if not token and urlsplit(self.path).path.rstrip("/") == MESSAGES_PATH:
            token = self.headers.get("x-api-key", "").strip()  # all an Anthropic SDK sends
        if not token:
            raise invalid_key("No API key provided: send it as 'Authorization: Bearer <key>'.")
        expected = self.state.config.api_key
        if expected is not None and not hmac.compare_digest(token.encode(), expected.encode()):
            raise invalid_key()

    def _route(self, body: Any) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        if self.command == "POST" and path == CHAT_PATH:
            self._chat(parse_chat_request(body), body)
        elif self.command == "POST" and path == MESSAGES_PATH:
            self._messages(body)
        elif self.command == "POST" and path == RESPONSES_PATH:
            self._responses(body)
        elif self.command == "GET" and path == MODELS_PATH:
            self._send_json(200, _models_body())
        else:
            raise ApiError(404, "not_found", f"No route for {self.command} {path or '/'}.")

    def _chat(self, request: ReceivedChat, body: Any) -> None:
        field = reasoning_field(request, self.state.config)
        completion, fault = self._plan(request, body, field)
        if fault == "html-page":  # a proxy's sign-in page, say
            self._send_json(200, HTML_PAGE, kind="text/html; charset=utf-8")
        elif request.stream and fault != "non-streamed":
            before_end = self.state.config.finish_reason_before_end
            usage = request.include_usage
            self._stream(stream_steps(completion, fault, before_end, include_usage=usage))
        else:
            self._send_completion(completion_body(completion, fault), fault)

    def _messages(self, body: Any) -> None:
        """The chat reply to the same question, sent as Messages API events or JSON."""
        try:
            request, chat_body = parse_messages_request(body)
            completion, fault = self._plan(request, chat_body, "reasoning")
        except ApiError as error:
            self._send_json(error.status, error_body(error), error.headers)
            return
        if request.stream:
            self._stream(message_steps(completion, fault))
        else:
            self._send_completion(message_body(completion, fault), fault)

    def _responses(self, body: Any) -> None:
        """The chat reply to the same question, sent as Responses API events or JSON."""
        request, chat_body = parse_responses_request(body)
        completion, fault = self._plan(request, chat_body, "reasoning")
        if request.stream:
            self._stream(response_steps(completion, fault))
        else:
            self._send_completion(response_body(completion, fault), fault)

    def _plan(self, request: ReceivedChat, body: Any, field: str) -> tuple[Completion, str | None]:
        """Pick the fault, apply its delays and status errors, and plan the reply text."""
        config = self.state.config
        fault = self.state.faults.select(request.fault, self.headers.get("X-Step-Fault"), config)
        self._wait(config.first_byte_delay)
        if fault in STATUS_FAULTS:
            raise STATUS_FAULTS[fault](config)
        if fault == "stall-before":
            self._wait(config.stall_seconds)
        costs = [message_tokens(message) for message in request.messages]
        cached = self.state.cache.use(request.model, request.raw_messages, costs)
        reply = recorded_reply(config.cassette, body) or build_reply(
            request, config.reasoning_tokens, config.answer_tokens, tool_loop=fault == "tool-loop"
        )
        if fault == "chatty-tools":
            reply = chatty_reply(reply)
        prompt = sum(costs) + tool_tokens(request.tools)
        return plan_completion(request, reply, fault, field, (prompt, cached)), fault

    def _stream(self, steps: Iterator[Step]) -> None:
        """Send the steps as chunked SSE, one write per event so each leaves at once."""
        self.send_response(200)
        self._send_common_headers("text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        pacer = Pacer(self.state)
        for step in steps:
            if step is Action.STALL:
                self._wait(self.state.config.stall_seconds)
            elif step is Action.DROP:
                self._abandon()
                return
            else:
                pacer.wait()
                self.wfile.write(b"%x\r\n%b\r\n" % (len(step), step))
        self.wfile.write(b"0\r\n\r\n")

    def _send_completion(self, body: bytes, fault: str | None) -> None:
        """Send a non-streamed reply; mid-reply faults stall after the headers or cut the body."""
        self.send_response(200)
        self._send_common_headers("application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if fault == "stall-mid":
            self._wait(self.state.config.stall_seconds)
        if fault in ("drop-reasoning", "drop-answer"):
            self.wfile.write(body[: len(body) // 2])
            self._abandon()
            return
        self.wfile.write(body)

    def _send_json(
        self, status: int, body: bytes, headers: dict[str, str] | None = None, kind: str = JSON
    ) -> None:
        self.send_response(status)
        self._send_common_headers(kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_common_headers(self, content_type: str) -> None:
        self.send_header("Content-Type", content_type)
        self.send_header("X-Trace-Id", self.trace_id)

    def _wait(self, seconds: float) -> None:
        """Sleep ``seconds``, unless the server stops first."""
        if seconds > 0 and self.state.stopping.wait(seconds):
            raise Stopped

    def _abandon(self) -> None:
        """Cut the connection mid-reply, as a network failure or a dying server would."""
        self.close_connection = True
        cut(self.connection)


def _models_body() -> bytes:
    data = [
        {"id": name, "object": "model", "created": MODELS_CREATED, "owned_by": "stepai"}
        for name in MODELS
    ]
    return json.dumps({"object": "list", "data": data}).encode()
