"""The typed events a reply stream yields: what the runner and the views consume.

Three sources produce them (the Chat Completions client, the Messages API client and the
replay of a recorded reply), and several readers consume them (the runner, the reply buffer,
``--map``). Keeping the events apart from any one source lets each side change alone: a reader
never learns which API, if any, the text came from.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from step_magic.core.toolrecords import ToolCall


@dataclass(frozen=True)
class TextEvent:
    """A piece of text; ``kind`` says which (every event has one, for code that reads them)."""

    kind: ClassVar[str] = "text"
    text: str


class ReasoningDelta(TextEvent):
    """A piece of the model's reasoning."""

    kind = "reasoning"


class AnswerDelta(TextEvent):
    """A piece of the answer."""

    kind = "answer"


@dataclass(frozen=True)
class Waiting:
    """The server asked us to wait (429/5xx before any text); we retry after ``delay``."""

    kind: ClassVar[str] = "waiting"

    reason: str
    delay: float
    attempt: int
    max_attempts: int


@dataclass(frozen=True)
class Usage:
    """Token counts as the server reported them; ``cached`` only on a prompt-cache hit."""

    prompt: int
    completion: int
    total: int
    cached: int | None = None

    def plus(self, other: Usage) -> Usage:
        """Two model turns' usage added up (a tool loop is billed per turn)."""
        cached = (self.cached or 0) + (other.cached or 0)
        return Usage(
            self.prompt + other.prompt,
            self.completion + other.completion,
            self.total + other.total,
            cached or None,
        )


@dataclass(frozen=True)
class Finished:
    """The stream ended; ``finish_reason`` is None when the server never sent one."""

    kind: ClassVar[str] = "finished"

    finish_reason: str | None
    usage: Usage | None
    trace_id: str | None
    completion_id: str | None
    tool_calls: tuple[ToolCall, ...] = ()
    # Blocks the API wants back unchanged ahead of this turn's tool calls in the next
    # request (the Messages API's signed thinking and redacted thinking); never shown.
    thinking_blocks: tuple[dict[str, str], ...] = ()
    # The same on Chat Completions through OpenRouter: its ``reasoning_details`` entries.
    reasoning_details: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Rethought:
    """The answer text of this model turn so far was reasoning: the reply closed a
    ``</think>`` it never opened (R1-style templates open it in the prompt)."""

    kind: ClassVar[str] = "rethought"


Event = ReasoningDelta | AnswerDelta | Waiting | Finished | Rethought


class ReplySource(Protocol):
    """Where a model turn's events come from; its trace id is known once it answered."""

    trace_id: str | None


class EventSource(ReplySource, Protocol):
    """A live reply (``wire.transport.open_stream``) or a recorded one (``memory.replay``)."""

    def __iter__(self) -> Iterator[Event]: ...
    def close(self) -> None: ...


class AsyncEventSource(ReplySource, Protocol):
    """The same, read on an event loop (``wire.transport.open_async_stream``); cancelling
    the reading task stops it."""

    def __aiter__(self) -> AsyncIterator[Event]: ...
