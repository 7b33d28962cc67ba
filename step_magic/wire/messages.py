"""Stream a reply through StepFun's Messages API (``POST /v1/messages``) as the same typed events.

``--api messages`` is for accounts and proxies that speak the Anthropic-style API. It yields
exactly what ``wire.chatwire.ReplyStream`` yields, so the runner and the views cannot tell the two
apart. No anthropic SDK: ``httpstream.HttpEventStream`` sends the request (its body built by
``messages_body.py``) and reads the SSE; this module says what each event means, and what
the one JSON message of a server that ignored ``stream: true`` means.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from step_magic.core.events import AnswerDelta, Event, Finished, ReasoningDelta, Usage
from step_magic.core.text import clean_text
from step_magic.wire.asyncstream import AsyncHttpEventStream
from step_magic.wire.httpstream import HttpEventStream, ReplyState, WireCall, mapping
from step_magic.wire.messages_body import messages_body, messages_headers
from step_magic.wire.sse import ServerEvent
from step_magic.wire.toolcalls import ToolCallCollector

SCHEMA_IN_PROMPT = (
    "the Messages API has no structured-output field: the schema was asked for in the instructions"
)
# Anthropic's stop reasons in Chat Completions words; others (content_filter) pass unchanged.
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "refusal": "content_filter",
    "tool_use": "tool_calls",
}


class MessagesWire(WireCall):
    """What the Messages API sends and means, whichever driver carries the bytes."""

    path = "/messages"

    def body(self) -> dict[str, Any]:
        if self._request.schema is not None:
            self.notes.append(SCHEMA_IN_PROMPT)
        return messages_body(self._request)

    def headers(self) -> dict[str, str]:
        return messages_headers(self._settings.api_key)

    def start_reply(self) -> _Reply:
        return _Reply()

    def read_event(self, reply: _Reply, event: ServerEvent, response: Any) -> Iterator[Event]:
        """The text of one SSE event; unknown event and delta types are skipped; anything
        after ``message_stop`` is not ours to wait for."""
        if event.data.strip() == "[DONE]":  # an OpenAI-style end marker, from some proxies
            reply.stopped = True
            return
        payload = json.loads(event.data)
        if not isinstance(payload, dict):
            return
        kind = payload.get("type") if event.name == "message" else event.name
        if kind == "error" or (kind is None and "error" in payload):  # Anthropic or StepFun
            raise self.server_error(payload, response)
        if kind == "message_start":
            self._started(mapping(payload.get("message")), reply)
        elif kind in ("content_block_start", "content_block_delta"):
            block = mapping(payload.get("content_block") or payload.get("delta"))
            yield from _texts(block)
            reply.tool_piece(payload.get("index"), block)
            reply.thinking.feed(payload.get("index"), block)
        elif kind == "message_delta":
            reply.stop(mapping(payload.get("delta")).get("stop_reason"))
            reply.add_usage(payload.get("usage"))
            self.usage = reply.usage()
        elif kind == "message_stop":
            reply.stopped = True

    def end_reply(self, reply: _Reply) -> Iterator[Event]:
        yield self._finished(reply)

    def read_whole(self, reply: dict[str, Any], response: Any) -> Iterator[Event]:
        """One message object (a server that ignored ``stream: true``): its blocks read as
        the stream's ``content_block_start`` events would be."""
        if reply.get("type") == "error" or "error" in reply:
            raise self.server_error(reply, response)
        whole = _Reply()
        self._started(reply, whole)
        content = reply.get("content")
        for index, block in enumerate(content if isinstance(content, list) else ()):
            yield from _texts(mapping(block))
            whole.tool_piece(index, mapping(block))
            whole.thinking.feed(index, mapping(block))
        whole.stop(reply.get("stop_reason"))
        if not self.cancelled:
            yield self._finished(whole)

    def _finished(self, reply: _Reply) -> Finished:
        ids = (self.trace_id, self.completion_id)
        calls, thinking = reply.tools.calls(), reply.thinking.blocks()
        return Finished(reply.finish_reason, reply.usage(), *ids, calls, thinking)

    def _started(self, message: dict[str, Any], reply: _Reply) -> None:
        """The message's id and first usage (``message_start``, or the whole message)."""
        self.completion_id = message.get("id") or self.completion_id
        reply.add_usage(message.get("usage"))
        self.usage = reply.usage()


class MessagesStream(MessagesWire, HttpEventStream):
    """The events of one Messages API call on a thread; ``close()`` from another stops it."""


class AsyncMessagesStream(MessagesWire, AsyncHttpEventStream):
    """The events of one Messages API call on an event loop."""


@dataclass
class _Reply(ReplyState):
    """What the events said about the reply as a whole."""

    finish_reason: str | None = None
    counts: dict[str, int] | None = None
    tools: ToolCallCollector = field(default_factory=ToolCallCollector)
    thinking: KeptThinking = field(default_factory=lambda: KeptThinking())

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

    def stop(self, reason: Any) -> None:
        """The stop reason, in Chat Completions words; a missing one changes nothing."""
        if isinstance(reason, str) and reason:
            self.finish_reason = FINISH_REASONS.get(reason, reason)

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


class KeptThinking:
    """A turn's thinking blocks, assembled to go back unchanged in the next request of a
    tool loop, as Anthropic's protocol requires (the server checks the ``signature``).

    A thinking block is kept with its signature (``signature_delta`` pieces, or whole at
    its start), a ``redacted_thinking`` block with its opaque ``data``. A thinking block
    without a signature is not kept: there is nothing a server could check, and servers
    that sign nothing (the bundled one) are sent tool turns as before.
    """

    def __init__(self) -> None:
        self._blocks: dict[int, tuple[str, dict[str, list[str]]]] = {}

    def feed(self, index: Any, block: dict[str, Any]) -> None:
        """A block's start (``thinking``, ``redacted_thinking``) or a piece of it
        (``thinking_delta``, ``signature_delta``); other blocks are not ours."""
        kind = block.get("type")
        if kind in _KEPT_FIELDS:
            at = index if isinstance(index, int) else len(self._blocks)
            fields = {key: _piece(block.get(key)) for key in _KEPT_FIELDS[kind]}
            self._blocks[at] = (str(kind), fields)
        elif kind in _KEPT_DELTAS and self._blocks:
            at = index if isinstance(index, int) else max(self._blocks)
            if at in self._blocks:
                key = _KEPT_DELTAS[kind]
                self._blocks[at][1].setdefault(key, []).extend(_piece(block.get(key)))

    def blocks(self) -> tuple[dict[str, str], ...]:
        """The whole blocks in their order, as the API sent them."""
        whole = (
            {"type": kind, **{key: "".join(pieces) for key, pieces in fields.items()}}
            for _, (kind, fields) in sorted(self._blocks.items())
        )
        return tuple(block for block in whole if block.get("signature") or block.get("data"))


# What each kept block type holds, and which delta adds to which field.
_KEPT_FIELDS = {"thinking": ("thinking", "signature"), "redacted_thinking": ("data",)}
_KEPT_DELTAS = {"thinking_delta": "thinking", "signature_delta": "signature"}


def _piece(value: Any) -> list[str]:
    return [value] if isinstance(value, str) and value else []


def _texts(block: dict[str, Any]) -> Iterator[Event]:
    """Reasoning or answer text of a block start or delta (thinking, text and their deltas)."""
    kinds = (("thinking", ReasoningDelta), ("text", AnswerDelta))
    for key, kind in kinds:
        text = block.get(key)
        if block.get("type") in (key, f"{key}_delta") and isinstance(text, str) and text:
            yield kind(clean_text(text))
