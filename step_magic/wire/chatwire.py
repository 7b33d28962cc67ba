"""Chat Completions read from the raw event lines, on a thread and on an event loop.

``ChatWire`` says what a call sends and what each event means: the body (``chat.chat_body``),
the refusals remembered (``chat.without_refused``) and the reading of every chunk
(``chat.ChunkReader``), parsed with ``json`` rather than the SDK's models, a tenth of the CPU
per chunk. It travels as every wire API does: on a thread (``ReplyStream``, the driver
``httpstream.HttpEventStream``) or on an event loop (``AsyncChatStream``), sent by the HTTP
library the openai SDK brings. The SDK's own client is not used: it read an error body whole
(a 100 MB error page was held), and its SSE decoder has no limit on a line.
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
    """The events of one Chat Completions call on a thread; ``close()`` from another stops it."""


class AsyncChatStream(ChatWire, AsyncHttpEventStream):
    """The events of one Chat Completions call on an event loop."""
