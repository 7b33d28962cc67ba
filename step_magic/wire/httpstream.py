"""A streamed reply over HTTP, read from its raw bytes, for every wire API.

Each API is a ``WireCall`` saying where the request goes, with which headers and body, and
what each server event means. What is the same for all lives here: the sends of a request
(``Attempts``: refusals, and 429/5xx retried before any text, ``wire.retry``), the bytes into
events (``ReplyReader``, with ``sse.py``), the trace id, and the wording of every failure
(wrapped in the openai SDK's exception types). ``HttpEventStream`` carries it on a thread,
stopped from another by shutting the socket down (so a read blocked on a silent server ends
too); ``asyncstream.AsyncHttpEventStream`` on an event loop. Every API is sent with the HTTP
library the openai SDK brings (httpx2, or httpx for older SDKs), on both drivers: one way to
send, so an error body is read to the same cap and worded the same everywhere.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import socket
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

from step_magic.core.errors import StepAPIError
from step_magic.core.events import Event, Usage, Waiting
from step_magic.core.request import ChatRequest
from step_magic.core.settings import Settings
from step_magic.wire.chat import http, is_whole, parse_whole, read_whole, tls_context
from step_magic.wire.retry import after_failure, call_error
from step_magic.wire.sse import EventTooLarge, ServerEvent, SSEDecoder


class WireCall:
    """One call on one wire API, apart from how its bytes travel: its state and its hooks.

    The state (the trace and completion ids, the latest usage, the notes) and what an API
    says (``body``, ``headers``, ``without_refused``, and how its events are read) are the
    same whether the call runs on a thread (``HttpEventStream``) or on an event loop
    (``wire.asyncstream.AsyncHttpEventStream``): each API writes them once, as a subclass of
    this, and is combined with either driver.
    """

    path = ""

    def __init__(self, settings: Settings, request: ChatRequest) -> None:
        self._settings = settings
        self._request = request
        self.trace_id: str | None = None
        self.completion_id: str | None = None
        self.usage: Usage | None = None  # the latest seen: kept if the stream is cut short
        self.notes: list[str] = []  # what was done differently from what was asked

    def body(self) -> dict[str, Any]:
        """The JSON body to send (raises ``StepAPIError`` for what the API cannot carry)."""
        raise NotImplementedError

    def headers(self) -> dict[str, str]:
        """The request's headers: the key as a Bearer token."""
        return {"Authorization": f"Bearer {self._settings.api_key}"}

    def without_refused(self, body: dict[str, Any], said: str) -> dict[str, Any] | None:
        """The body to send instead when the server refused this one with a 400 or 422 that
        says ``said`` (an optional field it does not take); None: the refusal stands."""
        return None

    def start_reply(self) -> ReplyState:
        """What one reply's events build up as they are read."""
        return ReplyState()

    def read_event(self, reply: Any, event: ServerEvent, response: Any) -> Iterator[Event]:
        """The events one server event means; set ``reply.stopped`` at the reply's end;
        raise ``StepAPIError`` (through ``server_error``) for an error event."""
        raise NotImplementedError

    def end_reply(self, reply: Any) -> Iterator[Event]:
        """What follows the last event: ``Finished`` (not called once cancelled)."""
        raise NotImplementedError

    def read_whole(self, reply: dict[str, Any], response: Any) -> Iterator[Event]:
        """The same events from one JSON reply (a server that ignored ``stream: true``)."""
        raise NotImplementedError

    @property
    def cancelled(self) -> bool:
        return False

    def server_error(self, payload: Any, response: Any) -> StepAPIError:
        """An error event's body as the same one line an HTTP error gets."""
        import openai

        said = "the server sent an error event, without words"  # (when it has none)
        return self.error(openai.APIError(said, response.request, body=payload))

    def error(self, err: Exception, note: str = "") -> StepAPIError:
        """One clean line, worded as the chat path's are (``retry.call_error``)."""
        ids = {"trace_id": self.trace_id, "completion_id": self.completion_id}
        return call_error(err, self._settings, note, **ids)

    def url(self) -> str:
        return self._settings.base_url.rstrip("/") + self.path

    def whole(self, body: bytes, kind: str) -> dict[str, Any]:
        """A reply that is not a stream of events: one JSON object (``chat.parse_whole``);
        anything else is this call's error, naming what came instead."""
        try:
            return parse_whole(body, kind)
        except ValueError as err:
            raise self.error(err) from None


@dataclass
class ReplyState:
    """What the events of one reply said so far; ``stopped`` once it said it ended."""

    stopped: bool = False


class Attempts:
    """The sends of one request, I/O apart: a refused optional field is dropped and sent
    again at once (twice at most, outside the count of retries); 429/5xx wait and retry as
    ``wire.retry`` says; anything else, or the last attempt, raises the call's error."""

    def __init__(self, call: WireCall, body: dict[str, Any]) -> None:
        self._call = call
        self.body = body
        self._attempt, self._refusals = 1, 0
        self._attempts = call._settings.max_retries + 1

    def after(self, response: Any, refusal: Exception) -> Waiting | None:
        """After a failed response: None to send ``body`` again now, or the wait first."""
        if response.status_code in (400, 422) and self._refusals < 2:
            said = str(getattr(refusal, "body", None) or refusal)
            instead = self._call.without_refused(self.body, said)
            if instead is not None:
                self.body, self._refusals = instead, self._refusals + 1
                return None
        waiting = after_failure(refusal, self._attempt, self._attempts, self._call.error)
        self._attempt += 1
        return waiting


class ReplyReader:
    """A reply's bytes into events, I/O apart: SSE decoded (``sse.SSEDecoder``) and each
    server event read by the call's API, until the reply says it ended."""

    def __init__(self, call: WireCall, response: Any) -> None:
        self._call, self._response = call, response
        self._decoder = SSEDecoder()
        self._reply = call.start_reply()

    @property
    def stopped(self) -> bool:
        return bool(self._reply.stopped)

    def feed(self, chunk: bytes) -> Iterator[Event]:
        yield from self._events(self._decoder.feed(chunk))

    def end(self) -> Iterator[Event]:
        """What the last bytes held, then the reply's end; nothing once cancelled (the last
        bytes may be half an event, which is no error of the server's)."""
        if self._call.cancelled:
            return
        if not self.stopped:
            yield from self._events(self._decoder.finish())
        yield from self._call.end_reply(self._reply)

    def _events(self, events: list[ServerEvent]) -> Iterator[Event]:
        for event in events:
            yield from self._call.read_event(self._reply, event, self._response)
            if self._reply.stopped or self._call.cancelled:
                return


class HttpEventStream(WireCall):
    """Iterate over the events of one call on this thread; ``close()`` from another thread
    stops it.

    429/5xx are retried before any text, every failure is one ``StepAPIError``, and
    ``trace_id`` / ``completion_id`` are kept.
    """

    def __init__(self, settings: Settings, request: ChatRequest) -> None:
        super().__init__(settings, request)
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._http_client: Any = None
        self._socket: socket.socket | None = None

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
        body = self.body()
        http_client = self.client()
        with self._lock:
            self._http_client = http_client
        try:
            response = yield from self._open(http_client, body)
            if response is not None and not self._cancelled.is_set():
                yield from self._read(response)
        finally:
            http_client.close()

    def client(self) -> Any:
        """The HTTP client of this call (closed with it; ``close`` closes it early)."""
        timeout = self._settings.timeout  # every phase, so reads time out when idle that long
        return http().Client(timeout=timeout, **client_options())

    def _open(self, http_client: Any, body: dict[str, Any]) -> Generator[Event, None, Any]:
        """Send the request as ``Attempts`` says; return the open response (None when
        cancelled)."""
        attempts = Attempts(self, body)
        while not self._cancelled.is_set():
            response, failed = self.send(http_client, attempts.body)
            if response is None or failed is None:
                return response
            waiting = attempts.after(response, failed)
            if waiting is not None:
                yield waiting
                if self._cancelled.wait(waiting.delay):
                    return None
        return None

    def send(self, http_client: Any, body: dict[str, Any]) -> tuple[Any, Exception | None]:
        """One POST: the response (None when cancelled meanwhile), its trace id kept, and
        for an error status the SDK's status error (its body read up to ``MAX_ERROR_BYTES``)."""
        request = http_client.build_request(
            "POST",
            self.url(),
            json=body,
            headers=self.headers(),
            extensions={"trace": self._on_trace},
        )
        try:
            response = http_client.send(request, stream=True)
        except http().HTTPError as err:
            if self._cancelled.is_set():
                return None, None
            raise self.error(transport_error(err, request)) from None
        self.trace_id = response.headers.get("x-trace-id")
        return response, None if response.is_success else _status_error(response)

    def _read(self, response: Any) -> Iterator[Event]:
        kind = response.headers.get("content-type", "")
        try:
            if is_whole(kind):
                yield from self.read_whole(self.whole(read_whole(response), kind), response)
            else:
                reader = ReplyReader(self, response)
                for chunk in response.iter_bytes():
                    yield from reader.feed(chunk)
                    if reader.stopped or self._cancelled.is_set():
                        break
                yield from reader.end()
        except http().HTTPError as err:
            if self._cancelled.is_set():
                return
            raise self.error(transport_error(err, response.request)) from None
        except (json.JSONDecodeError, EventTooLarge) as err:  # (``_whole`` words its own)
            raise self.error(err) from None
        finally:
            response.close()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

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


def client_options() -> dict[str, Any]:
    """How every call's HTTP client is made, on a thread or a loop: the one TLS context,
    redirects followed as the openai SDK follows them (a proxy's 307 to a trailing slash;
    the key is not sent on to another host), and a User-Agent naming step-magic."""
    agent = {"User-Agent": _user_agent()}
    return {"verify": tls_context(), "follow_redirects": True, "headers": agent}


@functools.cache
def _user_agent() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"step-magic/{version('step-magic')}"
    except PackageNotFoundError:  # run from a source tree
        return "step-magic"


def mapping(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (servers send odd shapes)."""
    return value if isinstance(value, dict) else {}


MAX_ERROR_BYTES = 1_000_000  # of an error reply's body: its words are shown cut anyway


def _status_error(response: Any) -> Exception:
    """The SDK's status error for an HTTP error reply, with its JSON body if it has one
    (read up to ``MAX_ERROR_BYTES``: a 100 MB error page is not held)."""
    try:
        raw = read_capped(response, MAX_ERROR_BYTES)
    finally:
        response.close()
    return status_error(response, raw)


def read_capped(response: Any, limit: int) -> bytes:
    """A streamed reply's body, read until it ends or passes ``limit`` bytes (the rest is
    never read); what arrived before a dropped connection is kept."""
    raw = bytearray()
    try:
        for chunk in response.iter_bytes():
            raw += chunk
            if len(raw) > limit:
                break
    except http().HTTPError:
        pass
    return bytes(raw)


def status_error(response: Any, raw: bytes) -> Exception:
    """The SDK's status error for ``response``, whose body (or its first bytes) is ``raw``."""
    import openai

    return openai.APIStatusError("request failed", response=response, body=error_body(raw))


_MESSAGE_START = re.compile(r'"message"\s*:\s*"')
_STRING_PREFIX = re.compile(r'(?:[^"\\]|\\.)*')  # a JSON string's characters up to its end
_CUT_ESCAPE = re.compile(r"(?:^|[^\\])(?:\\\\)*(\\(?:u[0-9a-fA-F]{0,3})?)$")


def error_body(raw: bytes) -> object:
    """An error reply's body as the error shows it: its JSON; the start of its message when
    the body was cut at ``MAX_ERROR_BYTES`` (a cut JSON object does not parse); else its
    text (a proxy's plain-text error), or None when it is empty."""
    try:
        return json.loads(raw)
    except ValueError:
        pass
    text = raw.decode("utf-8", "replace")
    start = _MESSAGE_START.search(text) if text.lstrip().startswith("{") else None
    if start is not None and len(raw) > MAX_ERROR_BYTES:  # a JSON object cut at the cap
        piece = _STRING_PREFIX.match(text, start.end())
        words = piece.group() if piece else ""
        cut_escape = _CUT_ESCAPE.search(words)  # a backslash escape the cut split in two
        if cut_escape is not None:
            words = words[: cut_escape.start(1)]
        with contextlib.suppress(ValueError):  # (anything else odd: the characters as sent)
            words = json.loads(f'"{words}"', strict=False)  # (raw control characters too)
        cut = f" … (cut: the error body is over {MAX_ERROR_BYTES:,} bytes)"
        return {"error": {"message": words + cut}}
    return text.strip() or None


def transport_error(err: Exception, request: Any) -> Exception:
    """The SDK's timeout or connection error for a transport failure, caused by ``err``."""
    import openai

    if isinstance(err, http().TimeoutException):
        wrapped: Exception = openai.APITimeoutError(request)
    else:
        wrapped = openai.APIConnectionError(request=request)
    wrapped.__cause__ = err
    return wrapped


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed: nothing left to wake
        sock.shutdown(socket.SHUT_RDWR)
