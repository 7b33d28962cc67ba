"""Stream a reply through StepFun's Messages API (``POST /v1/messages``) as the same typed events.

``--api messages`` is for accounts and proxies that speak the Anthropic-style API. It yields
exactly what ``wire.chat.ReplyStream`` yields, so the runner and the views cannot tell the two
apart. No anthropic SDK: the HTTP library the openai SDK already brings (httpx2, or httpx for
older SDKs) sends the request (its body built by ``messages_body.py``), and the SSE is parsed
by ``sse.py``. Failures are wrapped in the openai SDK's exception types so
``wire.retry.call_error`` words them exactly as on the chat path.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import socket
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from step_magic.core.errors import StepAPIError
from step_magic.core.events import AnswerDelta, Event, Finished, ReasoningDelta, Usage
from step_magic.core.request import ChatRequest
from step_magic.core.settings import Settings
from step_magic.core.text import clean_text
from step_magic.wire.chat import tls_context
from step_magic.wire.messages_body import messages_body
from step_magic.wire.retry import after_failure, call_error
from step_magic.wire.sse import ServerEvent, SSEDecoder
from step_magic.wire.toolcalls import ToolCallCollector

ANTHROPIC_VERSION = "2023-06-01"
# Anthropic's stop reasons in Chat Completions words; others (content_filter) pass unchanged.
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "refusal": "content_filter",
    "tool_use": "tool_calls",
}


class MessagesStream:
    """Iterate over the events of one Messages API call; ``close()`` from another thread stops it.

    Same contract as ``wire.chat.ReplyStream``: 429/5xx are retried before any text, every
    failure is one ``StepAPIError``, and ``trace_id`` / ``completion_id`` are kept.
    """

    def __init__(self, settings: Settings, request: ChatRequest) -> None:
        self._settings = settings
        self._request = request
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._http_client: Any = None
        self._socket: socket.socket | None = None
        self.trace_id: str | None = None
        self.completion_id: str | None = None
        self.usage: Usage | None = None  # the latest seen: kept if the stream is cut short

    def close(self) -> None:
        """Stop: wake a retry wait and cut the connection, even before headers arrived.

        Closing the HTTP client alone does not wake a thread blocked reading from a silent
        server (the read goes on until data or the timeout), so the socket is shut down too.
        """
        self._cancelled.set()
        with self._lock:
            http_client, sock = self._http_client, self._socket
        if sock is not None:
            _shut(sock)
        if http_client is not None:
            http_client.close()

    def __iter__(self) -> Iterator[Event]:
        body = messages_body(self._request)
        timeout = self._settings.timeout  # every phase, so reads time out when idle that long
        http_client = _http().Client(timeout=timeout, verify=tls_context())
        with self._lock:
            self._http_client = http_client
        try:
            response = yield from self._open(http_client, body)
            if response is not None and not self._cancelled.is_set():
                yield from self._read(response)
        finally:
            http_client.close()

    def _open(self, http_client: Any, body: dict[str, Any]) -> Generator[Event, None, Any]:
        """Send the request, retrying 429/5xx as ReplyStream does; return the open response."""
        key = self._settings.api_key
        # Anthropic SDKs (which StepFun's reference uses) send x-api-key; its keys are Bearer.
        headers = {
            "x-api-key": key,
            "Authorization": f"Bearer {key}",
            "anthropic-version": ANTHROPIC_VERSION,  # the reference SDK always sends one
        }
        url = self._settings.base_url.rstrip("/") + "/messages"
        attempts = self._settings.max_retries + 1
        for attempt in range(1, attempts + 1):
            if self._cancelled.is_set():
                return None
            request = http_client.build_request(
                "POST", url, json=body, headers=headers, extensions={"trace": self._on_trace}
            )
            try:
                response = http_client.send(request, stream=True)
            except _http().HTTPError as err:
                if self._cancelled.is_set():
                    return None
                raise self._error(_transport_error(err, request)) from None
            self.trace_id = response.headers.get("x-trace-id")
            if response.is_success:
                return response
            waiting = after_failure(_status_error(response), attempt, attempts, self._error)
            yield waiting
            if self._cancelled.wait(waiting.delay):
                return None
        return None

    def _read(self, response: Any) -> Iterator[Event]:
        reply = _Reply()
        try:
            for event in _server_events(response):
                yield from self._events(event, reply, response)
                if reply.stopped or self._cancelled.is_set():
                    break  # anything after message_stop is not ours to wait for
        except _http().HTTPError as err:
            if self._cancelled.is_set():
                return
            raise self._error(_transport_error(err, response.request)) from None
        except json.JSONDecodeError as err:
            raise self._error(err) from None
        finally:
            response.close()
        if not self._cancelled.is_set():
            usage, ids = reply.usage(), (self.trace_id, self.completion_id)
            yield Finished(reply.finish_reason, usage, *ids, reply.tools.calls())

    def _events(self, event: ServerEvent, reply: _Reply, response: Any) -> Iterator[Event]:
        """The text of one SSE event; unknown event and delta types are skipped."""
        if event.data.strip() == "[DONE]":  # an OpenAI-style end marker, from some proxies
            reply.stopped = True
            return
        payload = json.loads(event.data)
        if not isinstance(payload, dict):
            return
        kind = payload.get("type") if event.name == "message" else event.name
        if kind == "error" or (kind is None and "error" in payload):  # Anthropic or StepFun
            import openai

            raise self._error(openai.APIError("error event", response.request, body=payload))
        if kind == "message_start":
            message = _mapping(payload.get("message"))
            self.completion_id = message.get("id") or self.completion_id
            reply.add_usage(message.get("usage"))
            self.usage = reply.usage()
        elif kind in ("content_block_start", "content_block_delta"):
            block = _mapping(payload.get("content_block") or payload.get("delta"))
            yield from _texts(block)
            reply.tool_piece(payload.get("index"), block)
        elif kind == "message_delta":
            reason = _mapping(payload.get("delta")).get("stop_reason")
            if isinstance(reason, str) and reason:
                reply.finish_reason = FINISH_REASONS.get(reason, reason)
            reply.add_usage(payload.get("usage"))
            self.usage = reply.usage()
        elif kind == "message_stop":
            reply.stopped = True

    def _on_trace(self, name: str, info: dict[str, Any]) -> None:
        """httpcore's trace hook: keep this call's socket, so ``close`` can shut it down."""
        stream = info.get("return_value")
        extra = getattr(stream, "get_extra_info", None)
        sock = extra("socket") if callable(extra) else None
        if isinstance(sock, socket.socket):
            with self._lock:
                self._socket = sock
            if self._cancelled.is_set():  # close() came while connecting
                _shut(sock)

    def _error(self, err: Exception, note: str = "") -> StepAPIError:
        """One clean line, worded as the chat path's are (``retry.call_error``)."""
        ids = {"trace_id": self.trace_id, "completion_id": self.completion_id}
        return call_error(err, self._settings, note, **ids)


@dataclass
class _Reply:
    """What the events said about the reply as a whole."""

    finish_reason: str | None = None
    stopped: bool = False
    counts: dict[str, int] | None = None
    tools: ToolCallCollector = field(default_factory=ToolCallCollector)

    def tool_piece(self, index: Any, block: dict[str, Any]) -> None:
        """A ``tool_use`` block's start (id, name, maybe the whole input) or a piece of its
        input JSON, in the chat shape the collector assembles."""
        if block.get("type") == "tool_use":
            given = block.get("input")
            whole = json.dumps(given) if isinstance(given, dict) and given else ""
            function = {"name": block.get("name"), "arguments": whole}
            self.tools.feed([{"index": index, "id": block.get("id"), "function": function}])
        elif block.get("type") == "input_json_delta":
            piece = {"arguments": block.get("partial_json")}
            self.tools.feed([{"index": index, "function": piece}])

    def add_usage(self, raw: Any) -> None:
        """Merge a usage object; later ones (message_delta) update the earlier counts."""
        if isinstance(raw, dict):
            counts = {key: value for key, value in raw.items() if isinstance(value, int)}
            self.counts = {**(self.counts or {}), **counts}

    def usage(self) -> Usage | None:
        """Chat-style usage: the prompt counts cache reads and writes, as prompt_tokens does."""
        if self.counts is None:
            return None
        cached = self.counts.get("cache_read_input_tokens", 0)
        written = self.counts.get("cache_creation_input_tokens", 0)
        prompt = self.counts.get("input_tokens", 0) + cached + written
        completion = self.counts.get("output_tokens", 0)
        return Usage(prompt, completion, prompt + completion, cached or None)


def _server_events(response: Any) -> Iterator[ServerEvent]:
    decoder = SSEDecoder()
    for chunk in response.iter_bytes():
        yield from decoder.feed(chunk)
    yield from decoder.finish()


def _texts(block: dict[str, Any]) -> Iterator[Event]:
    """Reasoning or answer text of a block start or delta (thinking, text and their deltas)."""
    kinds = (("thinking", ReasoningDelta), ("text", AnswerDelta))
    for key, kind in kinds:
        text = block.get(key)
        if block.get("type") in (key, f"{key}_delta") and isinstance(text, str) and text:
            yield kind(clean_text(text))


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _http() -> ModuleType:
    """The openai SDK's HTTP library: httpx2 for current SDKs, httpx for older ones."""
    try:
        return importlib.import_module("httpx2")
    except ImportError:
        return importlib.import_module("httpx")


def _status_error(response: Any) -> Exception:
    """The SDK's status error for an HTTP error reply, with its JSON body if it has one."""
    import openai

    try:
        body: object = json.loads(response.read())
    except (ValueError, _http().HTTPError):
        body = None
    finally:
        response.close()
    return openai.APIStatusError("request failed", response=response, body=body)


def _transport_error(err: Exception, request: Any) -> Exception:
    """The SDK's timeout or connection error for a transport failure, caused by ``err``."""
    import openai

    if isinstance(err, _http().TimeoutException):
        wrapped: Exception = openai.APITimeoutError(request)
    else:
        wrapped = openai.APIConnectionError(request=request)
    wrapped.__cause__ = err
    return wrapped


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed: nothing left to wake
        sock.shutdown(socket.SHUT_RDWR)
