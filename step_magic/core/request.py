"""The request sent to Chat Completions, built from settings, prompt text and attachments.

A request is plain data: the client sends it, the history stores it, and tests compare it
with what the server received. Nothing here talks to the network.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from step_magic.core.outputschema import OutputSchema
from step_magic.core.settings import Settings

Message = dict[str, Any]
Part = dict[str, Any]

# The key of an assistant tool-call message that holds the Messages API's signed thinking
# blocks (LiteLLM's name for them); only the Messages API body sends it, no other.
THINKING_BLOCKS = "thinking_blocks"
# OpenRouter's: the reasoning entries (encrypted ones included) it asks to get back unchanged
# in the assistant tool-call message; Chat Completions sends it, the other APIs' bodies do not.
REASONING_DETAILS = "reasoning_details"
CARRIED = (THINKING_BLOCKS, REASONING_DETAILS)  # kept within a tool loop, never in memory
CHARS_PER_TOKEN = 4
TRANSPORT_FIELDS = frozenset({"stream", "stream_options"})
IMAGE_TOKENS = {"low": 400, "high": 1600}
VIDEO_TOKENS = 2000


@dataclass(frozen=True)
class ChatRequest:
    """One Chat Completions call: what to send, independent of how it is sent."""

    model: str
    messages: tuple[Message, ...]
    effort: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    tools: tuple[dict[str, Any], ...] = ()
    schema: OutputSchema | None = None  # the answer's shape (structured output)

    def body(self, *, stream: bool = True) -> dict[str, Any]:
        """The JSON body, with only the parameters the user set (unset means server default)."""
        messages = [_without_thinking(message) for message in self.messages]
        body: dict[str, Any] = {"model": self.model, "messages": messages}
        if stream:
            body["stream"] = True
        if self.effort is not None:
            body["reasoning_effort"] = self.effort
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.top_p is not None:
            body["top_p"] = self.top_p
        if self.tools:
            body["tools"] = list(self.tools)
        if self.schema is not None:
            described = {"name": self.schema.name, "schema": dict(self.schema.schema)}
            body["response_format"] = {"type": "json_schema", "json_schema": described}
        return body

    def cache_key(self) -> str:
        """A stable hash of everything that shapes the reply (for record and replay)."""
        return request_key(self.body(stream=False))


def _without_thinking(message: Message) -> Message:
    """A message without the Messages API's thinking blocks: Chat Completions has no such
    field (strict servers refuse unknown ones)."""
    if THINKING_BLOCKS not in message:
        return message
    return {key: value for key, value in message.items() if key != THINKING_BLOCKS}


def request_key(body: Mapping[str, Any]) -> str:
    """Hash of a Chat Completions body, ignoring how it is streamed (``stream``,
    ``stream_options``): the same on both ends of the wire, so the local server can answer
    from a cassette the magic recorded."""
    fields = {key: value for key, value in body.items() if key not in TRANSPORT_FIELDS}
    canonical = json.dumps(fields, sort_keys=True)  # ASCII escapes: any string hashes
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def own_messages(
    messages: tuple[Message, ...],
) -> tuple[tuple[Message, ...], tuple[Message, ...]]:
    """A call's own messages (leading system messages, then its last question and what
    followed) and the earlier messages, stored with earlier calls, that were left out."""
    system = 0
    while system < len(messages) and messages[system].get("role") == "system":
        system += 1
    users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    asked = users[-1] if users else system
    return (*messages[:system], *messages[asked:]), messages[system:asked]


def user_content(prompt: str, attachments: Sequence[Part]) -> str | list[Part]:
    """The user message content: plain text, or parts with videos first and the prompt last.

    StepFun asks for video before the text; putting the question after the material it is
    about is the usual advice for long context. Without media (a DataFrame's summary, say)
    the texts are joined into one string: strict servers accept only a string there.
    """
    if not attachments:
        return prompt
    if all(part.get("type") == "text" for part in attachments):
        return "\n\n".join([*(str(part["text"]) for part in attachments), prompt])
    videos = [part for part in attachments if part.get("type") == "video_url"]
    others = [part for part in attachments if part.get("type") != "video_url"]
    return [*videos, *others, {"type": "text", "text": prompt}]


def build_request(
    settings: Settings,
    prompt: str,
    attachments: Sequence[Part] = (),
    history: Sequence[Message] = (),
    tools: Sequence[dict[str, Any]] = (),
) -> ChatRequest:
    """Assemble the messages for one call: system, earlier turns, then this prompt."""
    messages: list[Message] = []
    if settings.system:
        messages.append({"role": "system", "content": settings.system})
    messages.extend(history)
    messages.append({"role": "user", "content": user_content(prompt, attachments)})
    return ChatRequest(
        model=settings.model,
        messages=tuple(messages),
        effort=settings.effort,
        max_tokens=settings.max_tokens,
        temperature=settings.temperature,
        top_p=settings.top_p,
        tools=tuple(tools),
    )


def message_parts(message: Message) -> list[Part]:
    """A message's content as a list of parts, whether it was sent as a string or parts."""
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content or [])


def estimate_tokens(messages: Sequence[Message]) -> int:
    """A rough prompt size: 4 characters a token, fixed amounts per image and video.

    Good enough to keep a conversation inside the context window and to show a dry run;
    the server's usage figures are the real count.
    """
    total = 0
    for message in messages:
        for part in message_parts(message):
            kind = part.get("type")
            if kind == "text":
                total += len(part["text"]) // CHARS_PER_TOKEN + 1
            elif kind == "image_url":
                total += IMAGE_TOKENS.get(part["image_url"].get("detail", "low"), 400)
            elif kind == "video_url":
                total += VIDEO_TOKENS
    return total
