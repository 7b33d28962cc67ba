"""Raw observations of what a server does on the wire, for ``step-magic doctor``.

The client proper (``chat.py``, ``messages.py``) tolerates every shape it meets and so hides
the differences; the doctor must see them: which field carries the reasoning, whether usage
comes on every chunk or once at the end, which finish reasons and which id header arrive.
So these calls go over the SDK's own HTTP library (httpx2, or httpx for older SDKs) and
read the raw SSE, with the request bodies the client sends.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from step_magic.core.events import Usage
from step_magic.core.text import excerpt, read_json
from step_magic.wire.httpstream import MAX_ERROR_BYTES, error_body, read_capped
from step_magic.wire.retry import server_message
from step_magic.wire.sse import MAX_EVENT_CHARS, SSEDecoder

TRACE_HEADERS = ("x-trace-id", "trace-id", "x-request-id", "request-id")


@dataclass
class Observed:
    """What one call did, as seen on the wire."""

    status: int = 0
    content_type: str = ""
    seconds: float = 0.0
    trace_header: str | None = None  # the header that carried an id, if any
    reasoning_fields: set[str] = field(default_factory=set)  # reasoning, reasoning_content…
    reasoning_chars: int = 0
    answer_chars: int = 0
    chunks: int = 0
    usage_chunks: int = 0  # how many chunks carried a usage object
    usage: Usage | None = None  # the last one seen
    finish_reasons: list[Any] = field(default_factory=list)  # each chunk's, in order
    tool_calls: dict[int, dict[str, str]] = field(default_factory=dict)  # index → name, args
    error: str | None = None  # the server's error message


Reader = Callable[[dict[str, Any], "Observed"], None]


def observe(
    url: str, headers: dict[str, str], body: dict[str, Any], read: Reader, *, timeout: float
) -> Observed:
    """POST ``body`` to ``url`` and record what came back, streamed (each event through
    ``read``, the wire API's reader in ``wire.apis``) or not."""
    from step_magic.wire.chat import http

    seen = Observed()
    started = time.monotonic()
    with (
        http().Client(timeout=timeout) as client,
        client.stream("POST", url, json=body, headers=headers) as response,
    ):
        seen.status = response.status_code
        seen.content_type = response.headers.get("content-type", "")
        seen.trace_header = next((h for h in TRACE_HEADERS if response.headers.get(h)), None)
        if "text/event-stream" in seen.content_type:
            _read_stream(response.iter_bytes(), seen, read)
        else:
            limit = MAX_ERROR_BYTES if seen.status >= 400 else MAX_EVENT_CHARS
            _read_whole(read_capped(response, limit), seen)
    seen.seconds = time.monotonic() - started
    return seen


def _read_stream(pieces: Any, seen: Observed, read: Reader) -> None:
    decoder = SSEDecoder()
    for piece in pieces:
        for event in decoder.feed(piece):
            if event.data.strip() == "[DONE]":
                return
            read(_json(event.data), seen)
    for event in decoder.finish():
        if event.data.strip() != "[DONE]":
            read(_json(event.data), seen)


def _read_whole(raw: bytes, seen: Observed) -> None:
    """A non-streamed body: a completion, or an error (read as a call reads one: a body cut
    at its cap still gives the start of its message)."""
    if seen.status >= 400:
        body = error_body(raw)
        seen.error = excerpt(server_message(body) or raw.decode("utf-8", "replace")[:200])
        return
    data = _json(raw.decode("utf-8", "replace"))
    if "error" in data:  # a 200 that holds an error (an error status returned above)
        seen.error = _error_message(data) or raw.decode("utf-8", "replace")[:200]
        return
    choice = (data.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    seen.answer_chars = len(message.get("content") or "")
    seen.reasoning_chars = len(message.get("reasoning") or message.get("reasoning_content") or "")
    seen.finish_reasons.append(choice.get("finish_reason"))
    seen.usage = _usage(data.get("usage"))


def read_chat_chunk(chunk: dict[str, Any], seen: Observed) -> None:
    seen.chunks += 1
    if "error" in chunk:
        seen.error = _error_message(chunk)
    if chunk.get("usage"):
        seen.usage_chunks += 1
        seen.usage = _usage(chunk["usage"]) or seen.usage
    choices = chunk.get("choices") or []
    if not choices:
        return
    choice, delta = choices[0], choices[0].get("delta") or {}
    seen.finish_reasons.append(choice.get("finish_reason"))
    for name in ("reasoning", "reasoning_content"):
        if delta.get(name):
            seen.reasoning_fields.add(name)
            seen.reasoning_chars += len(delta[name])
    if isinstance(delta.get("content"), list) or delta.get("reasoning_details"):
        _read_other_shapes(delta, seen)
    else:
        content = delta.get("content") or ""
        if "<think>" in content or "</think>" in content:
            seen.reasoning_fields.add("<think> tags in content")
        seen.answer_chars += len(content)
    for call in delta.get("tool_calls") or []:
        slot = seen.tool_calls.setdefault(call.get("index", 0), {"name": "", "arguments": ""})
        function = call.get("function") or {}
        slot["name"] += function.get("name") or ""
        slot["arguments"] += function.get("arguments") or ""


def _read_other_shapes(delta: dict[str, Any], seen: Observed) -> None:
    """OpenRouter's ``reasoning_details`` alone, or Mistral's typed content list: counted as
    the stream reads them, and named so the report says where the reasoning came."""
    from step_magic.wire.chat import delta_texts

    reasoning, answer = delta_texts(delta)
    named = delta.get("reasoning") or delta.get("reasoning_content")
    if delta.get("reasoning_details") and not named:  # else counted under its own name
        seen.reasoning_fields.add("reasoning_details")
        seen.reasoning_chars += len(reasoning)
    elif isinstance(delta.get("content"), list) and not named:
        seen.reasoning_fields.add("typed content parts")
        seen.reasoning_chars += len(reasoning)
    seen.answer_chars += len(answer)


def read_messages_event(event: dict[str, Any], seen: Observed) -> None:
    seen.chunks += 1
    kind = event.get("type")
    if kind == "error":
        seen.error = _error_message(event)
    usage = event.get("usage") or (event.get("message") or {}).get("usage")
    if usage:
        seen.usage_chunks += 1
        prompt = usage.get("input_tokens") or (seen.usage.prompt if seen.usage else 0)
        completion = usage.get("output_tokens") or 0
        seen.usage = Usage(prompt, completion, prompt + completion)
    delta = event.get("delta") or {}
    if kind == "message_delta":
        seen.finish_reasons.append(delta.get("stop_reason"))
    if delta.get("type") == "thinking_delta":
        seen.reasoning_fields.add("thinking blocks")
        seen.reasoning_chars += len(delta.get("thinking") or "")
    elif delta.get("type") == "text_delta":
        seen.answer_chars += len(delta.get("text") or "")


def read_responses_event(event: dict[str, Any], seen: Observed) -> None:
    seen.chunks += 1
    kind = event.get("type")
    given = event.get("response")
    response: dict[str, Any] = given if isinstance(given, dict) else {}
    if kind in ("error", "response.failed"):
        seen.error = _error_message(response if response.get("error") else event)
    usage = response.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("input_tokens"), int):
        seen.usage_chunks += 1
        prompt, completion = usage["input_tokens"], usage.get("output_tokens") or 0
        seen.usage = Usage(prompt, completion, prompt + completion)
    if kind in ("response.completed", "response.incomplete"):
        reason = (response.get("incomplete_details") or {}).get("reason")
        seen.finish_reasons.append(reason or response.get("status"))
    piece = event.get("delta")
    delta = piece if isinstance(piece, str) else ""
    if kind in ("response.reasoning_text.delta", "response.reasoning_summary_text.delta"):
        seen.reasoning_fields.add(kind.removeprefix("response.").removesuffix(".delta"))
        seen.reasoning_chars += len(delta)
    elif kind == "response.output_text.delta":
        seen.answer_chars += len(delta)


def _json(text: str) -> dict[str, Any]:
    try:
        data = read_json(text)
    except ValueError:
        return {"error": {"message": f"not JSON: {text[:80]!r}"}}
    return data if isinstance(data, dict) else {"error": {"message": f"not an object: {data!r}"}}


def _error_message(data: dict[str, Any]) -> str | None:
    """The body's ``error.message`` as the client reads it, else whatever the error was."""
    inner = data.get("error", data)
    return server_message(data) or (str(inner) if inner else None)


def _usage(data: Any) -> Usage | None:
    if not isinstance(data, dict):
        return None
    numbers = [data.get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens")]
    counts = [n for n in numbers if isinstance(n, int)]
    return Usage(*counts) if len(counts) == 3 else None
