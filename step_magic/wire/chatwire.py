"""Chat Completions read from the raw event lines, on a thread and on an event loop.

``ChatWire`` says what a call sends and what each event means: the body (``chat.chat_body``),
the refusals remembered (``chat.without_refused``) and the reading of every chunk
(``chat.ChunkReader``), parsed with ``json`` rather than the SDK's models, a tenth of the CPU
per chunk. On a thread the openai SDK carries it (``ReplyStream``); on an event loop httpx's
``AsyncClient`` does (``AsyncChatStream``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from step_magic.core.events import Event
from step_magic.wire.asyncstream import AsyncHttpEventStream
from step_magic.wire.chat import (
    SCHEMA_REFUSED,
    ChunkReader,
    chat_body,
    completion_events,
    nonempty_str,
    tls_context,
    without_refused,
)
from step_magic.wire.httpstream import HttpEventStream, ReplyState, WireCall
from step_magic.wire.sse import ServerEvent


class ChatWire(WireCall):
    """What Chat Completions sends and means, read from raw SSE lines."""

    path = "/chat/completions"

    def body(self) -> dict[str, Any]:
        body = chat_body(self._settings, self._request)
        if self._request.schema is not None and "response_format" not in body:
            self._note(SCHEMA_REFUSED)
        return body

    def without_refused(self, body: dict[str, Any], said: str) -> dict[str, Any] | None:
        instead = without_refused(self._settings, self._request, body, said)
        if instead is not None and "response_format" in body and "response_format" not in instead:
            self._note(SCHEMA_REFUSED)
        return instead

    def start_reply(self) -> _Chunks:
        return _Chunks()

    def read_event(self, reply: _Chunks, event: ServerEvent, response: Any) -> Iterator[Event]:
        """A chunk's events, as the openai SDK reads the stream: ``[DONE]`` ends it, an
        ``error`` object (unnamed or named ``error``) fails it, other named events are not
        chunks."""
        if event.data.startswith("[DONE]"):
            reply.stopped = True
            return
        if event.name not in ("message", "error"):
            return
        payload = json.loads(event.data)
        if not isinstance(payload, dict):
            return
        if payload.get("error"):
            raise self.server_error(payload, response)
        yield from reply.chunks.feed(payload)
        self.completion_id = reply.chunks.completion_id or self.completion_id
        self.usage = reply.chunks.usage or self.usage

    def end_reply(self, reply: _Chunks) -> Iterator[Event]:
        yield from reply.chunks.end(self.trace_id, self.completion_id)

    def read_whole(self, reply: dict[str, Any], response: Any) -> Iterator[Event]:
        self.completion_id = nonempty_str(reply.get("id")) or self.completion_id
        try:
            yield from completion_events(reply, self.trace_id, self.completion_id)
        except ValueError as err:
            raise self.error(err) from None

    def _note(self, note: str) -> None:
        if note not in self.notes:
            self.notes.append(note)


@dataclass
class _Chunks(ReplyState):
    chunks: ChunkReader = field(default_factory=ChunkReader)


class ReplyStream(ChatWire, HttpEventStream):
    """The events of one Chat Completions call on a thread; ``close()`` from another stops it.

    The openai SDK carries the request (its client, headers, status errors), in its
    streaming-response mode: the body comes back as raw bytes, read here as the event loop's
    driver reads them. Its models are not built for every chunk (a tenth of the CPU), and
    its SSE decoder, which has no limit on a line and fails a reply on one bad byte, is not
    used: ``sse.SSEDecoder`` bounds an event and replaces invalid UTF-8.
    """

    def client(self) -> Any:
        import openai

        return openai.OpenAI(
            api_key=self._settings.api_key,
            base_url=self._settings.base_url,
            timeout=self._settings.timeout,
            max_retries=0,
            http_client=openai.DefaultHttpxClient(
                verify=tls_context(), event_hooks={"request": [self._traced]}
            ),
        )

    def send(self, http_client: Any, body: dict[str, Any]) -> tuple[Any, Exception | None]:
        import openai

        try:
            streaming = http_client.chat.completions.with_streaming_response.create(**body)
            response = streaming.__enter__().http_response  # closed by the reader
        except openai.APIStatusError as err:
            self.trace_id = err.response.headers.get("x-trace-id")
            return err.response, err
        except openai.APIError as err:
            if self.cancelled:
                return None, None
            raise self.error(err) from None
        self.trace_id = response.headers.get("x-trace-id")
        return response, None

    def _traced(self, request: Any) -> None:
        """Keep this call's socket (``HttpEventStream._on_trace``), so ``close`` can shut
        down a read blocked on a silent server."""
        request.extensions["trace"] = self._on_trace


class AsyncChatStream(ChatWire, AsyncHttpEventStream):
    """The events of one Chat Completions call on an event loop."""
