"""Stream a reply through StepFun's Responses API (``POST /v1/responses``) as the same events.

``--api responses`` yields exactly what the other APIs yield. The stream is OpenAI's: typed
events, each with an ``event:`` line and a ``type`` in its data. Reasoning arrives as raw
``response.reasoning_text.delta`` (open-weight models, StepFun) or as
``response.reasoning_summary_text.delta`` (summaries); both are read, and once raw text has
arrived the summaries of the same reply are not shown twice. The answer is
``response.output_text.delta``; function calls are ``function_call`` output items whose
arguments stream as ``response.function_call_arguments.delta``. The reply ends with
``response.completed``, ``response.incomplete`` (cut at the token limit or filtered: shown as
truncated or filtered) or ``response.failed``; the id and the usage come with it.
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
from step_magic.wire.responses_body import responses_body, schema_in_instructions
from step_magic.wire.sse import ServerEvent
from step_magic.wire.toolcalls import ToolCallCollector

# ``incomplete_details.reason`` in Chat Completions words
INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}
SCHEMA_REFUSED = (
    "the server refused text.format (structured output): the schema was asked for in the "
    "instructions instead"
)
ENDS = frozenset({"response.completed", "response.incomplete", "response.failed"})


class ResponsesWire(WireCall):
    """What the Responses API sends and means, whichever driver carries the bytes."""

    path = "/responses"

    def body(self) -> dict[str, Any]:
        return responses_body(self._request)

    def without_refused(self, body: dict[str, Any], said: str) -> dict[str, Any] | None:
        """A server that refuses ``text.format`` is asked once more with the schema in the
        instructions."""
        if "text" not in body or not any(
            word in said for word in ("text.format", "json_schema", "'text'", '"text"')
        ):
            return None
        self.notes.append(SCHEMA_REFUSED)
        return schema_in_instructions(body, self._request)

    def start_reply(self) -> _Reply:
        return _Reply()

    def read_event(self, reply: _Reply, event: ServerEvent, response: Any) -> Iterator[Event]:
        if event.data.strip() == "[DONE]":  # not OpenAI's, but some proxies add it
            reply.stopped = True
            return
        payload = json.loads(event.data)
        if not isinstance(payload, dict):
            return
        kind = payload.get("type") or event.name
        if kind == "error" or kind == "response.failed":
            inner = mapping(payload.get("response")).get("error") or payload.get("error")
            raise self.server_error({"error": inner or payload}, response)
        yield from reply.take(kind, payload)
        self.completion_id = reply.id or self.completion_id
        self.usage = reply.usage or self.usage
        reply.stopped = kind in ENDS

    def end_reply(self, reply: _Reply) -> Iterator[Event]:
        ids = (self.trace_id, self.completion_id)
        yield Finished(reply.finish_reason(), reply.usage, *ids, reply.tools.calls())

    def read_whole(self, reply: dict[str, Any], response: Any) -> Iterator[Event]:
        """One response object (a server that ignored ``stream: true``): its output items
        read as the stream's finished items and texts would be."""
        if reply.get("status") == "failed" or reply.get("error"):
            raise self.server_error({"error": reply.get("error") or reply}, response)
        whole = _Reply()
        yield from whole.take_output(reply.get("output"))
        whole.take_response(reply)
        self.completion_id = whole.id or self.completion_id
        self.usage = whole.usage
        if not self.cancelled:
            ids = (self.trace_id, self.completion_id)
            yield Finished(whole.finish_reason(), whole.usage, *ids, whole.tools.calls())


class ResponsesStream(ResponsesWire, HttpEventStream):
    """The events of one Responses API call on a thread; ``close()`` from another stops it."""


class AsyncResponsesStream(ResponsesWire, AsyncHttpEventStream):
    """The events of one Responses API call on an event loop."""


@dataclass
class _Reply(ReplyState):
    """What the events said so far."""

    id: str | None = None
    usage: Usage | None = None
    status: str | None = None
    incomplete: str | None = None
    raw_reasoning: bool = False
    tools: ToolCallCollector = field(default_factory=ToolCallCollector)
    streamed_arguments: set[int] = field(default_factory=set)

    def take(self, kind: str, payload: dict[str, Any]) -> Iterator[Event]:
        text = payload.get("delta")
        if kind == "response.reasoning_text.delta" and isinstance(text, str):
            self.raw_reasoning = True
            yield ReasoningDelta(clean_text(text))
        elif kind == "response.reasoning_summary_text.delta" and isinstance(text, str):
            if not self.raw_reasoning:
                yield ReasoningDelta(clean_text(text))
        elif kind == "response.output_text.delta" and isinstance(text, str):
            yield AnswerDelta(clean_text(text))
        elif kind in ("response.output_item.added", "response.output_item.done"):
            self._item(payload, done=kind.endswith("done"))
        elif kind == "response.function_call_arguments.delta" and isinstance(text, str):
            index = payload.get("output_index")
            self.streamed_arguments.add(index if isinstance(index, int) else -1)
            self.tools.feed([{"index": index, "function": {"arguments": text}}])
        self.take_response(mapping(payload.get("response")))

    def take_output(self, output: Any) -> Iterator[Event]:
        """The texts and calls of a whole response's ``output`` items: raw reasoning (or its
        summary when there is none), the answer's ``output_text`` parts, function calls."""
        items = [mapping(item) for item in (output if isinstance(output, list) else ())]
        raw = [_parts(item.get("content"), "reasoning_text") for item in items]
        for index, item in enumerate(items):
            kind = item.get("type")
            if kind == "reasoning":
                text = raw[index] if any(raw) else _parts(item.get("summary"), "summary_text")
                if text:
                    yield ReasoningDelta(clean_text(text))
            elif kind == "message":
                text = _parts(item.get("content"), "output_text")
                if text:
                    yield AnswerDelta(clean_text(text))
            elif kind == "function_call":
                self._item({"item": item, "output_index": index}, done=True)

    def _item(self, payload: dict[str, Any], *, done: bool) -> None:
        """A function call's name and id when its item opens; its whole arguments when it
        closes, if none were streamed."""
        item, index = mapping(payload.get("item")), payload.get("output_index")
        if item.get("type") != "function_call":
            return
        arguments = item.get("arguments") if done else ""
        if done and (index in self.streamed_arguments or not isinstance(arguments, str)):
            arguments = ""
        function = {"name": item.get("name"), "arguments": arguments or ""}
        self.tools.feed([{"index": index, "id": item.get("call_id"), "function": function}])

    def take_response(self, response: dict[str, Any]) -> None:
        """The id, status, ending and usage of a response object (also in stream events)."""
        if not response:
            return
        self.id = response.get("id") or self.id
        self.status = response.get("status") or self.status
        reason = mapping(response.get("incomplete_details")).get("reason")
        self.incomplete = reason if isinstance(reason, str) else self.incomplete
        self.usage = _usage(response.get("usage")) or self.usage

    def finish_reason(self) -> str | None:
        """The ending in Chat Completions words; None when the stream stopped without one."""
        if self.status == "incomplete":
            return INCOMPLETE.get(self.incomplete or "", self.incomplete or "length")
        if self.status != "completed":
            return None
        return "tool_calls" if self.tools.calls() else "stop"


def _parts(content: Any, kind: str) -> str:
    """The joined ``text`` of the parts of type ``kind`` in an output item's part list."""
    parts = [mapping(part) for part in (content if isinstance(content, list) else ())]
    texts = [part.get("text") for part in parts if part.get("type") == kind]
    return "".join(text for text in texts if isinstance(text, str))


def _usage(raw: Any) -> Usage | None:
    usage = mapping(raw)
    prompt, completion = usage.get("input_tokens"), usage.get("output_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    cached = mapping(usage.get("input_tokens_details")).get("cached_tokens")
    total = usage.get("total_tokens")
    total = total if isinstance(total, int) else prompt + completion
    return Usage(prompt, completion, total, cached if isinstance(cached, int) and cached else None)
