"""A streamed reply over plain HTTP, for the wire APIs the openai SDK has no client for.

The Messages API and the Responses API are both sent with the HTTP library the openai SDK
already brings (httpx2, or httpx for older SDKs) and read as SSE by ``sse.py``; everything
about that is the same for both and lives here: opening the request, retrying 429/5xx before
any text (``wire.retry``), keeping the trace id, stopping from another thread (the socket is
shut down, so a read blocked on a silent server ends too), and wording every failure as the
chat path does by wrapping it in the openai SDK's exception types. A subclass says where the
request goes, with which headers and body, and what each server event means.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Generator, Iterator
from typing import Any

from step_magic.core.errors import StepAPIError
from step_magic.core.events import Event, Usage
from step_magic.core.request import ChatRequest
from step_magic.core.settings import Settings
from step_magic.wire.chat import http, is_whole, tls_context, whole_json
from step_magic.wire.retry import after_failure, call_error
from step_magic.wire.sse import EventTooLarge, ServerEvent, SSEDecoder


class HttpEventStream:
    """Iterate over the events of one call; ``close()`` from another thread stops it.

    Same contract as ``wire.chat.ReplyStream``: 429/5xx are retried before any text, every
    failure is one ``StepAPIError``, and ``trace_id`` / ``completion_id`` are kept.
    """

    path = ""

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

    def read(self, events: Iterator[ServerEvent], response: Any) -> Iterator[Event]:
        """The events of the reply, from the server's SSE events, ending with ``Finished``
        unless cancelled; raise ``StepAPIError`` (through ``error``) for an error event."""
        raise NotImplementedError

    def read_whole(self, reply: dict[str, Any], response: Any) -> Iterator[Event]:
        """The same events from one JSON reply (a server that ignored ``stream: true``)."""
        raise NotImplementedError

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
        timeout = self._settings.timeout  # every phase, so reads time out when idle that long
        http_client = http().Client(timeout=timeout, verify=tls_context())
        with self._lock:
            self._http_client = http_client
        try:
            response = yield from self._open(http_client, body)
            if response is not None and not self._cancelled.is_set():
                yield from self._read(response)
        finally:
            http_client.close()

    def _open(self, http_client: Any, body: dict[str, Any]) -> Generator[Event, None, Any]:
        """Send the request, retrying 429/5xx as ReplyStream does; return the open response.

        A refused optional field (``without_refused``) is sent again at once without it,
        once, outside the count of retries."""
        attempts = self._settings.max_retries + 1
        attempt, refusals = 1, 0
        while attempt <= attempts:
            if self._cancelled.is_set():
                return None
            response = self._send(http_client, body)
            if response is None or response.is_success:
                return response
            refusal = _status_error(response)
            instead = self._instead(response.status_code, refusal, body)
            if instead is not None and refusals == 0:
                body, refusals = instead, 1
                continue
            waiting = after_failure(refusal, attempt, attempts, self.error)
            yield waiting
            if self._cancelled.wait(waiting.delay):
                return None
            attempt += 1
        return None

    def _send(self, http_client: Any, body: dict[str, Any]) -> Any:
        """One POST; the response (None when cancelled meanwhile), its trace id kept."""
        url = self._settings.base_url.rstrip("/") + self.path
        request = http_client.build_request(
            "POST", url, json=body, headers=self.headers(), extensions={"trace": self._on_trace}
        )
        try:
            response = http_client.send(request, stream=True)
        except http().HTTPError as err:
            if self._cancelled.is_set():
                return None
            raise self.error(_transport_error(err, request)) from None
        self.trace_id = response.headers.get("x-trace-id")
        return response

    def _instead(self, status: int, refusal: Exception, body: dict[str, Any]) -> Any:
        if status not in (400, 422):
            return None
        return self.without_refused(body, str(getattr(refusal, "body", None) or refusal))

    def _read(self, response: Any) -> Iterator[Event]:
        kind = response.headers.get("content-type", "")
        try:
            if is_whole(kind):
                yield from self.read_whole(self._whole(response, kind), response)
            else:
                yield from self.read(self._until_cancelled(response), response)
        except http().HTTPError as err:
            if self._cancelled.is_set():
                return
            raise self.error(_transport_error(err, response.request)) from None
        except (json.JSONDecodeError, EventTooLarge) as err:  # (``_whole`` words its own)
            raise self.error(err) from None
        finally:
            response.close()

    def _whole(self, response: Any, kind: str) -> dict[str, Any]:
        """A reply that is not a stream of events: one JSON object, read as the chat path
        reads it (``chat.whole_json``); anything else is an error naming what came instead."""
        try:
            return whole_json(response, kind)
        except ValueError as err:
            raise self.error(err) from None

    def _until_cancelled(self, response: Any) -> Iterator[ServerEvent]:
        decoder = SSEDecoder()
        for chunk in response.iter_bytes():
            for event in decoder.feed(chunk):
                yield event
                if self._cancelled.is_set():
                    return
        yield from decoder.finish()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def server_error(self, payload: Any, response: Any) -> StepAPIError:
        """An error event's body as the same one line an HTTP error gets."""
        import openai

        return self.error(openai.APIError("error event", response.request, body=payload))

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

    def error(self, err: Exception, note: str = "") -> StepAPIError:
        """One clean line, worded as the chat path's are (``retry.call_error``)."""
        ids = {"trace_id": self.trace_id, "completion_id": self.completion_id}
        return call_error(err, self._settings, note, **ids)


def mapping(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (servers send odd shapes)."""
    return value if isinstance(value, dict) else {}


def _status_error(response: Any) -> Exception:
    """The SDK's status error for an HTTP error reply, with its JSON body if it has one."""
    import openai

    try:
        body: object = json.loads(response.read())
    except (ValueError, http().HTTPError):
        body = None
    finally:
        response.close()
    return openai.APIStatusError("request failed", response=response, body=body)


def _transport_error(err: Exception, request: Any) -> Exception:
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
