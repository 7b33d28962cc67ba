"""Turn a streamed Chat Completions reply into typed events; the UI never sees SSE or JSON.

Here we read StepFun's extra fields (``reasoning``, or ``reasoning_content``, or ``<think>``
inline) and other servers' shapes of the same thing (OpenRouter's ``reasoning_details``,
Mistral's typed ``content`` lists, one JSON completion for a streamed request), from the
SDK's objects or plain JSON alike (``ChunkReader``). ``wire.chatwire`` sends the request and
reads the raw events into this; the retry policy and the one-line wording of every failure
live in ``wire.retry``, the events in ``events.py``.
"""

from __future__ import annotations

import functools
import importlib
import json
import ssl
from collections.abc import Iterator
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from step_magic.core.events import AnswerDelta, Event, Finished, ReasoningDelta, Rethought, Usage
from step_magic.core.request import ChatRequest
from step_magic.core.settings import Settings, is_stepfun_host
from step_magic.core.text import clean_text
from step_magic.wire import sse
from step_magic.wire.sse import EventTooLarge
from step_magic.wire.thinktags import ThinkTagSplitter
from step_magic.wire.toolcalls import ToolCallCollector

# Base URLs whose server answered 400 to stream_options: asked without it from then on.
REFUSED_USAGE_OPTION: set[str] = set()
# Base URLs whose server refused response_format: the schema goes in the instructions there.
REFUSED_SCHEMA: set[str] = set()
SCHEMA_REFUSED = (
    "the server refused response_format (structured output): the schema was asked for in "
    "the instructions instead"
)


class ChunkReader:
    """The chunks of one streamed completion (plain JSON, one per event) into events, I/O
    apart: both drivers of ``wire.chatwire`` feed it, so a thread and a loop read alike."""

    def __init__(self) -> None:
        self._splitter = ThinkTagSplitter()
        self._tool_calls = ToolCallCollector()
        self._details = DetailCollector()
        self.finish_reason: str | None = None
        self.completion_id: str | None = None
        self.usage: Usage | None = None  # the latest seen
        self._raw_usage: object = None

    def feed(self, chunk: Any) -> Iterator[Event]:
        """The text of one chunk; its id, usage, finish reason and tool-call pieces kept.

        Paid for every chunk of every reply, so written for the common case: a usage object
        is read again only when it changed (StepFun sends one on every chunk)."""
        if not isinstance(chunk, dict):
            return
        self.completion_id = nonempty_str(chunk.get("id")) or self.completion_id
        usage = chunk.get("usage")
        if usage is not None and usage != self._raw_usage:
            self._raw_usage = usage
            self.usage = _usage(usage) or self.usage
        for choice in _listed(chunk.get("choices")):
            if not isinstance(choice, dict):
                continue
            self.finish_reason = nonempty_str(choice.get("finish_reason")) or self.finish_reason
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            if delta.get("tool_calls"):
                self._tool_calls.feed(_listed(delta["tool_calls"]))
            if delta.get("reasoning_details"):
                self._details.feed(_listed(delta["reasoning_details"]))
            yield from _deltas(delta, self._splitter)

    def end(self, trace_id: str | None, completion_id: str | None) -> Iterator[Event]:
        """What the think-tag splitter held back, then ``Finished``."""
        yield from _held_back(self._splitter)
        calls, details = self._tool_calls.calls(), self._details.kept()
        ids = (trace_id, completion_id or self.completion_id)
        yield Finished(self.finish_reason, self.usage, *ids, calls, reasoning_details=details)


def completion_events(
    reply: dict[str, Any], trace_id: str | None, completion_id: str | None
) -> Iterator[Event]:
    """The events of one whole JSON completion (a server that ignored ``stream: true``);
    ValueError when it is not a completion."""
    if not isinstance(reply.get("choices"), list):
        raise ValueError("unreadable reply from the server (not a completion)")
    splitter, tool_calls = ThinkTagSplitter(), ToolCallCollector()
    choice = reply["choices"][0] if reply["choices"] else {}
    message = _field(choice, "message")
    tool_calls.feed(_listed(_field(message, "tool_calls")))
    yield from _deltas(message, splitter)
    yield from _held_back(splitter)
    reason = nonempty_str(_field(choice, "finish_reason"))
    kept = DetailCollector()
    kept.feed(_listed(_field(message, "reasoning_details")))
    calls = tool_calls.calls()
    usage = _usage(reply.get("usage"))
    yield Finished(reason, usage, trace_id, completion_id, calls, reasoning_details=kept.kept())


def chat_body(settings: Settings, request: ChatRequest) -> dict[str, Any]:
    """The Chat Completions body as sent: the request, plus ``stream_options.include_usage``
    for servers with OpenAI's semantics (vLLM, Ollama, litellm, OpenAI), which otherwise never
    send the usage. StepFun sends it on every chunk, and documents no ``stream_options``: its
    own endpoints are not asked."""
    body = request.body()
    host = urlsplit(settings.base_url).hostname or ""
    if not is_stepfun_host(host) and settings.base_url not in REFUSED_USAGE_OPTION:
        body["stream_options"] = {"include_usage": True}
    if settings.base_url in REFUSED_SCHEMA:
        body = schema_in_prompt(body, request)
    return body


def without_refused(
    settings: Settings, request: ChatRequest, body: dict[str, Any], said: str
) -> dict[str, Any] | None:
    """The body to send instead after a 400 or 422 that says ``said``: without
    ``stream_options`` or ``response_format`` when the server named it, and never again with
    it (remembered per base URL; the schema then goes in the instructions); None when the
    refusal is of something else."""
    if "stream_options" in body and "stream_options" in said:
        REFUSED_USAGE_OPTION.add(settings.base_url)
        return {key: value for key, value in body.items() if key != "stream_options"}
    if "response_format" in body and "response_format" in said:
        REFUSED_SCHEMA.add(settings.base_url)
        return schema_in_prompt(body, request)
    return None


def schema_in_prompt(body: dict[str, Any], request: ChatRequest) -> dict[str, Any]:
    """``body`` without ``response_format``, the schema asked for in the system message."""
    bare = {key: value for key, value in body.items() if key != "response_format"}
    if request.schema is None:
        return bare
    instruction = request.schema.instruction()
    messages = list(bare.get("messages", ()))
    first = messages[0] if messages else {}
    if first.get("role") == "system" and isinstance(first.get("content"), str):
        messages[0] = {**first, "content": f"{first['content']}\n\n{instruction}"}
    else:
        messages.insert(0, {"role": "system", "content": instruction})
    return bare | {"messages": messages}


def http() -> ModuleType:
    """The openai SDK's HTTP library: httpx2 for current SDKs, httpx for older ones."""
    try:
        return importlib.import_module("httpx2")
    except ImportError:
        return importlib.import_module("httpx")


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS context for every call: loading the CA bundle costs ~25 ms each time.

    The client itself stays per call, so ``close()`` can cut exactly this call's connection
    (map rows on the rows' loop excepted: they share one, ``asyncstream.shared_connections``).
    """
    try:
        import certifi
    except ImportError:  # the SDK's HTTP library normally brings it
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


def _deltas(delta: Any, splitter: ThinkTagSplitter) -> Iterator[Event]:
    """Reasoning and answer text of one delta (or a whole reply's message), tolerating odd
    shapes (None, missing fields, plain dicts)."""
    if delta is None:
        return
    reasoning = _reasoning(delta)
    if reasoning:
        yield ReasoningDelta(clean_text(reasoning))
    content = _field(delta, "content")
    if isinstance(content, list):
        yield from _content_parts(content, splitter)
    elif isinstance(content, str) and content:
        yield from _answer(content, splitter)


def _reasoning(delta: Any) -> str:
    """The reasoning of a delta: ``reasoning`` or ``reasoning_content`` when either has text,
    else the readable entries of OpenRouter's ``reasoning_details``. OpenRouter sends the
    same text in ``reasoning`` and in ``reasoning_details``: it is read once."""
    for name in ("reasoning", "reasoning_content"):
        text = _field(delta, name)
        if isinstance(text, str) and text:
            return text
    return "".join(_detail_text(detail) for detail in _listed(_field(delta, "reasoning_details")))


# OpenRouter's reasoning_details entry types that hold readable text, and its field.
_DETAIL_TEXT = {"reasoning.text": "text", "reasoning.summary": "summary"}


def _detail_text(detail: Any) -> str:
    """A ``reasoning_details`` entry's text; ``reasoning.encrypted`` holds opaque ``data``,
    never shown, and unknown types are skipped."""
    if not isinstance(detail, dict):
        return ""
    key = _DETAIL_TEXT.get(str(detail.get("type")))
    text = detail.get(key) if key else None
    return text if isinstance(text, str) else ""


def delta_texts(delta: Any) -> tuple[str, str]:
    """The reasoning and answer text one delta carries, read as a call reads them (for
    ``step-magic doctor``, which names the field the reasoning came in)."""
    reasoning = answer = ""
    for event in _deltas(delta, ThinkTagSplitter()):
        if isinstance(event, ReasoningDelta):
            reasoning += event.text
        elif isinstance(event, AnswerDelta):
            answer += event.text
    return reasoning, answer


def _content_parts(parts: list[Any], splitter: ThinkTagSplitter) -> Iterator[Event]:
    """Typed content (Mistral's reasoning models): ``thinking`` parts are reasoning, ``text``
    parts the answer, in the order they came; other part types are skipped."""
    for part in parts:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "thinking":
            thought = _thinking_text(part.get("thinking"))
            if thought:
                yield ReasoningDelta(clean_text(thought))
        elif part.get("type") == "text" and isinstance(part.get("text"), str):
            yield from _answer(part["text"], splitter)


def _thinking_text(thinking: Any) -> str:
    """A ``thinking`` part's text: a list of text parts (Mistral), or a plain string."""
    if isinstance(thinking, str):
        return thinking
    return "".join(
        part["text"]
        for part in _listed(thinking)
        if isinstance(part, dict)
        and part.get("type") == "text"
        and isinstance(part.get("text"), str)
    )


def _answer(content: str, splitter: ThinkTagSplitter) -> Iterator[Event]:
    """Answer text, with inline ``<think>`` reasoning split off."""
    if not content:
        return
    think, answer = splitter.feed(clean_text(content))
    if splitter.rethought:
        splitter.rethought = False
        yield Rethought()
    if think:
        yield ReasoningDelta(think)
    if answer:
        yield AnswerDelta(answer)


def _field(obj: Any, name: str) -> Any:
    """A field of a JSON object; None if absent or if ``obj`` is not an object (servers send
    odd shapes)."""
    return obj.get(name) if isinstance(obj, dict) else None


def _listed(value: Any) -> list[Any]:
    """``value`` if it is a list, else an empty one (servers send odd shapes)."""
    return value if isinstance(value, list) else []


def nonempty_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class DetailCollector:
    """OpenRouter's ``reasoning_details`` entries as a whole reply's message holds them: a
    stream sends each entry in pieces (same ``index``), whose text, summary, encrypted data
    and signature are joined; the other fields (``id``, ``format``, ``type``) are kept."""

    JOINED = ("text", "summary", "data", "signature")
    MAX_ENTRIES = 256

    def __init__(self) -> None:
        self._entries: dict[object, dict[str, Any]] = {}

    def feed(self, pieces: list[Any]) -> None:
        for piece in pieces:
            if not isinstance(piece, dict):
                continue
            key = piece.get("index", len(self._entries))
            entry = self._entries.get(key)
            if entry is None:
                if len(self._entries) >= self.MAX_ENTRIES:
                    continue
                entry = self._entries[key] = {}
            for name, value in piece.items():
                if name in self.JOINED and isinstance(value, str):
                    entry[name] = entry.get(name, "") + value
                elif value is not None:
                    entry[name] = value

    def kept(self) -> tuple[dict[str, Any], ...]:
        return tuple(self._entries.values())


def is_whole(kind: str) -> bool:
    """A reply to a streamed request that is not a stream: JSON (a server that ignored
    ``stream: true``) or a page (a proxy's HTML sign-in). Anything else is read as events,
    as the SDKs do: some servers label their event stream ``text/plain``."""
    what = kind.split(";")[0].strip().lower()
    return "json" in what or what in ("text/html", "application/xhtml+xml", "text/xml")


def parse_whole(body: bytes, kind: str) -> dict[str, Any]:
    """The one JSON object a whole reply's body holds (every wire API reads it here, on a
    thread or a loop); a ValueError in one line when it is a page, not JSON, or not an
    object."""
    if "json" not in kind:
        raise not_events(kind)
    try:
        reply = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        raise ValueError("unreadable reply from the server (not JSON)") from None
    if not isinstance(reply, dict):
        raise ValueError("unreadable reply from the server (not a JSON object)")
    return reply


def not_events(kind: str) -> ValueError:
    """The error for a reply that is neither events nor JSON (a proxy's HTML sign-in page)."""
    what = kind.split(";")[0].strip()
    return ValueError(
        f"the server answered with {what}, not a stream of events: is --base-url an API endpoint?"
    )


def read_whole(response: Any) -> bytes:
    """A whole (non-streamed) reply body, held to the cap of one event: a reply is one JSON
    object, so a body over ``sse.MAX_EVENT_CHARS`` bytes is refused, not kept in memory."""
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        check_whole(body)
    return bytes(body)


def check_whole(body: bytearray) -> None:
    """EventTooLarge once a whole reply's body passes the cap of one event."""
    if len(body) > sse.MAX_EVENT_CHARS:
        raise EventTooLarge(
            f"the reply from the server is over {sse.MAX_EVENT_CHARS:,} bytes; it was stopped there"
        )


def _held_back(splitter: ThinkTagSplitter) -> Iterator[Event]:
    """What the think-tag splitter still held when the reply ended."""
    reasoning, answer = splitter.finish()
    if reasoning:
        yield ReasoningDelta(reasoning)
    if answer:
        yield AnswerDelta(answer)


def _usage(raw: Any) -> Usage | None:
    """Chat usage from an SDK object or a plain JSON object."""
    if raw is None:
        return None
    details = _field(raw, "prompt_tokens_details")
    cached = _field(raw, "cached_tokens") or _field(details, "cached_tokens")
    prompt = _count(_field(raw, "prompt_tokens"))
    completion = _count(_field(raw, "completion_tokens"))
    total = _count(_field(raw, "total_tokens")) or prompt + completion
    return Usage(prompt, completion, total, _count(cached) or None)


def _count(value: Any) -> int:
    """A token count; anything that is not a number counts as 0 (a JSON reply is not
    checked by the SDK's models)."""
    try:
        return int(value or 0)
    except (TypeError, ValueError, OverflowError):
        return 0
